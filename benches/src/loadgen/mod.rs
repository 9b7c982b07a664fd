//! The load generator: N concurrent calls at a given call rate against a voxgate.
//!
//! - **Signalling**: one thread, one UDP socket, voxgate-sip's sans-IO `Endpoint` as the UAC of every call.
//! - **Media**: one thread on an absolute 20 ms clock sends one G.711 μ-law packet per call per tick from
//!   the call's [`Script`] and drains every call's socket. Arrivals carry kernel timestamps
//!   (`SO_TIMESTAMPNS`), so the generator's own scheduling does not count as voxgate's jitter.
//! - **Records** ([`CallResult`]): INVITE/answer/end times, when the caller's speech started and ended in
//!   what was sent, and for every received packet its arrival time, sequence number and peak level
//!   (optional: a thousand-call capacity run keeps only the statistics).

mod media;
pub mod net;
mod signalling;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::stats::UsHistogram;
use crate::BenchError;

/// A received packet, kept when [`LoadConfig::keep_packets`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPacket {
    /// Kernel arrival time (CLOCK_REALTIME ns).
    pub at_ns: u64,
    pub seq: u16,
    /// Peak level of the decoded payload, dBFS (−120 for digital silence).
    pub peak_db: i8,
}

impl RxPacket {
    /// Carries audible audio (a prompt), not silence or comfort noise.
    pub fn voiced(&self) -> bool {
        self.peak_db > VOICED_PEAK_DB
    }
}

/// A received frame whose peak is above this carries voxgate's voice; its silence is digital zero.
pub const VOICED_PEAK_DB: i8 = -40;

/// When the caller starts talking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// This long after the 200 OK.
    AfterAnswer(Duration),
    /// This long after voxgate's voice is first heard (talking over the greeting: barge-in).
    IntoVoice(Duration),
    /// After voxgate has spoken and then been quiet this long (its turn is over).
    AfterTurn { quiet: Duration },
}

/// What the caller says once.
#[derive(Debug, Clone)]
pub struct SpeechPlan {
    pub clip: Arc<[i16]>,
    pub trigger: Trigger,
}

/// When the caller hangs up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EndPlan {
    /// This long after the answer.
    Hold(Duration),
    /// This long after the speech clip ended (to hear the reply).
    AfterSpeech(Duration),
    /// When [`Running::hangup_all`] is called.
    External,
}

/// An echoing line: voxgate's audio comes back into what the caller sends, delayed and attenuated, like a
/// hybrid on an analogue leg. Makes the echo guard's adaptive filter run on every call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoLine {
    pub delay_frames: usize,
    pub gain_db: f32,
}

/// One caller's behaviour.
#[derive(Debug, Clone)]
pub struct Script {
    /// Sent, looped, whenever the speech clip is not playing; `None` sends silence.
    pub background: Option<Arc<[i16]>>,
    pub speech: Option<SpeechPlan>,
    pub end: EndPlan,
    pub echo: Option<EchoLine>,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// voxgate's SIP address.
    pub target: SocketAddr,
    /// Dialled number.
    pub to_user: String,
    pub calls: usize,
    /// New calls per second.
    pub rate: f64,
    /// Script per call (index modulo length).
    pub scripts: Vec<Script>,
    /// Keep every received packet (latency scenarios); capacity runs keep statistics only.
    pub keep_packets: bool,
    /// Everything is hung up and the run ends after this, whatever the scripts say.
    pub max_duration: Duration,
}

/// What happened to one call.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    pub index: usize,
    /// When the INVITE was sent and the 200 OK received (CLOCK_REALTIME ns).
    pub invite_ns: Option<u64>,
    pub answered_ns: Option<u64>,
    pub ended_ns: Option<u64>,
    /// Final status of a call that never got up (`Some(None)`: no response at all).
    pub failed: Option<Option<u16>>,
    /// First received packet with voice.
    pub voice_heard_ns: Option<u64>,
    /// Time the first and last audible sample of the speech clip was sent (packet send time plus the
    /// sample's offset in the frame).
    pub speech_onset_ns: Option<u64>,
    pub speech_end_ns: Option<u64>,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Inside the measurement window (the whole call when none was set).
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Largest RFC 3550 interarrival jitter estimate seen, µs.
    pub rfc3550_jitter_max_us: f64,
    pub rx: Vec<RxPacket>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub calls: Vec<CallResult>,
    /// Packet-interval deviations from 20 ms (µs), inside the window.
    pub intervals: UsHistogram,
    /// The generator's CPU time (both threads and everything else in this process) over the run.
    pub cpu: Duration,
    pub wall: Duration,
    /// Media ticks of the generator that started more than 5 ms late (its own health).
    pub late_ticks: u64,
    pub ticks: u64,
}

