//! A throw-away PostgreSQL server for tests and benchmarks of the PostgreSQL backend (the Debian
//! `postgresql` package's binaries; nothing is installed or configured system-wide).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throw-away PostgreSQL server: `initdb` into a temporary directory, `postgres` on a free loopback port.
/// Run as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
pub struct PgServer {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgServer {
    /// Starts a server whose data lives under the temp dir, tagged `name` (one per test).
    pub fn start(name: &str) -> Result<Self, String> {
        let bin =
            pg_bin_dir().ok_or("PostgreSQL is not installed (Debian package `postgresql`)")?;
        let dir = std::env::temp_dir().join(format!("voxgate-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let root = is_root();
        let run = |prog: &Path, args: &[&str]| -> Command {
            if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(prog).args(args);
                c
            } else {
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
        };
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err("cannot hand the data directory to the postgres user".into());
            }
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().to_string();
        let out = run(
            &bin.join("initdb"),
            &["-D", &data_s, "-A", "trust", "-U", "voxgate", "--no-sync"],
        )
        .output()
        .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir_s = dir.to_string_lossy().to_string();
        let child = run(
            &bin.join("postgres"),
            &[
                "-D",
                &data_s,
                "-p",
                &port.to_string(),
                "-k",
                &dir_s,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
        let url = format!("postgres://voxgate@127.0.0.1:{port}/postgres");
        let server = Self { child, dir, url };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ::postgres::Client::connect(&server.url, ::postgres::NoTls) {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("PostgreSQL did not start: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT = PostgreSQL's fast shutdown (runuser passes it on).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
