//! The config file exactly as written: loose types (strings, wide integers) so that every
//! semantic problem can be found and reported together in `validate.rs`, instead of serde
//! stopping at the first bad value. Defaults come from the typed schema, so they exist once.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::schema::{
    AgentConfig, AsrConfig, AuthConfig, BackendConfig, CallConfig, Config, DialogConfig,
    HandoffConfig, HttpConfig, HwConfig, LogConfig, MediaConfig, PromptsConfig, QaConfig,
    RecordingConfig, SipConfig, SpeechConfig, StorageConfig, TokenConfig, UserConfig,
};

/// Not `Eq`: `dialog.voiceprint_threshold` is a TOML float.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub sip: RawSip,
    pub media: RawMedia,
    pub prompts: RawPrompts,
    pub recording: RawRecording,
    pub storage: RawStorage,
    pub http: RawHttp,
    pub log: RawLog,
    pub hw: RawHw,
    pub call: RawCall,
    pub speech: RawSpeech,
    pub asr: RawAsr,
    pub dialog: RawDialog,
    pub backend: RawBackend,
    pub handoff: RawHandoff,
    pub qa: RawQa,
    pub auth: RawAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSip {
    pub udp: Vec<String>,
    pub tcp: Vec<String>,
    pub public_address: String,
    pub max_calls: i64,
    pub retry_after_secs: i64,
    pub user_agent: String,
    pub t1_ms: i64,
    pub t2_ms: i64,
    pub t4_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMedia {
    pub rtp_port_min: i64,
    pub rtp_port_max: i64,
    pub rtp_bind: String,
    pub codecs: Vec<String>,
    pub ptime_ms: i64,
    pub threads: i64,
    pub inband_dtmf: bool,
    pub jitter_min_ms: i64,
    pub jitter_max_ms: i64,
    pub no_packet_timeout_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPrompts {
    pub dir: String,
    pub language: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRecording {
    pub enabled: bool,
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStorage {
    pub path: String,
    pub postgres_url: String,
    pub retention_days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHttp {
    pub bind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub level: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHw {
    pub pin_media_threads: bool,
    pub media_cores: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCall {
    pub max_duration_secs: i64,
    pub menu_timeout_secs: i64,
    pub answer_delay_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSpeech {
    pub enabled: bool,
    pub vad: String,
    pub bargein: bool,
    pub bargein_min_speech_ms: i64,
    pub bargein_resume: String,
    pub bargein_confirm_ms: i64,
    pub echo_guard: bool,
    pub start_speech_ms: i64,
    pub end_silence_ms: i64,
    pub max_utterance_ms: i64,
    pub pre_roll_ms: i64,
    pub partial_interval_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAsr {
    pub model: String,
    pub models_dir: String,
    pub language: String,
    pub workers: i64,
    pub threads_per_worker: i64,
    pub queue: i64,
    pub initial_prompt: String,
    pub max_decode_ms: i64,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDialog {
    pub flow: String,
    /// A TOML table keyed by dialled number; sorted, so the typed list is deterministic whatever
    /// map the TOML parser was built with.
    pub numbers: BTreeMap<String, String>,
    pub voiceprint: bool,
    pub voiceprint_threshold: f64,
    pub voiceprint_enroll_secs: i64,
    pub voiceprint_min_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBackend {
    pub kind: String,
    pub demo_db: String,
    pub max_pin_attempts: i64,
    pub url: String,
    pub timeout_ms: i64,
    pub retries: i64,
    pub backoff_ms: i64,
    pub bearer_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHandoff {
    pub ring_timeout_secs: i64,
    pub queue_timeout_secs: i64,
    pub announce_every_secs: i64,
    pub hold_music: String,
    pub refer_target: String,
    pub screen_pop_url: String,
    /// `[[handoff.agent]]`.
    #[serde(rename = "agent")]
    pub agents: Vec<RawAgent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAgent {
    pub name: String,
    pub uri: String,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawQa {
    pub enabled: bool,
    pub scorecards: String,
    pub live_partials: bool,
    pub alert_webhook: String,
    pub alert_webhook_timeout_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAuth {
    pub session_hours: i64,
    pub max_failures: i64,
    pub lockout_secs: i64,
    pub users_file: String,
    /// `[[auth.user]]`.
    #[serde(rename = "user")]
    pub users: Vec<RawUser>,
    /// `[[auth.token]]`.
    #[serde(rename = "token")]
    pub tokens: Vec<RawToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUser {
    pub name: String,
    pub role: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawToken {
    pub name: String,
    pub role: String,
    pub sha256: String,
}

/// Wide integer for the raw layer; values beyond i64 cannot come out of a validated config.
fn wide<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Writes a path relative to `base` when it lies below it, so a default config stays
/// portable; other paths are written as they are.
fn path_string(path: &Path, base: Option<&Path>) -> String {
    base.and_then(|b| path.strip_prefix(b).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

impl RawConfig {
    /// The file form of a validated config (used to render it back to TOML).
    pub fn from_config(c: &Config) -> Self {
        let base = Some(c.base_dir.as_path());
        Self {
            sip: RawSip::from(&c.sip),
            media: RawMedia::from(&c.media),
            prompts: RawPrompts::from_typed(&c.prompts, base),
            recording: RawRecording::from_typed(&c.recording, base),
            storage: RawStorage::from_typed(&c.storage, base),
            http: RawHttp::from(&c.http),
            log: RawLog::from(&c.log),
            hw: RawHw::from(&c.hw),
            call: RawCall::from(&c.call),
            speech: RawSpeech::from(&c.speech),
            asr: RawAsr::from_typed(&c.asr, base),
            dialog: RawDialog::from_typed(&c.dialog, base),
            backend: RawBackend::from_typed(&c.backend, base),
            handoff: RawHandoff::from_typed(&c.handoff, base),
            qa: RawQa::from_typed(&c.qa, base),
            auth: RawAuth::from_typed(&c.auth, base),
        }
    }
}

impl From<&SipConfig> for RawSip {
    fn from(s: &SipConfig) -> Self {
        Self {
            udp: s.udp.iter().map(ToString::to_string).collect(),
            tcp: s.tcp.iter().map(ToString::to_string).collect(),
            public_address: s.public_address.clone().unwrap_or_default(),
            max_calls: wide(s.max_calls),
            retry_after_secs: wide(s.retry_after_secs),
            user_agent: s.user_agent.clone(),
            t1_ms: wide(s.t1_ms),
            t2_ms: wide(s.t2_ms),
            t4_ms: wide(s.t4_ms),
        }
    }
}

impl Default for RawSip {
    fn default() -> Self {
        Self::from(&SipConfig::default())
    }
}

impl From<&MediaConfig> for RawMedia {
    fn from(m: &MediaConfig) -> Self {
        Self {
            rtp_port_min: wide(m.rtp_port_min),
            rtp_port_max: wide(m.rtp_port_max),
            rtp_bind: m.rtp_bind.to_string(),
            codecs: m.codecs.iter().map(|c| c.as_str().to_string()).collect(),
            ptime_ms: wide(m.ptime_ms),
            threads: wide(m.threads),
            inband_dtmf: m.inband_dtmf,
            jitter_min_ms: wide(m.jitter_min_ms),
            jitter_max_ms: wide(m.jitter_max_ms),
            no_packet_timeout_secs: wide(m.no_packet_timeout_secs),
        }
    }
}

impl Default for RawMedia {
    fn default() -> Self {
        Self::from(&MediaConfig::default())
    }
}

impl RawPrompts {
    fn from_typed(p: &PromptsConfig, base: Option<&Path>) -> Self {
        Self {
            dir: path_string(&p.dir, base),
            language: p.language.clone(),
        }
    }
}

impl Default for RawPrompts {
    fn default() -> Self {
        Self::from_typed(&PromptsConfig::default(), None)
    }
}

impl RawRecording {
    fn from_typed(r: &RecordingConfig, base: Option<&Path>) -> Self {
        Self {
            enabled: r.enabled,
            dir: path_string(&r.dir, base),
        }
    }
}

impl Default for RawRecording {
    fn default() -> Self {
        Self::from_typed(&RecordingConfig::default(), None)
    }
}

impl RawStorage {
    fn from_typed(s: &StorageConfig, base: Option<&Path>) -> Self {
        Self {
            path: path_string(&s.path, base),
            postgres_url: s.postgres_url.clone().unwrap_or_default(),
            retention_days: wide(s.retention_days),
        }
    }
}

impl Default for RawStorage {
    fn default() -> Self {
        Self::from_typed(&StorageConfig::default(), None)
    }
}

impl From<&HttpConfig> for RawHttp {
    fn from(h: &HttpConfig) -> Self {
        Self {
            bind: h.bind.to_string(),
        }
    }
}

impl Default for RawHttp {
    fn default() -> Self {
        Self::from(&HttpConfig::default())
    }
}

impl From<&LogConfig> for RawLog {
    fn from(l: &LogConfig) -> Self {
        Self {
            level: l.level.clone(),
            format: l.format.as_str().to_string(),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self::from(&LogConfig::default())
    }
}

impl From<&HwConfig> for RawHw {
    fn from(h: &HwConfig) -> Self {
        Self {
            pin_media_threads: h.pin_media_threads,
            media_cores: h.media_cores.iter().map(|&c| wide(c)).collect(),
        }
    }
}

impl Default for RawHw {
    fn default() -> Self {
        Self::from(&HwConfig::default())
    }
}

impl From<&CallConfig> for RawCall {
    fn from(c: &CallConfig) -> Self {
        Self {
            max_duration_secs: wide(c.max_duration_secs),
            menu_timeout_secs: wide(c.menu_timeout_secs),
            answer_delay_ms: wide(c.answer_delay_ms),
        }
    }
}

impl Default for RawCall {
    fn default() -> Self {
        Self::from(&CallConfig::default())
    }
}

impl From<&SpeechConfig> for RawSpeech {
    fn from(s: &SpeechConfig) -> Self {
        Self {
            enabled: s.enabled,
            vad: s.vad.as_str().to_string(),
            bargein: s.bargein,
            bargein_min_speech_ms: wide(s.bargein_min_speech_ms),
            bargein_resume: s.bargein_resume.as_str().to_string(),
            bargein_confirm_ms: wide(s.bargein_confirm_ms),
            echo_guard: s.echo_guard,
            start_speech_ms: wide(s.start_speech_ms),
            end_silence_ms: wide(s.end_silence_ms),
            max_utterance_ms: wide(s.max_utterance_ms),
            pre_roll_ms: wide(s.pre_roll_ms),
            partial_interval_ms: wide(s.partial_interval_ms),
        }
    }
}

impl Default for RawSpeech {
    fn default() -> Self {
        Self::from(&SpeechConfig::default())
    }
}

impl RawAsr {
    fn from_typed(a: &AsrConfig, base: Option<&Path>) -> Self {
        Self {
            model: a.model.as_str().to_string(),
            models_dir: path_string(&a.models_dir, base),
            language: a.language.as_str().to_string(),
            workers: wide(a.workers),
            threads_per_worker: wide(a.threads_per_worker),
            queue: wide(a.queue),
            initial_prompt: a.initial_prompt.clone(),
            max_decode_ms: wide(a.max_decode_ms),
            enabled: a.enabled,
        }
    }
}

impl Default for RawAsr {
    fn default() -> Self {
        Self::from_typed(&AsrConfig::default(), None)
    }
}

impl RawDialog {
    fn from_typed(d: &DialogConfig, base: Option<&Path>) -> Self {
        Self {
            flow: path_string(&d.flow, base),
            numbers: d
                .numbers
                .iter()
                .map(|(number, flow)| (number.clone(), path_string(flow, base)))
                .collect(),
            voiceprint: d.voiceprint,
            voiceprint_threshold: f64::from(d.voiceprint_threshold_milli) / 1000.0,
            voiceprint_enroll_secs: wide(d.voiceprint_enroll_secs),
            voiceprint_min_secs: wide(d.voiceprint_min_secs),
        }
    }
}

impl Default for RawDialog {
    fn default() -> Self {
        Self::from_typed(&DialogConfig::default(), None)
    }
}

impl RawBackend {
    fn from_typed(b: &BackendConfig, base: Option<&Path>) -> Self {
        Self {
            kind: b.kind.as_str().to_string(),
            demo_db: path_string(&b.demo_db, base),
            max_pin_attempts: wide(b.max_pin_attempts),
            url: b.url.clone(),
            timeout_ms: wide(b.timeout_ms),
            retries: wide(b.retries),
            backoff_ms: wide(b.backoff_ms),
            bearer_token: b.bearer_token.clone(),
        }
    }
}

impl Default for RawBackend {
    fn default() -> Self {
        Self::from_typed(&BackendConfig::default(), None)
    }
}

impl RawHandoff {
    fn from_typed(h: &HandoffConfig, base: Option<&Path>) -> Self {
        Self {
            ring_timeout_secs: wide(h.ring_timeout_secs),
            queue_timeout_secs: wide(h.queue_timeout_secs),
            announce_every_secs: wide(h.announce_every_secs),
            hold_music: h
                .hold_music
                .as_deref()
                .map(|p| path_string(p, base))
                .unwrap_or_default(),
            refer_target: h.refer_target.clone().unwrap_or_default(),
            screen_pop_url: h.screen_pop_url.clone().unwrap_or_default(),
            agents: h.agents.iter().map(RawAgent::from).collect(),
        }
    }
}

impl Default for RawHandoff {
    fn default() -> Self {
        Self::from_typed(&HandoffConfig::default(), None)
    }
}

impl From<&AgentConfig> for RawAgent {
    fn from(a: &AgentConfig) -> Self {
        Self {
            name: a.name.clone(),
            uri: a.uri.clone(),
            skills: a.skills.clone(),
            languages: a.languages.clone(),
        }
    }
}

impl Default for RawAgent {
    fn default() -> Self {
        Self::from(&AgentConfig::default())
    }
}

impl RawQa {
    fn from_typed(q: &QaConfig, base: Option<&Path>) -> Self {
        Self {
            enabled: q.enabled,
            scorecards: path_string(&q.scorecards, base),
            live_partials: q.live_partials,
            alert_webhook: q.alert_webhook.clone().unwrap_or_default(),
            alert_webhook_timeout_ms: wide(q.alert_webhook_timeout_ms),
        }
    }
}

impl Default for RawQa {
    fn default() -> Self {
        Self::from_typed(&QaConfig::default(), None)
    }
}

impl RawAuth {
    fn from_typed(a: &AuthConfig, base: Option<&Path>) -> Self {
        Self {
            session_hours: wide(a.session_hours),
            max_failures: wide(a.max_failures),
            lockout_secs: wide(a.lockout_secs),
            users_file: path_string(&a.users_file, base),
            users: a.users.iter().map(RawUser::from).collect(),
            tokens: a.tokens.iter().map(RawToken::from).collect(),
        }
    }
}

impl Default for RawAuth {
    fn default() -> Self {
        Self::from_typed(&AuthConfig::default(), None)
    }
}

impl From<&UserConfig> for RawUser {
    fn from(u: &UserConfig) -> Self {
        Self {
            name: u.name.clone(),
            role: u.role.as_str().to_string(),
            password_hash: u.password_hash.clone(),
        }
    }
}

impl From<&TokenConfig> for RawToken {
    fn from(t: &TokenConfig) -> Self {
        Self {
            name: t.name.clone(),
            role: t.role.as_str().to_string(),
            sha256: t.sha256.clone(),
        }
    }
}
