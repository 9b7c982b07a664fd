//! Replays a stereo call recording (left = caller, right = voxgate, 8 kHz) through the speech front end
//! and prints what it decides per frame: echo statistics, VAD, barge-in and endpointing events.
//! Usage: `cargo run -p voxgate-media --example replay -- CALL.wav [--no-echo-guard] [--frames A..B]`

use std::time::{Duration, Instant};

use voxgate_media::speech::{PipelineConfig, SpeechEvent, SpeechPipeline};
use voxgate_media::{Frame, FRAME_SAMPLES};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: replay CALL.wav [--no-echo-guard]")?;
    let mut guard = true;
    // `--frames A..B`: print every frame of that range (ms) instead of every 10th.
    let mut detail = 0..0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-echo-guard" => guard = false,
            "--frames" => {
                let range = args.next().ok_or("--frames A..B")?;
                let (a, b) = range.split_once("..").ok_or("--frames A..B")?;
                detail = a.parse()?..b.parse()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut reader = hound::WavReader::open(&path)?;
    let spec = reader.spec();
    if spec.channels != 2 || spec.sample_rate != 8000 {
        return Err("expected an 8 kHz stereo voxgate recording".into());
    }
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let caller: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let ours: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let mut pipeline = SpeechPipeline::new(PipelineConfig {
        echo_guard: guard,
        ..PipelineConfig::default()
    })?;
    let t0 = Instant::now();
    pipeline.listen(PipelineConfig::default().endpointer, t0)?;
    pipeline.prompt_started(true);
    let mut cleaned: Frame = [0; FRAME_SAMPLES];
    for (i, (near, far)) in caller
        .chunks_exact(FRAME_SAMPLES)
        .zip(ours.chunks_exact(FRAME_SAMPLES))
        .enumerate()
    {
        let at = t0 + Duration::from_millis(20 * i as u64);
        let near: &Frame = near.try_into()?;
        let far: &Frame = far.try_into()?;
        pipeline.handle_frame(far, near, at, &mut cleaned)?;
        let e = pipeline.echo_stats();
        if i % 10 == 0 || detail.contains(&(i * 20)) {
            println!(
                "{:7} ms  erl {:5.1} erle {:5.1} leak {:5.1} residual {:6.1} floor {:6.1} above {} dt {} delay {:?}",
                i * 20,
                e.erl_db,
                e.erle_db,
                e.leak_db,
                e.residual_dbfs,
                e.floor_dbfs,
                e.above_echo_floor,
                e.double_talk,
                e.delay_ms
            );
        }
        while let Some(ev) = pipeline.poll_event() {
            let ms = |t: Instant| t.duration_since(t0).as_millis();
            match ev {
                SpeechEvent::BargeIn(b) => println!("{:7} ms  {b:?}", i * 20),
                SpeechEvent::SpeechStarted { utterance, at } => {
                    println!(
                        "{:7} ms  speech #{utterance} started at {} ms",
                        i * 20,
                        ms(at)
                    )
                }
                SpeechEvent::Utterance {
                    utterance,
                    start,
                    end,
                    reason,
                    ..
                } => println!(
                    "{:7} ms  utterance #{utterance} {}..{} ms ({reason:?})",
                    i * 20,
                    ms(start),
                    ms(end)
                ),
                SpeechEvent::Partial { .. } | SpeechEvent::NoInput => {}
            }
        }
    }
    Ok(())
}
