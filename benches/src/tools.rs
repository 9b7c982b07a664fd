//! Running the external tools the suite uses (TTS engines, sox, sipp, valgrind, perf, the Python peers).

use std::path::Path;
use std::process::{Command, Output};

use crate::BenchError;

/// Runs `cmd` to completion; a missing program or a non-zero exit is an error naming the Debian package.
pub fn run(cmd: &mut Command, package: &str) -> Result<Output, BenchError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BenchError::ToolMissing {
                tool: program.clone(),
                hint: format!("apt-get install {package}, or run benches/run which installs it"),
            }
        } else {
            BenchError::ToolFailed {
                command: program.clone(),
                detail: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(BenchError::ToolFailed {
            command: describe(cmd),
            detail: format!("{}: {}", out.status, crate::target::tail(&err, 8)),
        });
    }
    Ok(out)
}

/// The command line, for error messages and the report.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// First line of `program --version`-like output, or "not installed".
pub fn version_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                String::from_utf8_lossy(&o.stderr).into_owned()
            } else {
                String::from_utf8_lossy(&o.stdout).into_owned()
            };
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("unknown")
                .to_string()
        }
        Err(_) => "not installed".into(),
    }
}

/// True when `program` can be started.
pub fn available(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python interpreter of the suite's private venv, if `benches/run` made one.
pub fn venv_python(bench_dir: &Path) -> Option<std::path::PathBuf> {
    let p = bench_dir.join("venv/bin/python");
    crate::procfs::is_executable(&p).then_some(p)
}

/// Runs `f` while `perf record -e cpu-clock` samples this process, and returns its result with the
/// hottest functions by self time (`None` when perf is missing or recorded nothing). cpu-clock is a
/// software event: it works where hardware counters are not exposed (containers, most VMs).
pub fn perf_self<T>(data: &Path, f: impl FnOnce() -> T) -> (T, Option<Vec<PerfRow>>) {
    let pid = std::process::id().to_string();
    let child = available("perf")
        .then(|| {
            Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "499", "-o"])
                .arg(data)
                .args(["-p", &pid])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        })
        .flatten();
    // perf needs a moment to attach to every thread before the work starts.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = f();
    let Some(mut child) = child else {
        return (out, None);
    };
    if let Ok(id) = i32::try_from(child.id()) {
        // SAFETY: plain kill(2) on the perf child we spawned; SIGINT makes it write its file and exit.
        unsafe {
            libc::kill(id, libc::SIGINT);
        }
    }
    let _ = child.wait();
    (out, perf_top(data, "symbol", 2.0))
}

/// One `perf report` row: self-time share ("12.34%") and the sort key's columns.
pub type PerfRow = (String, Vec<String>);

/// `perf report` self time by `sort` keys (e.g. `comm,symbol`): rows of (share, key columns), at least
/// `min_pct` each, at most 20. A symbol with spaces in it spans the remaining columns.
pub fn perf_top(data: &Path, sort: &str, min_pct: f64) -> Option<Vec<PerfRow>> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "--sort", sort, "-i"])
        .arg(data)
        .args(["--percent-limit", &min_pct.to_string()])
        .output()
        .ok()?;
    let rows: Vec<PerfRow> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let pct = parts.next().filter(|p| p.ends_with('%'))?;
            // "[.]" / "[k]" mark user or kernel symbols; perf pads some layouts with "-" columns.
            let key = parts
                .filter(|t| !matches!(*t, "-" | "[.]" | "[k]"))
                .map(str::to_string)
                .collect();
            Some((pct.to_string(), key))
        })
        .take(20)
        .collect();
    (!rows.is_empty()).then_some(rows)
}
