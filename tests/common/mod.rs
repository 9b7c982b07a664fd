//! Test harness: starts the real `voxgate` binary with a throw-away config and talks to it like users do
//! (sipp, baresip, HTTP).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod baresip;
pub mod caller;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A UDP+TCP port pair free on loopback right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on loopback");
}

/// The whisper model shared by every test (the ASR crate's tests use the same directory): installed once,
/// before any voxgate starts, so parallel tests never race to install it.
pub fn asr_models_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asr-models");
        install_into(&dir, "tiny.en");
        dir
    })
    .clone()
}

/// `voxgate models install --model MODEL` into [`asr_models_dir`] (a verified file is reused): `base` for
/// Mandarin lines, `voiceprint` for the speaker encoder.
pub fn install_model(model: &str) {
    install_into(&asr_models_dir(), model);
}

fn install_into(dir: &Path, model: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["models", "install", "--model", model, "--dir"])
        .arg(dir)
        .output()
        .expect("run voxgate models install");
    assert!(
        out.status.success(),
        "{model} install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `text` spoken by a TTS engine (`flite:VOICE` or `espeak:VOICE`) through a telephone channel: 8 kHz,
/// 300–3400 Hz, peak -6 dBFS.
pub fn tts_phone(dir: &Path, voice: &str, text: &str) -> Vec<i16> {
    let raw = dir.join(format!(
        "tts-{}.wav",
        NEXT_TTS.fetch_add(1, Ordering::SeqCst)
    ));
    let status = match voice.split_once(':') {
        Some(("flite", v)) => Command::new("flite")
            .args(["-voice", v, "-t", text, "-o"])
            .arg(&raw)
            .status(),
        Some(("espeak", v)) => Command::new("espeak-ng")
            .args(["-v", v, "-s", "150", "-w"])
            .arg(&raw)
            .arg(text)
            .status(),
        _ => panic!("unknown voice {voice}"),
    }
    .expect("TTS engine installed (flite, espeak-ng)");
    assert!(status.success(), "TTS failed for {voice}");
    let phone = raw.with_extension("8k.wav");
    let status = Command::new("sox")
        .args(["-D"])
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&phone)
        .args(["sinc", "300-3400", "norm", "-6"])
        .status()
        .expect("sox installed");
    assert!(status.success(), "sox failed");
    read_wav(&phone).2
}

static NEXT_TTS: AtomicU16 = AtomicU16::new(0);

static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

/// A private RTP port range per voxgate instance so parallel tests never share media ports.
fn rtp_range() -> (u16, u16) {
    let slot = NEXT_RANGE.fetch_add(1, Ordering::SeqCst);
    let base = 30_000 + (std::process::id() % 20) as u16 * 1000 + slot * 240;
    (base, base + 239)
}

