//! End-to-end Mandarin ASR on a phone-band corpus rendered at test time.
//!
//! Hotline sentences are spoken by espeak-ng, band-limited to 300–3400 Hz at 8 kHz by sox, sent through a G.711
//! μ-law round trip, then transcribed with the multilingual `base` model forced to Mandarin and prompted the way
//! the root binary prompts it (Simplified Chinese). The model is installed once into the target dir (next to
//! tiny.en from `transcribe.rs`) and reused between runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use voxgate_asr::{Language, ModelName, Recognizer, RecognizerConfig};
use whisper_rs::WhisperContext;

/// Whisper tests share two cores: run them one at a time so RTF figures mean something.
static WHISPER: Mutex<()> = Mutex::new(());

const RATE: u32 = 8_000;

/// The root binary's prompt for `zh` (src/speech.rs): without it `base` may answer in Traditional characters.
const MANDARIN_PROMPT: &str = "以下是普通话的句子，使用简体中文。";

struct Sentence {
    hanzi: &'static str,
    /// What espeak-ng speaks. Tone sandhi is left to espeak-ng (it applies 3-3 sandhi itself: 我想 → wo35).
    pinyin: &'static str,
    /// The words a dialog step keys on; any one of them surviving counts.
    intent: &'static [&'static str],
}

/// Hotline-style sentences without digits (whisper may write 几 and friends as figures).
const SENTENCES: [Sentence; 6] = [
    Sentence {
        hanzi: "我想查询我的账户余额。",
        pinyin: "wo3 xiang3 cha2 xun2 wo3 de5 zhang4 hu4 yu2 e2.",
        intent: &["余额"],
    },
    Sentence {
        hanzi: "我的信用卡丢了，请帮我冻结。",
        pinyin: "wo3 de5 xin4 yong4 ka3 diu1 le5, qing3 bang1 wo3 dong4 jie2.",
        intent: &["冻结", "卡"],
    },
    Sentence {
        hanzi: "我要转人工服务。",
        pinyin: "wo3 yao4 zhuan3 ren2 gong1 fu2 wu4.",
        intent: &["人工"],
    },
    Sentence {
        hanzi: "请问最近的网点几点开门？",
        pinyin: "qing3 wen4 zui4 jin4 de5 wang3 dian3 ji3 dian3 kai1 men2?",
        intent: &["网点", "开门"],
    },
    Sentence {
        hanzi: "我需要修改我的联系地址。",
        pinyin: "wo3 xu1 yao4 xiu1 gai3 wo3 de5 lian2 xi4 di4 zhi3.",
        intent: &["地址"],
    },
    Sentence {
        hanzi: "我的网上银行密码不能用了。",
        pinyin: "wo3 de5 wang3 shang4 yin2 hang2 mi4 ma3 bu4 neng2 yong4 le5.",
        intent: &["密码"],
    },
];

/// Traditional-only forms of characters these sentences (and near misses of them) use. Characters written the same
/// in both scripts (卡, 信, 用, 人, 工, …) cannot tell the scripts apart and are not listed.
const TRADITIONAL_ONLY: &str =
    "賬帳戶餘額詢請幫凍結轉務問網點幾開門聯繫係連細續銀碼馬電與為這個們說話號還動過關閉麼實丟見";

fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| common::install(ModelName::Base))
        .clone()
}

/// Renders `text` with espeak-ng `voice`, then through the telephone channel: 300–3400 Hz, 8 kHz, μ-law.
fn phone_clip(voice: &str, text: &str, tag: &str) -> Vec<i16> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asr-corpus");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let raw = dir.join(format!("{tag}-raw.wav"));
    let phone = dir.join(format!("{tag}-8k.wav"));
    common::run(
        Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&raw)
            .arg(text),
    );
    common::phone_channel(&raw, &phone, &[])
}

/// CJK ideographs (unified, extension A, compatibility, and the supplementary-plane extensions).
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}')
}

/// Character error rate over Han characters only: punctuation, spaces, Latin and digits are not scored, so
/// "，" vs "," or a stray space costs nothing while a wrong or missing character does.
fn cer(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<char> = reference.chars().filter(|&c| is_han(c)).collect();
    let h: Vec<char> = hypothesis.chars().filter(|&c| is_han(c)).collect();
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hc) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rc != hc);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

