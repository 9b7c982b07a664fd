//! Scenario 6, SIP: calls per second sustained without failures with sipp as the load source (INVITE,
//! 200, ACK, 1 s call, BYE), and the INVITE→200 OK latency sipp measures.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::{media_only, ms, Ctx};
use crate::report::{table, Goal, SectionOut};
use crate::stats::{cdf, Summary};
use crate::svg::Chart;
use crate::BenchError;

const ID: &str = "sip";
const TITLE: &str = "6. SIP";

pub fn run(ctx: &Ctx) -> SectionOut {
    match measure(ctx) {
        Ok(s) => s,
        Err(e) => super::failed(ID, TITLE, e),
    }
}

/// `FailedCall(C)` and `SuccessfulCall(C)` from the last line of sipp's `-trace_stat` file.
pub fn parse_stat(csv: &str) -> Option<(u64, u64)> {
    let lines: Vec<&str> = csv.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() < 2 {
        return None;
    }
    let header: Vec<&str> = lines[0].split(';').collect();
    let last: Vec<&str> = lines[lines.len() - 1].split(';').collect();
    let col = |name: &str| {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse::<u64>().ok()
    };
    Some((col("FailedCall(C)")?, col("SuccessfulCall(C)")?))
}

/// Response times (ms) from sipp's `-trace_rtt` file (`date_ms;response_time_ms;rtd_no`).
pub fn parse_rtt(csv: &str) -> Vec<f64> {
    csv.lines()
        .filter_map(|l| l.split(';').nth(1)?.trim().parse::<f64>().ok())
        .collect()
}

