//! Scenarios 2 and 3: barge-in latency (caller speech onset, as sent → last packet of prompt audio
//! received) and response latency with the recogniser in the loop (end of caller speech, as sent → first
//! packet of the reply received). Also the concurrent-talker ladder of scenario 4, which uses the same
//! calls with several callers answering at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{ms, Ctx};
use crate::loadgen::{
    self, EndPlan, LoadConfig, LoadResult, RxPacket, Script, SpeechPlan, Trigger,
};
use crate::report::{table, Goal, SectionOut};
use crate::stats::{cdf, Summary};
use crate::svg::Chart;
use crate::target::{ConfigText, Voxgate};
use crate::BenchError;

const ID: &str = "latency";
const TITLE: &str = "2–3. Barge-in and response latency";
const MS: f64 = 1e6;

/// `(section, key, TOML value)` set on top of the scenario's config.
type ConfigKey = (&'static str, &'static str, &'static str);

/// The last packet of prompt audio after `onset_ns`: the last voiced packet before a silence longer than
/// `gap_ns` (longer than any pause inside the prompt). `None` when no prompt was playing at the onset
/// (nothing voiced within 300 ms before it) or it never stopped.
pub fn prompt_stop(rx: &[RxPacket], onset_ns: u64, gap_ns: u64) -> Option<u64> {
    let playing = rx
        .iter()
        .any(|p| p.voiced() && p.at_ns + 300 * 1_000_000 >= onset_ns && p.at_ns <= onset_ns);
    if !playing {
        return None;
    }
    let voiced: Vec<u64> = rx
        .iter()
        .filter(|p| p.voiced() && p.at_ns + 300 * 1_000_000 >= onset_ns)
        .map(|p| p.at_ns)
        .collect();
    for w in voiced.windows(2) {
        if w[0] >= onset_ns.saturating_sub(gap_ns) && w[1] - w[0] > gap_ns {
            return Some(w[0]);
        }
    }
    // Stopped and nothing followed before the call ended.
    voiced
        .last()
        .copied()
        .filter(|&l| rx.last().is_some_and(|p| p.at_ns > l + gap_ns))
}

/// First packet with voice at or after `t_ns`.
pub fn first_voice_after(rx: &[RxPacket], t_ns: u64) -> Option<u64> {
    rx.iter()
        .find(|p| p.voiced() && p.at_ns >= t_ns)
        .map(|p| p.at_ns)
}

/// Where in a prompt a caller can start talking so that the prompt is audibly playing from 100 ms before
/// to 600 ms after the onset (short gaps of up to 100 ms bridged): ms from the prompt's first voiced frame,
/// at least `from_ms`, at least 250 ms apart, at most `count`. An onset inside a pause would time the
/// pause, not the barge-in.
pub fn barge_in_offsets(pcm: &[i16], from_ms: u64, count: usize) -> Vec<u64> {
    let mut voiced: Vec<bool> = pcm
        .chunks(160)
        .map(|f| crate::corpus::peak_dbfs(f) > f64::from(loadgen::VOICED_PEAK_DB))
        .collect();
    let Some(first) = voiced.iter().position(|&v| v) else {
        return Vec::new();
    };
    voiced.drain(..first);
    let mut i = 0;
    while i < voiced.len() {
        if voiced[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < voiced.len() && !voiced[i] {
            i += 1;
        }
        if start > 0 && i < voiced.len() && i - start <= 5 {
            voiced[start..i].fill(true);
        }
    }
    let mut out: Vec<u64> = Vec::new();
    for p in 5..voiced.len().saturating_sub(30) {
        let ms = p as u64 * 20;
        if ms < from_ms || out.last().is_some_and(|&l| ms < l + 250) {
            continue;
        }
        if voiced[p - 5..p + 30].iter().all(|&v| v) {
            out.push(ms);
            if out.len() == count {
                break;
            }
        }
    }
    out
}

/// Longest run of silent 20 ms frames between voiced ones in a prompt WAV, ms.
pub fn longest_inner_pause_ms(pcm: &[i16]) -> u64 {
    let voiced: Vec<bool> = pcm
        .chunks(160)
        .map(|f| crate::corpus::peak_dbfs(f) > f64::from(loadgen::VOICED_PEAK_DB))
        .collect();
    let (Some(first), Some(last)) = (
        voiced.iter().position(|&v| v),
        voiced.iter().rposition(|&v| v),
    ) else {
        return 0;
    };
    let mut longest = 0;
    let mut run = 0;
    for &v in &voiced[first..=last] {
        if v {
            run = 0;
        } else {
            run += 1;
            longest = longest.max(run);
        }
    }
    longest as u64 * 20
}

pub fn run(ctx: &Ctx) -> SectionOut {
    let mut out = SectionOut {
        id: ID,
        title: TITLE,
        ..SectionOut::default()
    };
    let mut cdf_chart = Chart::new(
        "Barge-in and response latency (CDF)",
        "ms",
        "fraction of calls",
    );
    cdf_chart.y_range = Some((0.0, 1.0));
    if let Err(e) = barge_in(ctx, &mut out, &mut cdf_chart) {
        let _ = writeln!(out.body, "\nBarge-in not measured: {e}\n");
    }
    if let Err(e) = response(ctx, &mut out, &mut cdf_chart) {
        let _ = writeln!(out.body, "\nResponse latency not measured: {e}\n");
    }
    if !cdf_chart.series.is_empty() {
        out.plots
            .push(("latency-cdf.svg".into(), cdf_chart.render()));
    }
    out
}

fn calls_n(ctx: &Ctx, full: usize) -> usize {
    if ctx.quick {
        (full / 4).max(4)
    } else {
        full
    }
}

/// The stored records of a run, keyed by the load generator's call index (from the caller number).
fn records_by_index(vg: &Voxgate, n: usize) -> HashMap<usize, Value> {
    vg.wait_ended(n, Duration::from_secs(30));
    let mut out = HashMap::new();
    for c in vg.calls().unwrap_or_default() {
        let from = c["from_uri"].as_str().unwrap_or_default();
        let Some(idx) = from
            .split('+')
            .nth(1)
            .and_then(|s| s.get(4..11))
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|v| v.checked_sub(3_000_000))
        else {
            continue;
        };
        if let Ok(rec) = vg.get_json(&format!("/api/v1/calls/{}", c["id"])) {
            out.insert(idx, rec);
        }
    }
    out
}

/// Wall-clock ns of the first timeline event of `kind` (ms resolution: arrival + offset).
fn event_ns(rec: &Value, kind: &str) -> Option<(u64, String)> {
    let base = rec["started_at_ms"].as_i64()? as u64;
    rec["timeline"].as_array()?.iter().find_map(|e| {
        (e["kind"].as_str()? == kind).then(|| {
            (
                (base + e["at_ms"].as_u64().unwrap_or(0)) * 1_000_000,
                e["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
}

fn latency_config(ctx: &Ctx, asr: bool) -> ConfigText {
    let mut c = ConfigText::default();
    c.set_str("dialog", "flow", &ctx.flow("latency.en.toml"))
        .set("asr", "enabled", asr.to_string())
        .set("qa", "enabled", "false")
        .set_str("log", "level", "info");
    c
}

fn speech_scripts(
    ctx: &Ctx,
    trigger: impl Fn(usize) -> Trigger,
    tail: Duration,
) -> Result<Vec<Script>, BenchError> {
    let corpus = ctx.corpus()?;
    Ok(corpus
        .clips
        .iter()
        .enumerate()
        .map(|(i, c)| Script {
            background: None,
            speech: Some(SpeechPlan {
                clip: Arc::from(c.phone.as_slice()),
                trigger: trigger(i),
            }),
            end: EndPlan::AfterSpeech(tail),
            echo: None,
        })
        .collect())
}

fn run_calls(
    vg: &Voxgate,
    to_user: &str,
    n: usize,
    rate: f64,
    scripts: Vec<Script>,
    max: Duration,
) -> Result<LoadResult, BenchError> {
    loadgen::start(LoadConfig {
        target: vg.sip,
        to_user: to_user.into(),
        calls: n,
        rate,
        scripts,
        keep_packets: true,
        max_duration: max,
    })?
    .join()
}

fn summary_row(name: &str, s: &Summary, extra: &[String]) -> Vec<String> {
    let mut r = vec![
        name.to_string(),
        s.n.to_string(),
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max),
    ];
    r.extend_from_slice(extra);
    r
}

fn barge_in(ctx: &Ctx, out: &mut SectionOut, chart: &mut Chart) -> Result<(), BenchError> {
    let prompt =
        voxgate_media::wav::load_wav_8k_mono(&ctx.repo.join("prompts/en/greeting_short.wav"))
            .map_err(|source| BenchError::Wav {
                path: ctx.repo.join("prompts/en/greeting_short.wav"),
                source,
            })?;
    let pause = longest_inner_pause_ms(&prompt);
    let mut offsets = barge_in_offsets(&prompt, 2000, 4);
    if offsets.is_empty() {
        offsets = vec![2500, 2750, 3000, 3250];
    }
    let gap_ns = (pause + 120).max(300) * 1_000_000;
    let n = calls_n(ctx, 40);
    let profiles: [(&str, &[ConfigKey]); 3] = [
        ("defaults (flush after 160 ms of speech)", &[]),
        (
            "fast (pause after 60 ms, confirm within 400 ms)",
            &[
                ("speech", "bargein_resume", "\"pause\""),
                ("speech", "bargein_min_speech_ms", "60"),
                ("speech", "bargein_confirm_ms", "400"),
            ],
        ),
        (
            "fastest (pause after 40 ms, confirm within 400 ms)",
            &[
                ("speech", "bargein_resume", "\"pause\""),
                ("speech", "bargein_min_speech_ms", "40"),
                ("speech", "bargein_confirm_ms", "400"),
            ],
        ),
    ];
    let _ = writeln!(
        out.body,
        "### Barge-in\n\n{n} calls per profile at 1 call/s on `benches/flows/latency.en.toml` (no recogniser: `[asr] \
         enabled = false`). Each caller starts a corpus sentence {offsets:?} ms into the greeting (points where the prompt is \
         audibly playing from 100 ms before to 600 ms after the onset). Latency = first audible \
         sample of the caller's speech (as sent) → arrival of the last packet of prompt audio (the last voiced packet \
         before a silence longer than the prompt's longest inner pause, {pause} ms + 120 ms). voxgate's own figure \
         (timeline `barge_in`: its detected onset → the tick the prompt stopped) is shown beside it.\n"
    );
    let mut rows = Vec::new();
    let mut slow_notes = Vec::new();
    for (i, (name, keys)) in profiles.iter().enumerate() {
        let mut cfg = latency_config(ctx, false);
        for (s, k, v) in keys.iter() {
            cfg.set(s, k, *v);
        }
        let vg = ctx.start_voxgate(&format!("bargein-{i}"), &cfg)?;
        let scripts = speech_scripts(
            ctx,
            |i| Trigger::IntoVoice(Duration::from_millis(offsets[i % offsets.len()])),
            Duration::from_millis(1500),
        )?;
        let res = run_calls(
            &vg,
            "bargein",
            n,
            1.0,
            scripts,
            Duration::from_secs(n as u64 + 30),
        )?;
        let recs = records_by_index(&vg, res.answered());
        vg.stop();
        let mut lat = Vec::new();
        let mut own = Vec::new();
        let mut missed = 0;
        let mut slowest: Vec<(f64, usize)> = Vec::new();
        for c in &res.calls {
            let Some(onset) = c.speech_onset_ns else {
                continue;
            };
            match prompt_stop(&c.rx, onset, gap_ns) {
                Some(stop) => {
                    let l = (stop as f64 - onset as f64) / MS;
                    if std::env::var_os("VOXGATE_BENCH_VERBOSE").is_some() {
                        let heard = c.voice_heard_ns.unwrap_or(onset);
                        eprintln!(
                            "   barge-in call {}: onset {:.0} ms into the prompt, last prompt packet {l:.0} ms later",
                            c.index,
                            (onset as f64 - heard as f64) / MS
                        );
                    }
                    lat.push(l);
                    slowest.push((l, c.index));
                }
                None => missed += 1,
            }
            if let Some((_, detail)) = recs.get(&c.index).and_then(|r| event_ns(r, "barge_in")) {
                if let Some(v) = detail
                    .split("stopped ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    own.push(v);
                }
            }
        }
        let s = Summary::of(&lat).ok_or(BenchError::NoMeasurement {
            scenario: "barge-in",
        })?;
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        let corpus = ctx.corpus()?;
        let names: Vec<String> = slowest
            .iter()
            .take(3)
            .map(|(l, i)| {
                let clip = &corpus.clips[i % corpus.clips.len()];
                format!("{} ms: {} \"{}\"", ms(*l), clip.voice.name(), clip.text)
            })
            .collect();
        slow_notes.push(format!("{name}: {}", names.join("; ")));
        let o = Summary::of(&own);
        rows.push(summary_row(
            name,
            &s,
            &[
                missed.to_string(),
                o.map_or("–".into(), |o| format!("{} / {}", ms(o.p50), ms(o.p95))),
            ],
        ));
        out.goals.push(Goal::new(
            &format!("barge-in p95, {name}"),
            "≤ 100 ms",
            format!("**{} ms** (p50 {}, n = {})", ms(s.p95), ms(s.p50), s.n),
            Some(s.p95 <= 100.0),
        )
        .see("section 2–3, the slowest calls under the barge-in table and voxgate's own onset → stop figure"));
        *chart = std::mem::replace(chart, Chart::new("", "", ""))
            .series(&format!("barge-in, {name}"), cdf(&lat, 200));
    }
    out.body.push_str(&table(
        &[
            "profile",
            "n",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "not stopped",
            "voxgate's own p50 / p95 ms",
        ],
        &rows,
    ));
    let _ = writeln!(
        out.body,
        "\nvoxgate's own figure for the pause profiles is the confirmed barge-in (the prompt was already paused \
         60 or 40 ms into the speech). Slowest calls (onset as sent; a soft first sound is audible before the VAD calls it \
         speech):\n"
    );
    for n in slow_notes {
        let _ = writeln!(out.body, "- {n}");
    }
    Ok(())
}

fn response(ctx: &Ctx, out: &mut SectionOut, chart: &mut Chart) -> Result<(), BenchError> {
    ctx.install_model("tiny.en")?;
    let n = calls_n(ctx, 30);
    let profiles: [(&str, &str); 2] = [
        ("defaults (700 ms end silence)", "700"),
        ("fast (400 ms end silence)", "400"),
    ];
    let _ = writeln!(
        out.body,
        "\n### Response latency\n\n{n} calls per profile at 0.5 calls/s, whisper tiny.en (1 worker × 2 threads, the \
         default). Each caller waits for the greeting to end (1.2 s of quiet), says a corpus sentence and stays silent. \
         Latency = last audible sample of the caller's speech (as sent) → arrival of the first voiced packet of the \
         reply. Breakdown from the call record's timeline (ms resolution): end of speech → utterance cut by the \
         endpointer → final transcript → reply heard.\n"
    );
    let mut rows = Vec::new();
    let mut parts_rows = Vec::new();
    for (i, (name, end_silence)) in profiles.iter().enumerate() {
        let mut cfg = latency_config(ctx, true);
        cfg.set("speech", "end_silence_ms", *end_silence);
        let vg = ctx.start_voxgate(&format!("response-{i}"), &cfg)?;
        let scripts = speech_scripts(
            ctx,
            |_| Trigger::AfterTurn {
                quiet: Duration::from_millis(1200),
            },
            Duration::from_secs(4),
        )?;
        let res = run_calls(
            &vg,
            "response",
            n,
            0.5,
            scripts,
            Duration::from_secs(2 * n as u64 + 40),
        )?;
        let recs = records_by_index(&vg, res.answered());
        vg.stop();
        let (lat, parts) = response_latencies(&res, &recs);
        let s = Summary::of(&lat).ok_or(BenchError::NoMeasurement {
            scenario: "response",
        })?;
        rows.push(summary_row(name, &s, &[(res.answered() - s.n).to_string()]));
        let p = |v: &[f64]| {
            Summary::of(v).map_or("–".into(), |s| format!("{} / {}", ms(s.p50), ms(s.p95)))
        };
        parts_rows.push(vec![
            name.to_string(),
            p(&parts[0]),
            p(&parts[1]),
            p(&parts[2]),
        ]);
        out.goals.push(Goal::new(
            &format!("response p95, {name}"),
            "≤ 600 ms",
            format!("**{} ms** (p50 {}, n = {})", ms(s.p95), ms(s.p50), s.n),
            Some(s.p95 <= 600.0),
        )
        .see("section 2–3, *Where the response time goes* (end silence, decode, dialog and playout), and for \
              the decode section 4, *Where whisper.cpp spends its time*"));
        *chart = std::mem::replace(chart, Chart::new("", "", ""))
            .series(&format!("response, {name}"), cdf(&lat, 200));
    }
    out.body.push_str(&table(
        &[
            "profile", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "no reply",
        ],
        &rows,
    ));
    out.body
        .push_str("\nWhere the response time goes (p50 / p95 ms):\n\n");
    out.body.push_str(&table(
        &[
            "profile",
            "speech end → utterance cut",
            "utterance → final transcript",
            "transcript → reply heard",
        ],
        &parts_rows,
    ));
    Ok(())
}

/// Response latency per call (ms) and its three parts.
fn response_latencies(res: &LoadResult, recs: &HashMap<usize, Value>) -> (Vec<f64>, [Vec<f64>; 3]) {
    let mut lat = Vec::new();
    let mut parts: [Vec<f64>; 3] = Default::default();
    for c in &res.calls {
        let Some(end) = c.speech_end_ns else { continue };
        let Some(reply) = first_voice_after(&c.rx, end) else {
            continue;
        };
        lat.push(reply.saturating_sub(end) as f64 / MS);
        let Some(rec) = recs.get(&c.index) else {
            continue;
        };
        if let (Some((utt, _)), Some((done, _))) =
            (event_ns(rec, "utterance"), event_ns(rec, "recognized"))
        {
            parts[0].push((utt as f64 - end as f64) / MS);
            parts[1].push((done as f64 - utt as f64) / MS);
            parts[2].push((reply as f64 - done as f64) / MS);
        }
    }
    (lat, parts)
}

/// One level of the talker ladder: `n` callers answer the greeting at the same moment.
pub struct TalkerLevel {
    pub talkers: usize,
    /// Utterance cut → final transcript, ms.
    pub final_ms: Option<Summary>,
    pub response_ms: Option<Summary>,
    pub overloaded: f64,
}

/// Scenario 4's concurrent talkers: how many callers can speak at once before the final transcript comes
/// more than 1 s after the endpointer cut the utterance (p95).
pub fn talkers(ctx: &Ctx) -> Result<Vec<TalkerLevel>, BenchError> {
    ctx.install_model("tiny.en")?;
    let ladder: Vec<usize> = if ctx.quick {
        vec![1, 4]
    } else {
        vec![1, 2, 4, 8, 12, 16, 24]
    };
    let mut out = Vec::new();
    for n in ladder {
        eprintln!("   talkers {n}");
        let cfg = latency_config(ctx, true);
        let vg = ctx.start_voxgate(&format!("talkers-{n}"), &cfg)?;
        let scripts = speech_scripts(
            ctx,
            |_| Trigger::AfterTurn {
                quiet: Duration::from_millis(1200),
            },
            Duration::from_secs(5),
        )?;
        let m0 = vg.metrics()?;
        let res = run_calls(&vg, "talkers", n, 50.0, scripts, Duration::from_secs(60))?;
        let recs = records_by_index(&vg, res.answered());
        let m1 = vg.metrics()?;
        vg.stop();
        let finals: Vec<f64> = recs
            .values()
            .filter_map(|r| {
                let (utt, _) = event_ns(r, "utterance")?;
                let (done, _) = event_ns(r, "recognized")?;
                Some((done as f64 - utt as f64) / MS)
            })
            .collect();
        let (lat, _) = response_latencies(&res, &recs);
        let level = TalkerLevel {
            talkers: n,
            final_ms: Summary::of(&finals),
            response_ms: Summary::of(&lat),
            overloaded: m1.delta(&m0, "asr_overloaded_total"),
        };
        let over = level.final_ms.is_none_or(|s| s.p95 > 1000.0);
        out.push(level);
        if over {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkts(voiced_ms: &[(u64, u64)], until_ms: u64) -> Vec<RxPacket> {
        (0..until_ms / 20)
            .map(|i| {
                let t = i * 20;
                let v = voiced_ms.iter().any(|&(a, b)| t >= a && t < b);
                RxPacket {
                    at_ns: t * 1_000_000,
                    seq: i as u16,
                    peak_db: if v { -10 } else { -120 },
                }
            })
            .collect()
    }

    #[test]
    fn prompt_stop_skips_pauses_inside_the_prompt() {
        // Prompt 0..3000 ms with a 200 ms pause at 2100; the caller's onset is at 2000; the prompt stops
        // at 2600, the reply starts at 4000.
        let rx = pkts(&[(0, 2100), (2300, 2600), (4000, 5000)], 6000);
        let stop = prompt_stop(&rx, 2_000_000_000, 300_000_000).unwrap();
        assert_eq!(stop, 2_580_000_000);
        // Nothing playing at the onset: not a barge-in.
        assert_eq!(prompt_stop(&rx, 3_500_000_000, 300_000_000), None);
        // A prompt that never stops before the call ends.
        let rx = pkts(&[(0, 6000)], 6000);
        assert_eq!(prompt_stop(&rx, 2_000_000_000, 300_000_000), None);
    }

    #[test]
    fn reply_is_the_first_voice_after_the_speech() {
        let rx = pkts(&[(0, 1000), (2500, 3000)], 4000);
        assert_eq!(first_voice_after(&rx, 1_500_000_000), Some(2_500_000_000));
        assert_eq!(first_voice_after(&rx, 3_500_000_000), None);
    }

    #[test]
    fn barge_in_offsets_avoid_pauses() {
        // 200 ms silence, 1 s voice, 300 ms pause, 2 s voice, silence.
        let mut pcm = vec![0i16; 1600];
        pcm.extend(std::iter::repeat_n(8000i16, 8000));
        pcm.extend(std::iter::repeat_n(0i16, 2400));
        pcm.extend(std::iter::repeat_n(8000i16, 16_000));
        pcm.extend(std::iter::repeat_n(0i16, 8000));
        let o = barge_in_offsets(&pcm, 0, 10);
        // Offsets count from the first voiced frame; none within 600 ms before the pause (1000..1300 ms)
        // nor within 100 ms after it, none closer than 600 ms to the end (3300 ms).
        assert_eq!(o.first(), Some(&100));
        for &ms in &o {
            assert!(ms + 600 <= 1000 || ms >= 1400, "{ms} in {o:?}");
            assert!(ms + 600 <= 3300, "{ms}");
        }
        assert!(o.windows(2).all(|w| w[1] >= w[0] + 250));
        assert!(barge_in_offsets(&pcm, 5000, 4).is_empty());
        assert!(barge_in_offsets(&[0; 800], 0, 4).is_empty());
    }

    #[test]
    fn inner_pause_ignores_leading_and_trailing_silence() {
        let mut pcm = vec![0i16; 160 * 5];
        pcm.extend(std::iter::repeat_n(8000i16, 160 * 10));
        pcm.extend(std::iter::repeat_n(0i16, 160 * 7));
        pcm.extend(std::iter::repeat_n(8000i16, 160 * 3));
        pcm.extend(std::iter::repeat_n(0i16, 160 * 20));
        assert_eq!(longest_inner_pause_ms(&pcm), 140);
        assert_eq!(longest_inner_pause_ms(&[0; 1600]), 0);
    }
}
