//! Micro-benchmarks of the hot paths: criterion wall time (`cargo bench -p voxgate-benches`) and
//! instruction counts per operation under callgrind (`voxgate-bench-hot`), which do not move with the
//! machine's load.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::Ctx;
use crate::fixtures::HOT_OPS;
use crate::report::{table, SectionOut};
use crate::tools::run as run_tool;
use crate::BenchError;

const ID: &str = "micro";
const TITLE: &str = "Micro-benchmarks";

/// Total instructions (`summary:` or `totals:` line) of a callgrind output file.
pub fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Median estimates (ns) of every criterion benchmark under `dir` (`<name>/new/estimates.json`).
fn criterion_medians(dir: &Path) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.ends_with("new/estimates.json") {
                let name = p
                    .parent()
                    .and_then(Path::parent)
                    .and_then(|q| q.strip_prefix(dir).ok())
                    .map(|q| q.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let median = std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["median"]["point_estimate"].as_f64());
                if let Some(m) = median {
                    out.push((name, m));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn run(ctx: &Ctx) -> SectionOut {
    let mut body = String::new();
    let mut error = None;
    match criterion(ctx) {
        Ok(rows) => {
            let _ = writeln!(
                body,
                "Criterion (`cargo bench -p voxgate-benches --bench hot_paths`), median per iteration; one iteration is \
                 one 20 ms frame or one SIP message, so 20 ms / time is how many calls one core could carry for that \
                 stage alone.\n"
            );
            body.push_str(&table(
                &["benchmark", "median", "calls per core (20 ms / median)"],
                &rows,
            ));
        }
        Err(e) => error = Some(e.to_string()),
    }
    match callgrind(ctx) {
        Ok(rows) => {
            let _ = writeln!(
                body,
                "\nInstructions per operation under callgrind (`voxgate-bench-hot OP N`: (count at N = {n} − count at \
                 N = 0) / N; independent of the machine's load, comparable between runs):\n",
                n = hot_n(ctx)
            );
            body.push_str(&table(&["operation", "instructions"], &rows));
        }
        Err(e) => {
            let _ = writeln!(body, "\nCallgrind counts not measured: {e}");
        }
    }
    SectionOut {
        id: ID,
        title: TITLE,
        body,
        error,
        ..SectionOut::default()
    }
}

fn criterion(ctx: &Ctx) -> Result<Vec<Vec<String>>, BenchError> {
    let measure = if ctx.quick { "1" } else { "3" };
    let crit_dir = ctx.repo.join("target/criterion");
    let _ = std::fs::remove_dir_all(&crit_dir);
    run_tool(
        Command::new("cargo")
            .args([
                "bench",
                "-p",
                "voxgate-benches",
                "--bench",
                "hot_paths",
                "--",
            ])
            .args(["--warm-up-time", "1", "--measurement-time", measure])
            .current_dir(&ctx.repo),
        "cargo",
    )?;
    Ok(criterion_medians(&crit_dir)
        .into_iter()
        .map(|(name, ns)| {
            let t = if ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.0} ns")
            };
            vec![name, t, format!("{:.0}", 20e6 / ns.max(1e-9))]
        })
        .collect())
}

fn hot_n(ctx: &Ctx) -> u64 {
    if ctx.quick {
        2_000
    } else {
        10_000
    }
}

fn callgrind(ctx: &Ctx) -> Result<Vec<Vec<String>>, BenchError> {
    let bin = ctx.repo.join("target/release/voxgate-bench-hot");
    if !bin.exists() {
        return Err(BenchError::ToolMissing {
            tool: bin.display().to_string(),
            hint: "cargo build --release -p voxgate-benches --bins".into(),
        });
    }
    let dir = ctx.bench_dir.join("callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    let n = hot_n(ctx);
    let mut rows = Vec::new();
    for op in HOT_OPS {
        let mut counts = Vec::new();
        for k in [0, n] {
            let out = dir.join(format!("{op}-{k}.out"));
            run_tool(
                Command::new("valgrind")
                    .args(["--tool=callgrind", "-q"])
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(&bin)
                    .args([op, &k.to_string()]),
                "valgrind",
            )?;
            let text = std::fs::read_to_string(&out).map_err(|e| BenchError::io(&out, e))?;
            counts.push(callgrind_total(&text).unwrap_or(0));
        }
        let per = counts[1].saturating_sub(counts[0]) as f64 / n as f64;
        rows.push(vec![op.to_string(), format!("{per:.0}")]);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_totals() {
        assert_eq!(
            callgrind_total("events: Ir\nsummary: 123456\n"),
            Some(123_456)
        );
        assert_eq!(callgrind_total("events: Ir\ntotals: 42 7\n"), Some(42));
        assert_eq!(callgrind_total("nothing"), None);
    }
}