fn find_with_suffix(dir: &Path, suffix: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

struct Rate {
    rate: u32,
    calls: u64,
    ok: u64,
    failed: u64,
    rejected_503: f64,
    rtt: Option<Summary>,
    /// The load generator's own run at the same rate: calls up, and INVITE→200 in ms (µs resolution).
    lg_up: usize,
    lg_setup: Vec<f64>,
}

/// sipp's response times are whole milliseconds: 0 means under one.
fn sipp_ms(v: f64) -> String {
    if v < 1.0 {
        "< 1".into()
    } else {
        ms(v)
    }
}

/// The same call pattern from the load generator (its own UAC, µs timestamps, RTP both ways).
fn loadgen_step(
    vg: &crate::target::Voxgate,
    rate: u32,
    calls: u64,
) -> Result<(usize, Vec<f64>), BenchError> {
    let res = crate::loadgen::start(crate::loadgen::LoadConfig {
        target: vg.sip,
        to_user: "bench".into(),
        calls: calls as usize,
        rate: f64::from(rate),
        scripts: vec![crate::loadgen::Script {
            background: None,
            speech: None,
            end: crate::loadgen::EndPlan::Hold(std::time::Duration::from_secs(1)),
            echo: None,
        }],
        keep_packets: false,
        max_duration: std::time::Duration::from_secs(calls / u64::from(rate.max(1)) + 30),
    })?
    .join()?;
    let setup = res
        .calls
        .iter()
        .filter_map(|c| Some(c.answered_ns?.saturating_sub(c.invite_ns?) as f64 / 1e6))
        .collect();
    Ok((res.answered(), setup))
}

fn measure(ctx: &Ctx) -> Result<SectionOut, BenchError> {
    if !crate::tools::available("sipp") {
        return Err(BenchError::ToolMissing {
            tool: "sipp".into(),
            hint: "apt-get install sip-tester".into(),
        });
    }
    let (rates, secs): (&[u32], u32) = if ctx.quick {
        (&[50], 5)
    } else {
        (&[50, 100, 200, 300, 400], 10)
    };
    let scenario = ctx.repo.join("benches/sipp/uac_1s.xml");
    let mut results = Vec::new();
    for &rate in rates {
        eprintln!("   sipp {rate} calls/s");
        let mut cfg = media_only(ctx);
        cfg.set("speech", "enabled", "false");
        let vg = ctx.start_voxgate(&format!("sip-{rate}"), &cfg)?;
        let m0 = vg.metrics()?;
        let calls = u64::from(rate * secs);
        let port = crate::target::free_port()?;
        let media_port = crate::target::free_port()?;
        let out = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-s", "bench", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args([
                "-r",
                &rate.to_string(),
                "-m",
                &calls.to_string(),
                "-l",
                "5000",
            ])
            .args(["-nostdin", "-timeout", "120s", "-timeout_error"])
            .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-trace_rtt", "-rtt_freq", "1"])
            .args(["-trace_err", "-error_file", "sipp-errors.log"])
            .arg(vg.sip.to_string())
            .current_dir(&vg.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| BenchError::io(Path::new("sipp"), e))?;
        let stat = std::fs::read_to_string(vg.dir.join("stat.csv")).unwrap_or_default();
        let (failed, ok) = parse_stat(&stat).unwrap_or((calls, 0));
        let rtt_all = find_with_suffix(&vg.dir, "_rtt.csv")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| parse_rtt(&t))
            .unwrap_or_default();
        let m1 = vg.metrics()?;
        let (lg_up, lg_setup) = loadgen_step(&vg, rate, calls)?;
        vg.stop();
        let failed = if out.success() { failed } else { failed.max(1) };
        results.push(Rate {
            rate,
            calls,
            ok,
            failed,
            rejected_503: m1.delta(&m0, "sip_rejected_503_total"),
            rtt: Summary::of(&rtt_all),
            lg_up,
            lg_setup,
        });
        if failed > 0 {
            break;
        }
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "sipp (`benches/sipp/uac_1s.xml`: INVITE with a PCMU offer, 200 OK, ACK, 1 s call, BYE) at a fixed call \
         rate for {secs} s per step against a keypad-only voxgate (`[speech] enabled = false`, the capacity flow's \
         prompts play to sipp's unanswered media port). A step passes when every call succeeded. INVITE→200 OK is \
         sipp's response-time measure (whole milliseconds); the same step is then repeated by the load generator \
         (its own UAC, RTP both ways), which times INVITE sent → 200 OK received in microseconds.\n"
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.rate.to_string(),
                r.calls.to_string(),
                r.ok.to_string(),
                r.failed.to_string(),
                format!("{:.0}", r.rejected_503),
                r.rtt.map_or("–".into(), |s| {
                    format!(
                        "{} / {} / {}",
                        sipp_ms(s.p50),
                        sipp_ms(s.p95),
                        sipp_ms(s.p99)
                    )
                }),
                format!("{}/{}", r.lg_up, r.calls),
                Summary::of(&r.lg_setup).map_or("–".into(), |s| {
                    format!("{:.2} / {:.2} / {:.2}", s.p50, s.p95, s.p99)
                }),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "calls/s",
            "sipp calls",
            "ok",
            "failed",
            "503",
            "sipp INVITE→200 p50/p95/p99 ms",
            "load generator calls up",
            "load generator INVITE→200 p50/p95/p99 ms",
        ],
        &rows,
    ));
    let best = results
        .iter()
        .filter(|r| r.failed == 0)
        .map(|r| r.rate)
        .max();
    let tried_max = results.iter().map(|r| r.rate).max().unwrap_or(0);
    let mut goals = vec![Goal::new(
        "SIP calls/s sustained without failures (sipp)",
        "report",
        match best {
            Some(b) if b == tried_max && results.iter().all(|r| r.failed == 0) => {
                format!("**≥ {b}** calls/s (the highest rate tried)")
            }
            Some(b) => format!("**{b}** calls/s"),
            None => "**0** (failures at the lowest rate)".into(),
        },
        None,
    )];
    if let Some(r) = results.iter().rev().find(|r| r.failed == 0) {
        let sipp = r
            .rtt
            .map_or("–".into(), |s| format!("{} ms", sipp_ms(s.p99)));
        if let Some(s) = Summary::of(&r.lg_setup) {
            goals.push(Goal::new(
                "INVITE→200 OK",
                "report",
                format!(
                    "p50/p95/p99 {:.2} / {:.2} / {:.2} ms at {} calls/s (sipp p99 {sipp})",
                    s.p50, s.p95, s.p99, r.rate
                ),
                None,
            ));
        }
    }
    let mut chart = Chart::new(
        "INVITE→200 OK (load generator, CDF)",
        "ms",
        "fraction of calls",
    );
    chart.y_range = Some((0.0, 1.0));
    for r in &results {
        chart = chart.series(&format!("{} calls/s", r.rate), cdf(&r.lg_setup, 100));
    }
    Ok(SectionOut {
        id: ID,
        title: TITLE,
        body,
        goals,
        plots: vec![("sip-invite-200-cdf.svg".into(), chart.render())],
        ..SectionOut::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipp_stat_and_rtt_files() {
        let stat = "StartTime;LastResetTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C)\n\
                    a;b;1;10;0;0\na;b;5;95;1;2\n";
        assert_eq!(parse_stat(stat), Some((2, 95)));
        assert_eq!(parse_stat("garbage"), None);
        let rtt = "Date_ms;response_time_ms;rtd_no\n1733400000000.1;0.512000;1\n1733400000001.1;1.000000;1\n";
        assert_eq!(parse_rtt(rtt), vec![0.512, 1.0]);
    }
}
