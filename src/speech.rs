//! Start-up of the speech side: make sure the whisper model is on the box, load it once, start the ASR
//! worker pool, and route its results to the call controller.
//!
//! The media threads only ever see a [`JobSubmitter`] (non-blocking, bounded); results travel back through
//! the controller, which owns the call records and knows which media thread serves which call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use voxgate_asr::{AsrPool, JobSubmitter, Language, ModelName, PoolConfig, RecognizerConfig};
use voxgate_config::{AsrLanguage, AsrModel, BargeInResume, Config, VadName};
use voxgate_media::speech::{
    BargeInConfig, EchoConfig, EndpointerConfig, PipelineConfig, ResumePolicy, VadKind, WebRtcMode,
};

use crate::media_engine::MediaEvent;

/// Mandarin decodes must come back in Simplified Chinese; whisper follows the script of its prompt.
pub const MANDARIN_PROMPT: &str = "以下是普通话的句子，使用简体中文。";

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("cannot install the {model} speech model into {dir}: {source}")]
    Install {
        model: ModelName,
        dir: PathBuf,
        source: voxgate_asr::InstallError,
    },
    #[error("cannot load the speech model: {0}")]
    Load(#[from] voxgate_asr::AsrError),
    #[error("cannot start the ASR workers: {0}")]
    Pool(#[from] voxgate_asr::PoolError),
    #[error("cannot start the ASR result router: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The running recogniser: dropped at shutdown, which stops the workers.
pub struct Speech {
    pool: AsrPool,
    router: Option<std::thread::JoinHandle<()>>,
}

impl Speech {
    /// Installs the model if it is missing (with a progress bar), loads it and starts the workers.
    pub fn start(cfg: &Config, events: UnboundedSender<MediaEvent>) -> Result<Self, SpeechError> {
        let model = model_name(cfg.asr.model);
        let dir = cfg.asr.models_dir.clone();
        let path = match voxgate_asr::installed(model, &dir) {
            Some(p) => p,
            None => {
                tracing::info!(%model, dir = %dir.display(), "speech model missing; installing it");
                crate::install_model(model, dir.clone(), false)
                    .map_err(|source| SpeechError::Install {
                        model,
                        dir: dir.clone(),
                        source,
                    })?
                    .path
            }
        };
        let ctx = voxgate_asr::load_model(&path)?;
        let pool_cfg = PoolConfig {
            workers: cfg.asr.workers,
            queue_capacity: cfg.asr.queue,
            input_rate_hz: 8_000,
            recognizer: recognizer_config(cfg),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = AsrPool::start(ctx, &pool_cfg, tx)?;
        let router = std::thread::Builder::new()
            .name("asr-results".into())
            .spawn(move || {
                for mut result in rx {
                    // Measured here, off the media threads and the signalling task.
                    let acoustics = match (result.audio.take(), &result.outcome) {
                        (Some(audio), Ok(t)) => {
                            Some(voxgate_qa::acoustics::measure(&audio, 8_000, &t.text()))
                        }
                        _ => None,
                    };
                    if events
                        .send(MediaEvent::Asr(Box::new(result), acoustics))
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(SpeechError::Spawn)?;
        tracing::info!(
            %model,
            path = %path.display(),
            workers = cfg.asr.workers,
            threads = cfg.asr.threads_per_worker,
            language = cfg.asr.language.as_str(),
            "speech recognition ready"
        );
        Ok(Self {
            pool,
            router: Some(router),
        })
    }

    /// A handle for one media thread.
    pub fn submitter(&self) -> JobSubmitter {
        self.pool.submitter()
    }

    pub fn shutdown(mut self) {
        // Workers first: their result senders go, so the router's loop ends.
        let router = self.router.take();
        drop(self);
        if let Some(r) = router {
            let _ = r.join();
        }
    }
}

pub(crate) fn model_name(m: AsrModel) -> ModelName {
    match m {
        AsrModel::TinyEn => ModelName::TinyEn,
        AsrModel::Base => ModelName::Base,
        AsrModel::TinyEnQ8 => ModelName::TinyEnQ8,
        AsrModel::BaseQ8 => ModelName::BaseQ8,
    }
}

fn recognizer_config(cfg: &Config) -> RecognizerConfig {
    let language = match cfg.asr.language {
        AsrLanguage::En => Language::English,
        AsrLanguage::Zh => Language::Mandarin,
    };
    let configured = cfg.asr.initial_prompt.trim();
    let initial_prompt = match (language, configured.is_empty()) {
        (Language::Mandarin, true) => Some(MANDARIN_PROMPT.to_string()),
        (Language::Mandarin, false) => Some(format!("{MANDARIN_PROMPT}{configured}")),
        (_, true) => None,
        (_, false) => Some(configured.to_string()),
    };
    RecognizerConfig {
        language,
        threads: cfg.asr.threads_per_worker,
        initial_prompt,
        max_decode: cfg.asr.max_decode(),
        ..RecognizerConfig::default()
    }
}

/// Per-call speech settings the media thread needs; `None` when speech is off.
pub fn pipeline_config(cfg: &Config) -> Option<PipelineConfig> {
    let s = &cfg.speech;
    if !s.enabled {
        return None;
    }
    let vad = match s.vad {
        VadName::Webrtc => VadKind::WebRtc(WebRtcMode::VeryAggressive),
        VadName::Earshot => VadKind::Earshot,
    };
    let resume = match s.bargein_resume {
        BargeInResume::Flush => ResumePolicy::Flush,
        BargeInResume::Pause => ResumePolicy::PauseThenConfirm {
            confirm_ms: s.bargein_confirm_ms,
            // As long as the minimum speech: a pause that long means the "speech" was a cough.
            resume_silence_ms: s.bargein_min_speech_ms.max(200),
        },
    };
    Some(PipelineConfig {
        echo: EchoConfig::default(),
        echo_guard: s.echo_guard,
        vad,
        barge_in: BargeInConfig {
            min_speech_ms: s.bargein_min_speech_ms,
            resume,
            ..BargeInConfig::default()
        },
        endpointer: EndpointerConfig {
            start_speech_ms: s.start_speech_ms,
            end_silence_ms: s.end_silence_ms,
            max_utterance_ms: s.max_utterance_ms,
            pre_roll_ms: s.pre_roll_ms,
            // The dialog owns no-input timing; the endpointer only cuts utterances.
            no_input_ms: 0,
            ..EndpointerConfig::free_speech()
        },
        partial_interval_ms: (s.partial_interval_ms > 0).then_some(s.partial_interval_ms),
    })
}

/// How long a finished call waits for the recognition of its last utterances before it is stored.
pub const FINAL_RESULT_GRACE: Duration = Duration::from_secs(20);

/// Prompt texts (`texts.tsv` next to the prompt WAVs: `key<TAB>text`), for voxgate's side of the transcript.
pub fn load_prompt_texts(dir: &std::path::Path) -> Arc<std::collections::HashMap<String, String>> {
    let mut map = std::collections::HashMap::new();
    match std::fs::read_to_string(dir.join("texts.tsv")) {
        Ok(text) => {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('\t') {
                    map.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "no prompt texts (texts.tsv); transcripts show prompt names instead"
        ),
    }
    Arc::new(map)
}
