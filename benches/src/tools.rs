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
