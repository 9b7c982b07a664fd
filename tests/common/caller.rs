//! A scripted caller that reacts to what it hears: it waits for voxgate to stop talking before it answers,
//! like a person does, so dialog tests do not depend on prompt lengths.
//!
//! Signalling uses voxgate-sip's endpoint as a UAC (interop with third-party stacks is covered by the sipp and
//! baresip tests); media is hand-built RTP: G.711 μ-law audio and RFC 4733 key presses, with everything
//! voxgate sends kept as the caller's own recording.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use voxgate_sip::endpoint::{CallHandle, Endpoint, EndpointConfig, Event, OutgoingCall, Transport};
use voxgate_sip::sdp::{self, LocalMedia};
use voxgate_sip::transaction::TimerConfig;
use voxgate_sip::uri::Uri;

use voxgate_media::codec::{CodecKind, Decoder, Encoder};

use super::Voxgate;

const FRAME: usize = 160;
/// Voice above this level (dBFS over one frame) counts as voxgate talking.
const VOICE_DBFS: f64 = -40.0;

enum Out {
    Audio(Vec<i16>),
    Digits(String),
}

#[derive(Default)]
struct Shared {
    queue: VecDeque<Out>,
    heard: Vec<i16>,
    /// Index (in frames of `heard`) of the last frame with voice.
    last_voice_frame: Option<usize>,
    /// Sample of `heard` where the latest [`Caller::wait_turn`] started.
    turn_start: usize,
    remote_rtp: Option<SocketAddr>,
    te_pt: u8,
    /// When the latest frame with voice left for voxgate: the end of what the caller said so far.
    last_voice_sent: Option<Instant>,
    /// Frames of the current item not sent yet.
    sending: usize,
}

pub struct Caller {
    shared: Arc<Mutex<Shared>>,
    ended: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub answered: bool,
}