pub struct Voxgate {
    child: Child,
    pub sip_port: u16,
    pub http_port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Voxgate {
    /// Starts voxgate with `extra` appended to a generated config (sections may be extended but not
    /// repeated: pass whole `[section]` blocks that the base does not have, or use [`Voxgate::start_with`]).
    pub fn start(name: &str) -> Self {
        Self::start_with(name, |_| {})
    }

    pub fn start_with(name: &str, tweak: impl FnOnce(&mut ConfigText)) -> Self {
        let dir = std::env::temp_dir().join(format!("voxgate-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sip_port = free_port();
        let http_port = free_port();
        let (rtp_min, rtp_max) = rtp_range();
        let mut cfg = ConfigText::default();
        cfg.set("sip", "udp", &format!("[\"127.0.0.1:{sip_port}\"]"));
        cfg.set("sip", "tcp", &format!("[\"127.0.0.1:{sip_port}\"]"));
        cfg.set("sip", "max_calls", "100");
        cfg.set("media", "rtp_port_min", &rtp_min.to_string());
        cfg.set("media", "rtp_port_max", &rtp_max.to_string());
        cfg.set("media", "rtp_bind", "\"127.0.0.1\"");
        cfg.set("media", "threads", "2");
        cfg.set(
            "prompts",
            "dir",
            &format!("{:?}", repo().join("prompts").to_string_lossy()),
        );
        cfg.set(
            "dialog",
            "flow",
            &format!("{:?}", repo().join("flows/bank.en.toml").to_string_lossy()),
        );
        // Voiceprints add an enrolment offer after the PIN; the tests that are about them turn them on.
        cfg.set("dialog", "voiceprint", "false");
        cfg.set("recording", "dir", "\"recordings\"");
        cfg.set("storage", "path", "\"voxgate.db\"");
        cfg.set("http", "bind", &format!("\"127.0.0.1:{http_port}\""));
        cfg.set("log", "level", "\"debug\"");
        cfg.set(
            "asr",
            "models_dir",
            &format!("{:?}", asr_models_dir().to_string_lossy()),
        );
        cfg.set(
            "qa",
            "scorecards",
            &format!("{:?}", repo().join("scorecards").to_string_lossy()),
        );
        cfg.set("auth", "users_file", "\"users.toml\"");
        cfg.extra.push_str(&test_token_table());
        tweak(&mut cfg);
        let cfg_path = dir.join("voxgate.toml");
        // Tweaks may refer to the SIP port chosen here as `{sip_port}`.
        let text = cfg.render().replace("{sip_port}", &sip_port.to_string());
        std::fs::write(&cfg_path, text).expect("write config");
        let log = dir.join("voxgate.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_voxgate"))
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn voxgate");
        let vg = Self {
            child,
            sip_port,
            http_port,
            dir,
            log,
        };
        vg.wait_ready();
        vg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.try_get("/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("voxgate did not become ready; log:\n{}", self.log_text());
    }

    /// Sends SIGHUP (reload the call flows).
    pub fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// A counter or gauge from `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.try_get("/metrics").expect("metrics");
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sip_addr(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    /// GET with the test's API token (an admin).
    pub fn try_get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        http_request(self.http_addr(), "GET", path, Some(TEST_TOKEN), None)
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.try_get(path).expect("HTTP request");
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON body")
    }

    pub fn calls(&self) -> Vec<Value> {
        self.get_json("/api/v1/calls?limit=1000")["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `n` calls are stored as ended and returns their full records.
    pub fn wait_ended_calls(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let calls = self.calls();
            let ended: Vec<&Value> = calls
                .iter()
                .filter(|c| !c["ended_at_ms"].is_null())
                .collect();
            if ended.len() >= n {
                return ended
                    .iter()
                    .map(|c| self.get_json(&format!("/api/v1/calls/{}", c["id"])))
                    .collect();
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {n} ended calls, have {} of {}: {calls:#?}\nlog tail:\n{}",
                    ended.len(),
                    calls.len(),
                    tail(&self.log_text(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one call of `scenario`, requires sipp to succeed, and returns the stored record once it ended.
    pub fn one_call(&self, scenario: &str, sipp_args: &[&str]) -> Value {
        let ended_before = self
            .calls()
            .iter()
            .filter(|c| !c["ended_at_ms"].is_null())
            .count();
        let mut args = vec!["-m", "1"];
        args.extend_from_slice(sipp_args);
        let out = self.sipp(scenario, &args);
        assert!(out.status.success(), "sipp {scenario} failed");
        let mut calls = self.wait_ended_calls(ended_before + 1, Duration::from_secs(10));
        calls.sort_by_key(|c| c["id"].as_i64());
        calls.pop().expect("one call")
    }

    /// The stereo recording of a call as served by the API: (rate, channels, left, right).
    pub fn recording(&self, rec: &Value) -> (u32, u16, Vec<i16>, Vec<i16>) {
        let id = rec["id"].as_i64().expect("id");
        let (status, wav) = self
            .try_get(&format!("/api/v1/calls/{id}/recording"))
            .expect("GET recording");
        assert_eq!(status, 200, "recording of call {id}");
        let path = self.dir.join(format!("call-{id}.wav"));
        std::fs::write(&path, wav).expect("write wav");
        let (rate, channels, samples) = read_wav(&path);
        let left = samples.iter().step_by(2).copied().collect();
        let right = samples.iter().skip(1).step_by(2).copied().collect();
        (rate, channels, left, right)
    }

    /// Runs a sipp scenario from `tests/sipp/` against this voxgate; returns sipp's output.
    pub fn sipp(&self, scenario: &str, args: &[&str]) -> Output {
        self.sipp_file(&repo().join("tests/sipp").join(scenario), args)
    }

    /// Runs a scenario over IPv6 loopback (voxgate must listen on `[::1]`).
    pub fn sipp_v6(&self, scenario: &str, args: &[&str]) -> Output {
        let file = repo().join("tests/sipp").join(scenario);
        self.run_sipp(&file, args, "::1", &format!("[::1]:{}", self.sip_port))
    }

    /// Runs a sipp scenario file against this voxgate.
    pub fn sipp_file(&self, file: &Path, args: &[&str]) -> Output {
        self.run_sipp(file, args, "127.0.0.1", &self.sip_addr())
    }

    fn run_sipp(&self, file: &Path, args: &[&str], local: &str, target: &str) -> Output {
        let scenario = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sipp_port = free_port().to_string();
        let media_port = free_port().to_string();
        let err_file = self.dir.join(format!("{scenario}.errors.log"));
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(file)
            .args([
                "-i",
                local,
                "-mi",
                local,
                "-p",
                &sipp_port,
                "-mp",
                &media_port,
            ])
            .args([
                "-nostdin",
                "-timeout",
                "90s",
                "-timeout_error",
                "-trace_err",
                "-error_file",
            ])
            .arg(&err_file)
            .args(args)
            .arg(target)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .expect("sipp must be installed (Debian package sip-tester)");
        if !out.status.success() {
            eprintln!(
                "sipp {scenario} failed: {:?}\nstdout:\n{}\nerrors:\n{}\nvoxgate log tail:\n{}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stdout), 40),
                std::fs::read_to_string(&err_file).unwrap_or_default(),
                tail(&self.log_text(), 80)
            );
        }
        out
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("voxgate did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Voxgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config built section by section, so tests override single keys.
#[derive(Default)]
pub struct ConfigText {
    sections: Vec<(String, Vec<(String, String)>)>,
    /// Appended as is after the sections (arrays of tables such as `[[auth.user]]`).
    pub extra: String,
}

impl ConfigText {
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[idx].1;
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out.push_str(&self.extra);
        out
    }
}

/// The API token every test voxgate accepts (role admin); its SHA-256 goes into the generated config.
pub const TEST_TOKEN: &str = "vxg_test_token_for_integration_tests";

/// The `[[auth.token]]` table for [`TEST_TOKEN`].
pub fn test_token_table() -> String {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(TEST_TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[auth.token]]\nname = \"tests\"\nrole = \"admin\"\nsha256 = \"{digest}\"\n")
}

/// GET without credentials.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_request(addr, "GET", path, None, None)
}

/// A minimal HTTP/1.0 request: optional bearer token and JSON body; returns status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let headers: Vec<(&str, String)> = token
        .map(|t| ("Authorization", format!("Bearer {t}")))
        .into_iter()
        .collect();
    let r = http(
        addr,
        method,
        path,
        &headers,
        json.map(|j| ("application/json", j)),
    )?;
    Ok((r.status, r.body))
}

/// An HTTP response: status, header block and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A minimal HTTP/1.0 exchange with any headers and an optional body (content type, text).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<(&str, &str)>,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some((content_type, text)) => req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )),
        None => req.push_str("\r\n"),
    }
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok(Reply {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    })
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A record's timeline as `kind detail` lines, in order.
pub fn timeline_lines(rec: &Value) -> Vec<String> {
    rec["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["kind"].as_str().unwrap_or(""),
                        e["detail"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An 8 kHz mono 16-bit WAV.
pub fn write_wav(path: &Path, pcm: &[i16]) {
    voxgate_media::wav::write_wav_8k_mono(path, pcm).expect("write wav");
}

/// Reads a WAV file as (sample rate, channels, interleaved samples).
pub fn read_wav(path: &Path) -> (u32, u16, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let samples = r.samples::<i16>().map(|s| s.expect("sample")).collect();
    (spec.sample_rate, spec.channels, samples)
}

/// Root-mean-square level of a signal in dBFS.
pub fn rms_dbfs(x: &[i16]) -> f64 {
    if x.is_empty() {
        return -120.0;
    }
    let e: f64 = x.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / x.len() as f64;
    10.0 * (e.max(1e-9) / (32768.0f64 * 32768.0)).log10()
}

/// Peak normalised cross-correlation of `needle` inside `hay` (both mono), searching every lag.
/// Uses energy normalisation per window so loudness differences do not matter.
pub fn best_correlation(hay: &[f32], needle: &[f32]) -> (f64, usize) {
    let n = needle.len();
    if n == 0 || hay.len() < n {
        return (0.0, 0);
    }
    let ne: f64 = needle
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    let mut best = (0.0, 0);
    let mut win_e: f64 = hay[..n].iter().map(|&x| (x as f64) * (x as f64)).sum();
    for lag in 0..=hay.len() - n {
        if lag > 0 {
            let out = hay[lag - 1] as f64;
            let inn = hay[lag + n - 1] as f64;
            win_e += inn * inn - out * out;
        }
        if win_e <= 1e-6 {
            continue;
        }
        let dot: f64 = hay[lag..lag + n]
            .iter()
            .zip(needle)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let c = dot / (win_e.max(1e-12).sqrt() * ne.max(1e-12));
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// Writes a pcap (Ethernet/IPv4/UDP/RTP, PCMU, 20 ms packets) of `pcm` at 8 kHz, for sipp's
/// `play_pcap_audio`. sipp rewrites addresses and ports and paces packets by the capture timestamps.
pub fn write_pcmu_pcap(path: &Path, pcm: &[i16]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, frame) in pcm.chunks(160).enumerate() {
        let mut payload = [0xffu8; 160];
        voxgate_media::g711::encode_ulaw(frame, &mut payload[..frame.len()]);
        let mut rtp = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        rtp.extend_from_slice(&(1000u16.wrapping_add(i as u16)).to_be_bytes());
        rtp.extend_from_slice(&((i as u32) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        rtp.extend_from_slice(&payload);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(&[0x08, 0x00]);
        pkt.extend_from_slice(&[0x45, 0x00]);
        pkt.extend_from_slice(&(ip_len as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        pkt.extend_from_slice(&6000u16.to_be_bytes());
        pkt.extend_from_slice(&6000u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0]);
        pkt.extend_from_slice(&rtp);
        let t_us = i as u64 * 20_000;
        out.extend_from_slice(&((1_000 + t_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// A DTMF key press as 8 kHz samples (ITU-T Q.23 frequencies), amplitude per tone.
pub fn dtmf_tone(digit: char, ms: usize, amplitude: f64) -> Vec<i16> {
    let (lo, hi) = match digit {
        '1' => (697.0, 1209.0),
        '2' => (697.0, 1336.0),
        '3' => (697.0, 1477.0),
        '4' => (770.0, 1209.0),
        '5' => (770.0, 1336.0),
        '6' => (770.0, 1477.0),
        '7' => (852.0, 1209.0),
        '8' => (852.0, 1336.0),
        '9' => (852.0, 1477.0),
        '*' => (941.0, 1209.0),
        '0' => (941.0, 1336.0),
        '#' => (941.0, 1477.0),
        _ => panic!("not a digit"),
    };
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = amplitude
                * ((2.0 * std::f64::consts::PI * lo * t).sin()
                    + (2.0 * std::f64::consts::PI * hi * t).sin());
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// `tests/sipp/uac_inband.xml` with the pcap path filled in; returns the scenario path.
pub fn inband_scenario(dir: &Path, pcap: &Path) -> PathBuf {
    let template =
        std::fs::read_to_string(repo().join("tests/sipp/uac_inband.xml")).expect("template");
    let path = dir.join("uac_inband.xml");
    std::fs::write(&path, template.replace("@PCAP@", &pcap.to_string_lossy()))
        .expect("write scenario");
    path
}

/// Adds a UI user with `voxgate auth add-user`, the password on standard input.
pub fn add_user(file: &Path, name: &str, role: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["auth", "add-user", name, "--role", role, "--users-file"])
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voxgate auth add-user");
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}").expect("password");
    }
    let out = child.wait_with_output().expect("add-user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
