//! `voxgate-bench [--quick] [--only a,b] [--repo DIR]`: runs the suite against the release voxgate and
//! writes `benches/REPORT.md` and `benches/report/*.svg`. `benches/run` installs the tools and builds
//! first; use that.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use voxgate_benches::report::{self, Header};
use voxgate_benches::sections::{self, Ctx, ALL};
use voxgate_benches::tools::version_of;

struct Args {
    quick: bool,
    only: Vec<String>,
    repo: PathBuf,
    command: String,
}

fn usage() -> String {
    format!(
        "usage: voxgate-bench [--quick] [--only {}] [--repo DIR]",
        ALL.join(",")
    )
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        only: Vec::new(),
        repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        command: String::from("benches/run"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                a.quick = true;
                a.command.push_str(" --quick");
            }
            "--only" => {
                let v = it.next().ok_or_else(usage)?;
                for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !ALL.contains(&id) {
                        return Err(format!("unknown section {id:?}\n{}", usage()));
                    }
                    a.only.push(id.to_string());
                }
                a.command.push_str(&format!(" --only {v}"));
            }
            "--repo" => a.repo = PathBuf::from(it.next().ok_or_else(usage)?),
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    a.repo = a.repo.canonicalize().map_err(|e| format!("repo: {e}"))?;
    Ok(a)
}

fn git_describe(repo: &std::path::Path) -> String {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    let ctx = Ctx::new(&args.repo, args.quick);
    if !ctx.voxgate.exists() {
        eprintln!(
            "{} is missing: build it with `cargo build --release --bin voxgate` (benches/run does)",
            ctx.voxgate.display()
        );
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let load_before = voxgate_benches::procfs::loadavg();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let sections = sections::run(&ctx, &args.only);
    let venv_py = voxgate_benches::tools::venv_python(&ctx.bench_dir);
    let mut versions = vec![
        (
            "voxgate".to_string(),
            version_of(&ctx.voxgate.to_string_lossy(), &["--version"]),
        ),
        ("rustc".into(), version_of("rustc", &["--version"])),
        ("sipp".into(), version_of("sipp", &["-v"])),
        ("valgrind".into(), version_of("valgrind", &["--version"])),
        ("perf".into(), version_of("perf", &["--version"])),
        ("espeak-ng".into(), version_of("espeak-ng", &["--version"])),
        ("flite".into(), version_of("flite", &["--version"])),
    ];
    if let Some(py) = venv_py {
        let py = py.to_string_lossy().into_owned();
        for pkg in ["faster-whisper", "ctranslate2", "onnxruntime", "silero-vad"] {
            let v = version_of(
                &py,
                &[
                    "-c",
                    &format!("import importlib.metadata as m; print(m.version('{pkg}'))"),
                ],
            );
            versions.push((pkg.to_string(), v));
        }
    }
    let header = Header {
        command: args.command,
        started: date,
        git: git_describe(&args.repo),
        machine: voxgate_benches::procfs::machine_description(),
        load_before,
        versions,
        quick: args.quick,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let md = args.repo.join("benches/REPORT.md");
    if let Err(e) = report::write(&md, &args.repo.join("benches/report"), &header, &sections) {
        eprintln!("cannot write the report: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", md.display());
    ExitCode::SUCCESS
}

/// A thousand calls need a few thousand sockets here and in voxgate (which inherits the limit).
fn raise_fd_limit() {
    let (soft, hard) = voxgate_benches::procfs::nofile_limit();
    if soft < hard {
        voxgate_benches::procfs::set_nofile_limit(hard, hard);
    }
}