impl Caller {
    /// Calls voxgate from `from_user` (e.g. `+15550100002`) to `to_user`; returns once answered (or not).
    pub fn dial(vg: &Voxgate, from_user: &str, to_user: &str) -> Caller {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("sip socket");
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp socket");
        let local = sip.local_addr().expect("addr");
        let rtp_port = rtp.local_addr().expect("addr").port();
        let remote: SocketAddr = format!("127.0.0.1:{}", vg.sip_port).parse().expect("addr");
        let mut ep = Endpoint::new(EndpointConfig {
            max_calls: 4,
            retry_after_secs: 5,
            user_agent: "voxgate-test-caller".into(),
            contact_host: "127.0.0.1".into(),
            udp_port: local.port(),
            tcp_port: local.port(),
            timers: TimerConfig::default(),
            // Call-IDs and tags come from the seed: two callers in one test must not share them.
            seed: u64::from(local.port()),
        });
        let mut media = LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_port, 4242);
        media.codecs = vec![sdp::Codec::Pcmu];
        let offer = sdp::build_offer(&media);
        let target = Uri::parse(&format!("sip:{to_user}@127.0.0.1:{}", vg.sip_port)).expect("uri");
        let call = ep
            .invite(
                Instant::now(),
                OutgoingCall {
                    target,
                    to: None,
                    from_user: from_user.into(),
                    from_display: Some("Test Caller".into()),
                    remote,
                    transport: Transport::Udp,
                    local,
                    sdp_offer: String::from_utf8_lossy(&offer.to_bytes()).into_owned(),
                    extra_headers: vec![],
                },
            )
            .expect("invite");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let ended = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        let (answered_tx, answered_rx) = std::sync::mpsc::channel();
        let sig = {
            let (shared, ended, hangup) = (shared.clone(), ended.clone(), hangup.clone());
            std::thread::spawn(move || {
                signalling(
                    ep,
                    sip,
                    local,
                    call,
                    media,
                    shared,
                    ended,
                    hangup,
                    answered_tx,
                )
            })
        };
        let answered = answered_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or(false);
        let med = {
            let (shared, ended) = (shared.clone(), ended.clone());
            std::thread::spawn(move || media_loop(rtp, shared, ended))
        };
        Caller {
            shared,
            ended,
            hangup,
            threads: vec![sig, med],
            answered,
        }
    }

    /// Queues speech (8 kHz mono) to be sent after whatever is queued.
    pub fn say(&self, pcm: &[i16]) {
        self.lock().queue.push_back(Out::Audio(pcm.to_vec()));
    }

    /// Waits until everything queued has been sent; returns when the last frame with voice left (the end
    /// of the caller's latest utterance).
    pub fn wait_said(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            {
                let s = self.lock();
                if s.queue.is_empty() && s.sending == 0 {
                    return s.last_voice_sent;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Queues key presses (RFC 4733, 100 ms each with 100 ms gaps).
    pub fn keys(&self, digits: &str) {
        self.lock().queue.push_back(Out::Digits(digits.into()));
    }

    /// Waits until voxgate has said something after now and then been quiet for `quiet`: its turn is over.
    /// Returns false on timeout or hang-up.
    pub fn wait_turn(&self, quiet: Duration, within: Duration) -> bool {
        let start_frame = {
            let mut s = self.lock();
            s.turn_start = s.heard.len();
            s.turn_start / FRAME
        };
        let deadline = Instant::now() + within;
        let quiet_frames = (quiet.as_millis() / 20) as usize;
        while Instant::now() < deadline && !self.ended() {
            {
                let s = self.lock();
                let now_frame = s.heard.len() / FRAME;
                if let Some(v) = s.last_voice_frame.filter(|v| *v >= start_frame) {
                    if now_frame.saturating_sub(v) >= quiet_frames && s.queue.is_empty() {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for voxgate to hang up.
    pub fn wait_ended(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.ended() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Hangs up (BYE) and waits for the call to end.
    pub fn hang_up(&self) {
        self.hangup.store(true, Ordering::SeqCst);
        self.wait_ended(Duration::from_secs(5));
    }

    /// Everything voxgate sent, as the caller heard it (8 kHz mono).
    pub fn heard(&self) -> Vec<i16> {
        self.lock().heard.clone()
    }

    /// Transcript of what voxgate said in its latest turn (since the last [`Caller::wait_turn`] began).
    pub fn last_turn_text(&self, path: &Path) -> String {
        let pcm = {
            let s = self.lock();
            s.heard.get(s.turn_start..).unwrap_or(&[]).to_vec()
        };
        transcribe(&pcm, path)
    }

    /// Writes what the caller heard to `path` and transcribes it with the test whisper model.
    pub fn transcript(&self, path: &Path) -> String {
        transcribe(&self.heard(), path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `pcm` to `path` and transcribes it with the test whisper model (lowercase).
pub fn transcribe(pcm: &[i16], path: &Path) -> String {
    super::write_wav(path, pcm);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .arg("transcribe")
        .arg(path)
        .arg("--models-dir")
        .arg(super::asr_models_dir())
        .output()
        .expect("voxgate transcribe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

impl Drop for Caller {
    fn drop(&mut self) {
        if !self.ended() {
            self.hangup.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.ended() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ended.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn signalling(
    mut ep: Endpoint,
    sock: UdpSocket,
    local: SocketAddr,
    call: CallHandle,
    media: LocalMedia,
    shared: Arc<Mutex<Shared>>,
    ended: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
    answered: std::sync::mpsc::Sender<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut hung_up = false;
    let mut gone_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Ended by the far end, a failed INVITE, or given up on by `Drop`: linger, then stop.
        if ended.load(Ordering::SeqCst) {
            gone_at.get_or_insert(now);
        }
        if hangup.load(Ordering::SeqCst) && !hung_up {
            hung_up = true;
            let _ = ep.hangup(now, call);
        }
        ep.handle_timeout(now);
        while let Some(t) = ep.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.remote);
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::OutgoingAnswered { answer, .. } => {
                    if let Ok(n) = sdp::negotiate_answer(&media, &answer) {
                        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                        s.remote_rtp = n.remote_rtp;
                        s.te_pt = n.telephone_event_pt.unwrap_or(101);
                    }
                    let _ = answered.send(true);
                }
                Event::OutgoingFailed { .. } => {
                    let _ = answered.send(false);
                    ended.store(true, Ordering::SeqCst);
                }
                Event::CallEnded { .. } => {
                    ended.store(true, Ordering::SeqCst);
                    gone_at.get_or_insert(now);
                }
                _ => {}
            }
        }
        while let Some(t) = ep.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.remote);
        }
        // Linger a little after the end so the final 200 OK / ACK exchange completes.
        if gone_at.is_some_and(|t| now.duration_since(t) > Duration::from_millis(500)) {
            return;
        }
        let wait = ep
            .poll_timeout()
            .map_or(Duration::from_millis(20), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        let _ = sock.set_read_timeout(Some(wait));
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            ep.handle_input(Instant::now(), Transport::Udp, local, from, &buf[..n]);
        }
    }
}

fn media_loop(sock: UdpSocket, shared: Arc<Mutex<Shared>>, ended: Arc<AtomicBool>) {
    let _ = sock.set_nonblocking(true);
    let start = Instant::now();
    let mut tick: u32 = 0;
    let mut seq: u16 = 1;
    let mut ts: u32 = 0;
    let mut event_ts: u32 = 0;
    let ssrc: u32 = 0x7e57_ca11;
    let mut current: VecDeque<Frame> = VecDeque::new();
    let mut buf = [0u8; 2048];
    let (Ok(mut enc), Ok(mut dec)) = (Encoder::new(CodecKind::Pcmu), Decoder::new(CodecKind::Pcmu))
    else {
        return;
    };
    let mut payload = [0u8; 512];
    let mut playout: VecDeque<[i16; FRAME]> = VecDeque::with_capacity(32);
    let mut playing = false;
    while !ended.load(Ordering::SeqCst) {
        tick += 1;
        let due = start + Duration::from_millis(20) * tick;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        // Heard audio: one frame per tick (silence when nothing came), so `heard` follows wall time.
        // A small playout queue: on a loaded box two packets can land in one tick and none in the next;
        // keeping both keeps what the caller heard continuous.
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n == 12 + FRAME && buf[1] & 0x7f == 0 {
                let mut f = [0i16; FRAME];
                let _ = dec.decode(&buf[12..n], &mut f);
                if playout.len() < 25 {
                    playout.push_back(f);
                }
            }
        }
        // Start playing once two frames are buffered, like a minimal jitter buffer.
        let frame = if playing || playout.len() >= 2 {
            playing = true;
            playout.pop_front().unwrap_or_else(|| {
                playing = false;
                [0i16; FRAME]
            })
        } else {
            [0i16; FRAME]
        };
        let voiced = super::rms_dbfs(&frame) > VOICE_DBFS;
        s.heard.extend_from_slice(&frame);
        if voiced {
            s.last_voice_frame = Some(s.heard.len() / FRAME - 1);
        }
        let Some(dest) = s.remote_rtp else {
            continue;
        };
        if current.is_empty() {
            if let Some(out) = s.queue.pop_front() {
                current = frames(out);
            }
        }
        s.sending = current.len();
        let te_pt = s.te_pt;
        drop(s);
        let mut pkt = Vec::with_capacity(12 + FRAME);
        let mut voiced = false;
        match current.pop_front() {
            Some(Frame::Event {
                digit,
                first,
                end,
                duration,
            }) => {
                // Every packet of one key press carries the timestamp of its start (RFC 4733 §2.5).
                if first {
                    event_ts = ts;
                }
                header(&mut pkt, te_pt, first, seq, event_ts, ssrc);
                pkt.push(digit);
                pkt.push(if end { 0x80 | 10 } else { 10 });
                pkt.extend_from_slice(&duration.to_be_bytes());
            }
            Some(Frame::Audio(samples)) => {
                header(&mut pkt, 0, false, seq, ts, ssrc);
                let n = enc.encode(&samples, &mut payload).unwrap_or(0);
                pkt.extend_from_slice(&payload[..n]);
                voiced = super::rms_dbfs(&samples[..]) > VOICE_DBFS;
            }
            Some(Frame::Silence) | None => {
                header(&mut pkt, 0, false, seq, ts, ssrc);
                pkt.extend(std::iter::repeat_n(0xffu8, FRAME));
            }
        }
        let _ = sock.send_to(&pkt, dest);
        if voiced {
            shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last_voice_sent = Some(Instant::now());
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(FRAME as u32);
    }
}

enum Frame {
    Audio(Box<[i16; FRAME]>),
    Silence,
    /// An RFC 4733 packet.
    Event {
        digit: u8,
        first: bool,
        end: bool,
        duration: u16,
    },
}

fn frames(out: Out) -> VecDeque<Frame> {
    let mut v = VecDeque::new();
    match out {
        Out::Audio(pcm) => {
            for chunk in pcm.chunks(FRAME) {
                let mut f = [0i16; FRAME];
                f[..chunk.len()].copy_from_slice(chunk);
                v.push_back(Frame::Audio(Box::new(f)));
            }
        }
        Out::Digits(d) => {
            for c in d.chars() {
                let code = match c {
                    '0'..='9' => c as u8 - b'0',
                    '*' => 10,
                    '#' => 11,
                    _ => continue,
                };
                // 100 ms tone: 5 packets of growing duration, then the end packet sent 3 times.
                for i in 0..5u16 {
                    v.push_back(Frame::Event {
                        digit: code,
                        first: i == 0,
                        end: false,
                        duration: (i + 1) * FRAME as u16,
                    });
                }
                for _ in 0..3 {
                    v.push_back(Frame::Event {
                        digit: code,
                        first: false,
                        end: true,
                        duration: 5 * FRAME as u16,
                    });
                }
                for _ in 0..5 {
                    v.push_back(Frame::Silence);
                }
            }
        }
    }
    v
}

fn header(pkt: &mut Vec<u8>, pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    pkt.push(0x80);
    pkt.push(pt | if marker { 0x80 } else { 0 });
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&ts.to_be_bytes());
    pkt.extend_from_slice(&ssrc.to_be_bytes());
}
