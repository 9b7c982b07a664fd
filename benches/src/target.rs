//! The system under test: a `voxgate run` process with a generated config, its HTTP API and `/metrics`,
//! and its CPU time and memory from `/proc`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::BenchError;

/// The API token every bench voxgate accepts (role admin); only its SHA-256 goes into the config.
pub const BENCH_TOKEN: &str = "vxg_bench_token_not_a_secret";

/// A config built key by key over voxgate's defaults.
#[derive(Debug, Clone, Default)]
pub struct ConfigText {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl ConfigText {
    /// Sets `key` of `[section]` to `value`, a TOML literal (`"text"`, `10`, `true`, `[..]`).
    pub fn set(&mut self, section: &str, key: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[idx].1;
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => keys.push((key.to_string(), value)),
        }
        self
    }

    /// A string value, quoted for TOML.
    pub fn set_str(&mut self, section: &str, key: &str, value: &str) -> &mut Self {
        self.set(section, key, toml_string(value))
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
        let digest: String = sha2::Sha256::digest(BENCH_TOKEN.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push_str(&format!(
            "[[auth.token]]\nname = \"bench\"\nrole = \"admin\"\nsha256 = \"{digest}\"\n"
        ));
        out
    }
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A UDP+TCP port free on loopback right now.
pub fn free_port() -> Result<u16, BenchError> {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr.port());
        }
    }
    Err(BenchError::NoFreePort)
}

/// A running voxgate.
pub struct Voxgate {
    child: Option<Child>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// Where voxgate's paths point and which ports it uses; the rest of the config is the caller's.
pub struct Layout<'a> {
    pub bin: &'a Path,
    /// Working directory (database, recordings, log); created fresh.
    pub dir: PathBuf,
    pub repo: &'a Path,
    pub models_dir: &'a Path,
    /// RTP ports for voxgate (even start, two per call).
    pub rtp_ports: (u16, u16),
}

impl Voxgate {
    /// Writes the config (paths and ports from `layout` first, `cfg` on top), starts voxgate and waits for
    /// `/healthz` (model loading included, so up to two minutes).
    pub fn start(layout: &Layout<'_>, cfg: &ConfigText) -> Result<Voxgate, BenchError> {
        let _ = std::fs::remove_dir_all(&layout.dir);
        std::fs::create_dir_all(&layout.dir).map_err(|e| BenchError::io(&layout.dir, e))?;
        let sip_port = free_port()?;
        let http_port = free_port()?;
        let mut full = ConfigText::default();
        let repo = layout.repo;
        full.set("sip", "udp", format!("[\"127.0.0.1:{sip_port}\"]"))
            .set("sip", "tcp", format!("[\"127.0.0.1:{sip_port}\"]"))
            .set("sip", "max_calls", "5000")
            .set("media", "rtp_port_min", layout.rtp_ports.0.to_string())
            .set("media", "rtp_port_max", layout.rtp_ports.1.to_string())
            .set_str("media", "rtp_bind", "127.0.0.1")
            .set_str("prompts", "dir", &repo.join("prompts").to_string_lossy())
            .set_str(
                "dialog",
                "flow",
                &repo.join("flows/bank.en.toml").to_string_lossy(),
            )
            .set("dialog", "voiceprint", "false")
            .set_str("recording", "dir", "recordings")
            .set_str("storage", "path", "voxgate.db")
            .set_str("http", "bind", &format!("127.0.0.1:{http_port}"))
            .set_str("log", "level", "info")
            .set_str("asr", "models_dir", &layout.models_dir.to_string_lossy())
            .set_str("auth", "users_file", "users.toml")
            .set_str(
                "qa",
                "scorecards",
                &repo.join("scorecards").to_string_lossy(),
            )
            .set_str(
                "backend",
                "demo_db",
                &layout.dir.join("demo-bank.sqlite").to_string_lossy(),
            )
            .set("call", "answer_delay_ms", "0");
        for (section, keys) in &cfg.sections {
            for (k, v) in keys {
                full.set(section, k, v.clone());
            }
        }
        let cfg_path = layout.dir.join("voxgate.toml");
        std::fs::write(&cfg_path, full.render()).map_err(|e| BenchError::io(&cfg_path, e))?;
        let log = layout.dir.join("voxgate.log");
        let log_file = std::fs::File::create(&log).map_err(|e| BenchError::io(&log, e))?;
        let child = Command::new(layout.bin)
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .current_dir(&layout.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| BenchError::io(layout.bin, e))?;
        let mut vg = Voxgate {
            child: Some(child),
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            dir: layout.dir.clone(),
            log,
        };
        vg.wait_ready(Duration::from_secs(120))?;
        Ok(vg)
    }