impl LoadResult {
    pub fn answered(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| c.answered_ns.is_some())
            .count()
    }

    pub fn failed(&self) -> usize {
        self.calls.iter().filter(|c| c.failed.is_some()).count()
    }

    pub fn lost(&self) -> u64 {
        self.calls.iter().map(|c| c.lost).sum()
    }

    pub fn expected(&self) -> u64 {
        self.calls.iter().map(|c| c.expected).sum()
    }
}

/// Live counters of a run.
#[derive(Debug, Default)]
pub struct Progress {
    pub placed: AtomicUsize,
    pub answered: AtomicUsize,
    /// Ended or failed.
    pub finished: AtomicUsize,
    /// Measurement window (CLOCK_REALTIME ns); 0 = unset.
    pub window_from: AtomicU64,
    pub window_until: AtomicU64,
    pub hangup_all: AtomicBool,
    pub signalling_done: AtomicBool,
}

/// A run in progress.
pub struct Running {
    progress: Arc<Progress>,
    calls: usize,
    cpu_start: Duration,
    started: std::time::Instant,
    signalling: Option<JoinHandle<Vec<signalling::SigRecord>>>,
    media: Option<JoinHandle<Result<media::MediaOutcome, BenchError>>>,
}

impl Running {
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn answered(&self) -> usize {
        self.progress.answered.load(Ordering::Relaxed)
    }

    pub fn finished(&self) -> usize {
        self.progress.finished.load(Ordering::Relaxed)
    }

    /// Waits until `n` calls are up (or finished); false on timeout.
    pub fn wait_answered(&self, n: usize, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.answered() >= n {
                return true;
            }
            if self.finished() >= self.calls {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Loss and jitter are counted only for packets arriving inside this window from now on.
    pub fn set_window(&self, from_ns: u64, until_ns: u64) {
        self.progress.window_from.store(from_ns, Ordering::Relaxed);
        self.progress
            .window_until
            .store(until_ns, Ordering::Relaxed);
    }

    pub fn hangup_all(&self) {
        self.progress.hangup_all.store(true, Ordering::Relaxed);
    }

    /// Waits for the run to end and collects the records.
    pub fn join(mut self) -> Result<LoadResult, BenchError> {
        let sig = self
            .signalling
            .take()
            .map(|h| {
                h.join()
                    .map_err(|_| BenchError::ThreadPanicked("signalling"))
            })
            .transpose()?
            .unwrap_or_default();
        let media = self
            .media
            .take()
            .map(|h| h.join().map_err(|_| BenchError::ThreadPanicked("media")))
            .transpose()?
            .transpose()?
            .unwrap_or_default();
        let mut calls = media.calls;
        for (c, s) in calls.iter_mut().zip(sig) {
            c.invite_ns = s.invite_ns;
            c.answered_ns = s.answered_ns;
            c.ended_ns = s.ended_ns;
            c.failed = s.failed;
        }
        Ok(LoadResult {
            calls,
            intervals: media.intervals,
            cpu: crate::procfs::self_cpu().saturating_sub(self.cpu_start),
            wall: self.started.elapsed(),
            late_ticks: media.late_ticks,
            ticks: media.ticks,
        })
    }
}

/// Starts a run: binds one RTP socket per call, then the signalling and media threads.
pub fn start(cfg: LoadConfig) -> Result<Running, BenchError> {
    if cfg.scripts.is_empty() || cfg.calls == 0 || cfg.rate <= 0.0 {
        return Err(BenchError::BadLoad);
    }
    let sockets = media::bind_sockets(cfg.calls)?;
    // Receive stamping is switched on by the kernel a moment after the first socket asks for it.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Socket {
            what: "RTP",
            source: e,
        })?;
    let progress = Arc::new(Progress::default());
    let (to_media, media_rx) = std::sync::mpsc::channel();
    let (to_sig, sig_rx) = std::sync::mpsc::channel();
    let cpu_start = crate::procfs::self_cpu();
    let started = std::time::Instant::now();
    let calls = cfg.calls;
    let sig = {
        let cfg = cfg.clone();
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("loadgen-sip".into())
            .spawn(move || signalling::run(&cfg, &ports, &progress, &to_media, &sig_rx))
            .map_err(|e| BenchError::Socket {
                what: "thread",
                source: e,
            })?
    };
    let med = {
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("loadgen-rtp".into())
            .spawn(move || media::run(&cfg, sockets, &progress, &media_rx, &to_sig))
            .map_err(|e| BenchError::Socket {
                what: "thread",
                source: e,
            })?
    };
    Ok(Running {
        progress,
        calls,
        cpu_start,
        started,
        signalling: Some(sig),
        media: Some(med),
    })
}
