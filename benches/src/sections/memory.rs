//! Scenario 8, memory: RSS at idle (keypad only; speech without a recogniser; with the model and one or
//! two ASR workers) and per call (media-only calls connected and playing).

use std::fmt::Write as _;
use std::time::Duration;

use super::{media_only, Ctx};
use crate::loadgen::{self, EndPlan, LoadConfig, Script};
use crate::report::{table, Goal, SectionOut};
use crate::target::ConfigText;
use crate::BenchError;

const ID: &str = "memory";
const TITLE: &str = "8. Memory";

pub fn run(ctx: &Ctx) -> SectionOut {
    match measure(ctx) {
        Ok(s) => s,
        Err(e) => super::failed(ID, TITLE, e),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// RSS of an idle voxgate with `cfg`, after it settled.
fn idle_rss(ctx: &Ctx, name: &str, cfg: &ConfigText) -> Result<u64, BenchError> {
    let vg = ctx.start_voxgate(name, cfg)?;
    std::thread::sleep(Duration::from_secs(2));
    let rss = vg.rss_kib();
    vg.stop();
    Ok(rss)
}

fn measure(ctx: &Ctx) -> Result<SectionOut, BenchError> {
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let mut keypad = media_only(ctx);
    keypad.set("speech", "enabled", "false");
    let base = idle_rss(ctx, "memory-keypad", &keypad)?;
    rows.push(vec![
        "idle, keypad only (`[speech] enabled = false`)".into(),
        format!("{:.1}", mib(base)),
        "–".into(),
    ]);
    let no_asr = idle_rss(ctx, "memory-noasr", &media_only(ctx))?;
    rows.push(vec![
        "idle, speech without recogniser (`[asr] enabled = false`)".into(),
        format!("{:.1}", mib(no_asr)),
        format!("{:+.1}", mib(no_asr) - mib(base)),
    ]);
    let mut worker_rss: Vec<u64> = Vec::new();
    match ctx.install_model("tiny.en") {
        Ok(_) => {
            for workers in [1u32, 2] {
                let mut cfg = media_only(ctx);
                cfg.set("asr", "enabled", "true")
                    .set("asr", "workers", workers.to_string());
                let rss = idle_rss(ctx, &format!("memory-asr{workers}"), &cfg)?;
                rows.push(vec![
                    format!("idle, tiny.en loaded, {workers} ASR worker(s)"),
                    format!("{:.1}", mib(rss)),
                    format!(
                        "{:+.1}",
                        mib(rss) - mib(worker_rss.last().copied().unwrap_or(no_asr))
                    ),
                ]);
                worker_rss.push(rss);
            }
        }
        Err(e) => rows.push(vec![
            format!("ASR model not installed: {e}"),
            "–".into(),
            "–".into(),
        ]),
    }
    // Per call: media-only calls, connected and playing.
    let n = if ctx.quick { 50 } else { 200 };
    let bg = super::capacity::background(ctx)?;
    let vg = ctx.start_voxgate("memory-calls", &media_only(ctx))?;
    std::thread::sleep(Duration::from_secs(2));
    let before = vg.rss_kib();
    let run = loadgen::start(LoadConfig {
        target: vg.sip,
        to_user: "memory".into(),
        calls: n,
        rate: 100.0,
        scripts: vec![Script {
            background: Some(bg),
            speech: None,
            end: EndPlan::External,
            echo: None,
        }],
        keep_packets: false,
        max_duration: Duration::from_secs(60),
    })?;
    run.wait_answered(n, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5));
    let during = vg.rss_kib();
    let up = run.answered();
    run.hangup_all();
    run.join()?;
    vg.stop();
    let per_call = (during.saturating_sub(before)) as f64 / up.max(1) as f64;
    rows.push(vec![
        format!("{up} media-only calls up (prompts playing, recording, VAD)"),
        format!("{:.1}", mib(during)),
        format!(
            "{:+.1} vs the same voxgate before the calls ({per_call:.0} KiB per call)",
            mib(during) - mib(before)
        ),
    ]);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "VmRSS of the voxgate process (`/proc/PID/status`), 2 s after start-up (5 s after the last call was up).\n"
    );
    body.push_str(&table(
        &["state", "RSS MiB", "vs the row above, MiB"],
        &rows,
    ));
    goals.push(Goal::new(
        "memory at idle (keypad only / speech without ASR)",
        "report",
        format!("{:.1} / {:.1} MiB", mib(base), mib(no_asr)),
        None,
    ));
    if let [one, two] = worker_rss[..] {
        goals.push(Goal::new(
            "memory per ASR worker (tiny.en)",
            "report",
            format!(
                "model + 1st worker {:+.1} MiB, each further worker {:+.1} MiB",
                mib(one) - mib(no_asr),
                mib(two) - mib(one)
            ),
            None,
        ));
    }
    goals.push(Goal::new(
        "memory per call",
        "report",
        format!("{per_call:.0} KiB"),
        None,
    ));
    Ok(SectionOut {
        id: ID,
        title: TITLE,
        body,
        goals,
        ..SectionOut::default()
    })
}