#[test]
fn cer_is_han_character_levenshtein() {
    assert_eq!(cer("我要转人工服务。", "我要转人工服务"), 0.0);
    assert_eq!(cer("请问，几点 开门？", "请问几点开门?"), 0.0);
    // One substitution in four.
    assert!((cer("账户余额", "帐户余额") - 0.25).abs() < 1e-9);
    // Latin output scores as all deletions.
    assert!((cer("人工", "ren gong") - 1.0).abs() < 1e-9);
    assert!((cer("人工", "人工服务吗") - 1.5).abs() < 1e-9);
    assert!(is_han('余') && !is_han('，') && !is_han('a') && !is_han('3'));
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// What a dialog step would configure as domain prompt; the root binary appends it to [`MANDARIN_PROMPT`].
/// A bare keyword list: with a header ("银行客服热线：…") `base` echoed the prompt in 3 of 6 clips (mean CER 0.81).
const BANK_PROMPT: &str = "账户余额，信用卡，冻结，人工服务，网点，开门，地址，密码。";

/// Espeak-ng voice variants, rotated over the sentences for some speaker variety (pitch and formant shifts).
const VOICES: [&str; 3] = [
    "cmn-latn-pinyin",
    "cmn-latn-pinyin+f2",
    "cmn-latn-pinyin+m3",
];

fn mandarin_config(threads: u16) -> RecognizerConfig {
    RecognizerConfig {
        language: Language::Mandarin,
        threads,
        initial_prompt: Some(MANDARIN_PROMPT.to_owned()),
        // Generous for a CI runner busy with other builds; a real stall still fails.
        max_decode: Duration::from_secs(60),
        ..RecognizerConfig::default()
    }
}

struct Clip {
    voice: &'static str,
    sentence: &'static Sentence,
    pcm: Vec<i16>,
}

fn corpus() -> Vec<Clip> {
    SENTENCES
        .iter()
        .zip(VOICES.iter().cycle())
        .enumerate()
        .map(|(i, (sentence, &voice))| Clip {
            voice,
            sentence,
            pcm: phone_clip(voice, sentence.pinyin, &format!("zh{i}")),
        })
        .collect()
}

fn seconds(pcm: &[i16]) -> f64 {
    pcm.len() as f64 / f64::from(RATE)
}

struct Decoded {
    text: String,
    confidence: f32,
    /// Best of the repetitions.
    took: Duration,
}

/// Decodes every clip `reps` times under each config, configs interleaved per clip so load from other processes
/// on a shared runner hits all alike; keeps each config's text and best time per clip.
fn interleaved(
    model: &Arc<WhisperContext>,
    clips: &[Clip],
    configs: &[RecognizerConfig],
    reps: usize,
) -> Vec<Vec<Decoded>> {
    let mut recs: Vec<Recognizer> = configs
        .iter()
        .map(|c| Recognizer::with_model(Arc::clone(model), c.clone()).expect("recognizer"))
        .collect();
    let mut out: Vec<Vec<Decoded>> = configs.iter().map(|_| Vec::new()).collect();
    for clip in clips {
        for (rec, decoded) in recs.iter_mut().zip(&mut out) {
            let mut best = Duration::MAX;
            let mut last = None;
            for _ in 0..reps.max(1) {
                let t = Instant::now();
                let tr = rec.transcribe_pcm(&clip.pcm, RATE, None).expect("decode");
                best = best.min(t.elapsed());
                assert!((0.0..=1.0).contains(&tr.confidence), "{tr:?}");
                last = Some(tr);
            }
            let tr = last.expect("at least one repetition");
            decoded.push(Decoded {
                text: tr.text(),
                confidence: tr.confidence,
                took: best,
            });
        }
    }
    out
}

fn intent_hits(clips: &[Clip], decoded: &[Decoded]) -> usize {
    clips
        .iter()
        .zip(decoded)
        .filter(|(c, d)| c.sentence.intent.iter().any(|w| d.text.contains(w)))
        .count()
}

/// The transcript repeats two neighbouring prompt clauses ("账户余额，信用卡"): whisper echoing its prompt, not
/// speech. Such an echo also fakes intent words, so it is counted separately.
fn echoes_prompt(prompt: &str, text: &str) -> bool {
    let han = |s: &str| s.chars().filter(|&c| is_han(c)).collect::<String>();
    let clauses: Vec<String> = prompt
        .split(|c: char| !is_han(c))
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let text = han(text);
    clauses
        .windows(2)
        .any(|pair| text.contains(&format!("{}{}", pair[0], pair[1])))
}

#[test]
fn prompt_echo_needs_neighbouring_clauses() {
    assert!(echoes_prompt(BANK_PROMPT, "账户余额，信用卡，冻结，"));
    assert!(!echoes_prompt(BANK_PROMPT, "我想查询我的账户余额。"));
    assert!(!echoes_prompt(BANK_PROMPT, "余额 冻结"));
}

/// Measured on the dev box (base, GGML_NATIVE=OFF, voices rotated; identical with 1 and 2 threads and between runs):
/// CER 0.400 / 0.667 / 0.429 / 0.818 / 0.273 / 1.583, mean 0.695; the last is a loop cut by the token cap
/// ("X的认识X", not back to back, so not collapsed). Intent words survived in 2 of 6 (卡, 地址).
///
/// `base` on espeak-ng Mandarin is fragile, hence the wide margin: before sox ran with `-R`, its random dither
/// (±1 LSB) alone moved the mean between 0.556 and 0.709 over three runs. The TTS, not the phone channel, is the
/// limit: without band-limiting and μ-law the mean was 0.598 vs 0.607 (default voice, all six sentences). Per voice
/// (all six sentences, random dither): default 0.607, +f2 0.506, +m3 0.499, +f4 0.578, +klatt 0.897 (echoed the
/// prompt, looped); Hanzi input to the same voice 0.634 (its dictionary misreads 银行, 地址, 服务); the `cmn` voice
/// 1.178 (it speaks Hanzi and pinyin alike as English letter names). Speed -s 135: 0.548, 165/180: 0.70/0.66;
/// whisper's full 30 s context 0.848; beam search (5) no better than greedy. A wrong language or script lands at
/// 1.0 and above, which this still catches.
const MAX_MEAN_CER: f64 = 0.85;
/// Sentences (of 6) whose intent word must survive with the language prompt alone. Measured 2, far from "most":
/// this TTS does not support asserting more.
const MIN_INTENT_HITS: usize = 1;

#[test]
fn mandarin_phone_band_cer_and_rtf() {
    let _guard = WHISPER.lock().unwrap_or_else(|p| p.into_inner());
    let model = voxgate_asr::load_model(&model_path()).expect("load base");
    let clips = corpus();
    let audio: f64 = clips.iter().map(|c| seconds(&c.pcm)).sum();

    let runs = interleaved(&model, &clips, &[mandarin_config(2), mandarin_config(1)], 2);
    let (two, one) = (&runs[0], &runs[1]);
    let domain_prompt = format!("{MANDARIN_PROMPT}{BANK_PROMPT}");
    let biased_config = RecognizerConfig {
        initial_prompt: Some(domain_prompt.clone()),
        ..mandarin_config(2)
    };
    let biased = &interleaved(&model, &clips, &[biased_config], 1)[0];

    let cers = |decoded: &[Decoded]| -> Vec<f64> {
        clips
            .iter()
            .zip(decoded)
            .map(|(c, d)| cer(c.sentence.hanzi, &d.text))
            .collect()
    };
    let (cer_two, cer_one, cer_biased) = (cers(two), cers(one), cers(biased));
    let rtf = |v: &[Decoded]| v.iter().map(|d| d.took.as_secs_f64()).sum::<f64>() / audio;

    eprintln!(
        "{:<20} {:<26} {:>4} {:>5} {:>4} {:>5}  transcript (2 threads) | with domain prompt",
        "voice", "reference", "secs", "CER", "conf", "RTF"
    );
    for (i, clip) in clips.iter().enumerate() {
        eprintln!(
            "{:<20} {:<26} {:>4.1} {:>5.3} {:>4.2} {:>5.3}  {} | {:.3} {}",
            clip.voice,
            clip.sentence.hanzi,
            seconds(&clip.pcm),
            cer_two[i],
            two[i].confidence,
            two[i].took.as_secs_f64() / seconds(&clip.pcm),
            two[i].text,
            cer_biased[i],
            biased[i].text
        );
        if one[i].text != two[i].text {
            eprintln!("  1 thread: {}", one[i].text);
        }
    }
    let echoes = biased
        .iter()
        .filter(|d| echoes_prompt(&domain_prompt, &d.text))
        .count();
    eprintln!(
        "mean CER {:.3} (1 thread {:.3}), intent word kept in {}/{n}; with domain prompt {:.3}, {}/{n}, \
         prompt echoed in {echoes}",
        mean(&cer_two),
        mean(&cer_one),
        intent_hits(&clips, two),
        mean(&cer_biased),
        intent_hits(&clips, biased),
        n = clips.len(),
    );
    eprintln!("model  threads  RTF (best of 2, {audio:.1} s of audio)");
    eprintln!("base   2        {:.3}", rtf(two));
    eprintln!("base   1        {:.3}", rtf(one));

    // Every decode comes back in Simplified characters: the prompt steers `base` (without it: 查詢, 丟, 漢 here) and
    // the recognizer converts what still slips through (丟 here; a whole sentence with the domain prompt).
    for (clip, d) in clips
        .iter()
        .cycle()
        .zip(two.iter().chain(one).chain(biased))
    {
        let traditional: String = d
            .text
            .chars()
            .filter(|&c| TRADITIONAL_ONLY.contains(c))
            .collect();
        assert!(
            traditional.is_empty(),
            "{}: Traditional {traditional:?} in {:?}",
            clip.sentence.hanzi,
            d.text
        );
    }
    assert!(
        mean(&cer_two) <= MAX_MEAN_CER,
        "mean CER {:.3}",
        mean(&cer_two)
    );
    // Thread count changes speed, not the result beyond float noise.
    assert!((mean(&cer_one) - mean(&cer_two)).abs() <= 0.1);
    assert!(intent_hits(&clips, two) >= MIN_INTENT_HITS);
    // Domain biasing must not make things worse overall (measured 0.695 → 0.474, intent words 2 → 5 of 6, but one
    // of those five is the prompt echoed back: "账户余额，信用卡，冻结，" for the 冻结 sentence).
    assert!(mean(&cer_biased) <= mean(&cer_two) + 0.05);
}