    fn wait_ready(&mut self, within: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.http, "/healthz", None) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(BenchError::TargetExited {
                    status: status.to_string(),
                    log_tail: tail(&self.log_text(), 15),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(BenchError::TargetNotReady {
            log_tail: tail(&self.log_text(), 15),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET with the bench token.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>), BenchError> {
        http_get(self.http, path, Some(BENCH_TOKEN)).map_err(|e| BenchError::Http {
            path: path.into(),
            source: e,
        })
    }

    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, BenchError> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            return Err(BenchError::HttpStatus {
                path: path.into(),
                status,
            });
        }
        serde_json::from_slice(&body).map_err(|e| BenchError::Json {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// All counters and gauges of `/metrics`.
    pub fn metrics(&self) -> Result<Metrics, BenchError> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            return Err(BenchError::HttpStatus {
                path: "/metrics".into(),
                status,
            });
        }
        Ok(Metrics::parse(&String::from_utf8_lossy(&body)))
    }

    pub fn rss_kib(&self) -> u64 {
        crate::procfs::rss_kib(self.pid()).unwrap_or(0)
    }

    pub fn cpu(&self) -> Duration {
        crate::procfs::process_cpu(self.pid()).unwrap_or_default()
    }

    /// Records of the calls voxgate stored (newest first), without their details.
    pub fn calls(&self) -> Result<Vec<serde_json::Value>, BenchError> {
        let v = self.get_json("/api/v1/calls?limit=10000")?;
        Ok(v["calls"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `n` calls are stored as ended; returns how many are.
    pub fn wait_ended(&self, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let ended = self
                .calls()
                .map(|c| c.iter().filter(|c| !c["ended_at_ms"].is_null()).count())
                .unwrap_or(0);
            if ended >= n || Instant::now() > deadline {
                return ended;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Voxgate {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// `/metrics` as name → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.trim().to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// A metric by its short name (without the `voxgate_` prefix); 0 when absent.
    pub fn get(&self, short: &str) -> f64 {
        let full = format!("voxgate_{short}");
        self.0
            .iter()
            .find(|(n, _)| *n == full)
            .map_or(0.0, |(_, v)| *v)
    }

    /// `self − before` for a counter.
    pub fn delta(&self, before: &Metrics, short: &str) -> f64 {
        self.get(short) - before.get(short)
    }
}

/// A minimal HTTP/1.0 GET; returns status and body.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of HTTP header"))?;
    let status = String::from_utf8_lossy(&buf[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    Ok((status, buf[split + 4..].to_vec()))
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_keep_one_key_per_section() {
        let mut c = ConfigText::default();
        c.set("speech", "enabled", "true")
            .set("asr", "enabled", "false")
            .set("speech", "enabled", "false")
            .set_str("dialog", "flow", "a \"b\"\\c");
        let t = c.render();
        assert_eq!(t.matches("[speech]").count(), 1);
        assert!(t.contains("enabled = false\n\n[asr]"));
        assert!(t.contains("flow = \"a \\\"b\\\"\\\\c\""));
        assert!(t.contains("[[auth.token]]"));
    }

    #[test]
    fn metrics_text_is_parsed() {
        let m = Metrics::parse(
            "# HELP voxgate_media_late_ticks_total x\n# TYPE voxgate_media_late_ticks_total counter\n\
             voxgate_media_late_ticks_total 3\nvoxgate_calls_active 250\ngarbage\n",
        );
        assert_eq!(m.get("media_late_ticks_total"), 3.0);
        assert_eq!(m.get("calls_active"), 250.0);
        assert_eq!(m.get("missing"), 0.0);
        let before = Metrics::parse("voxgate_media_late_ticks_total 1\n");
        assert_eq!(m.delta(&before, "media_late_ticks_total"), 2.0);
    }
}
