//! The validated, typed configuration handed to the rest of voxgate.
//!
//! These structs hold only checked values; the TOML-facing mirror lives in `raw.rs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Audio codecs voxgate can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus; only negotiable when built with the `opus` feature.
    Opus,
}

impl CodecName {
    /// Every codec the config syntax knows about.
    pub const ALL: [CodecName; 3] = [CodecName::Pcmu, CodecName::Pcma, CodecName::Opus];

    /// Codecs compiled into this build (mirrors the media crate's `opus` feature).
    pub const COMPILED: &'static [CodecName] = if cfg!(feature = "opus") {
        &[CodecName::Pcmu, CodecName::Pcma, CodecName::Opus]
    } else {
        &[CodecName::Pcmu, CodecName::Pcma]
    };

    /// The spelling used in the config file and SDP-facing logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecName::Pcmu => "pcmu",
            CodecName::Pcma => "pcma",
            CodecName::Opus => "opus",
        }
    }

    /// Case-insensitive lookup of a config spelling.
    pub fn from_name(name: &str) -> Option<CodecName> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The whole appliance configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub prompts: PromptsConfig,
    pub recording: RecordingConfig,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub hw: HwConfig,
    pub call: CallConfig,
    pub speech: SpeechConfig,
    pub asr: AsrConfig,
    pub dialog: DialogConfig,
    pub backend: BackendConfig,
    pub handoff: HandoffConfig,
    pub qa: QaConfig,
    pub auth: AuthConfig,
    /// Directory relative paths were resolved against (the config file's directory).
    pub base_dir: PathBuf,
}

impl Default for Config {
    /// The built-in defaults, with relative paths resolved against the current directory.
    fn default() -> Self {
        let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::default_in(&base_dir)
    }
}

impl Config {
    /// The built-in defaults, with relative paths resolved against `base_dir`.
    pub fn default_in(base_dir: &Path) -> Self {
        let mut config = Self {
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            prompts: PromptsConfig::default(),
            recording: RecordingConfig::default(),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            hw: HwConfig::default(),
            call: CallConfig::default(),
            speech: SpeechConfig::default(),
            asr: AsrConfig::default(),
            dialog: DialogConfig::default(),
            backend: BackendConfig::default(),
            handoff: HandoffConfig::default(),
            qa: QaConfig::default(),
            auth: AuthConfig::default(),
            base_dir: base_dir.to_path_buf(),
        };
        config.prompts.dir = base_dir.join(&config.prompts.dir);
        config.recording.dir = base_dir.join(&config.recording.dir);
        config.storage.path = base_dir.join(&config.storage.path);
        config.asr.models_dir = base_dir.join(&config.asr.models_dir);
        config.dialog.flow = base_dir.join(&config.dialog.flow);
        config.backend.demo_db = base_dir.join(&config.backend.demo_db);
        config.qa.scorecards = base_dir.join(&config.qa.scorecards);
        config.auth.users_file = base_dir.join(&config.auth.users_file);
        config
    }
}

/// `[sip]`: signalling listeners and RFC 3261 timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipConfig {
    /// UDP listeners; empty disables UDP.
    pub udp: Vec<SocketAddr>,
    /// TCP listeners; empty disables TCP.
    pub tcp: Vec<SocketAddr>,
    /// Host/IP for SDP `c=` and Contact; `None` derives it from the local address.
    pub public_address: Option<String>,
    /// Concurrent calls before new INVITEs get 503.
    pub max_calls: u32,
    /// Retry-After sent with that 503.
    pub retry_after_secs: u32,
    pub user_agent: String,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060);
        Self {
            udp: vec![any],
            tcp: vec![any],
            public_address: None,
            max_calls: 200,
            retry_after_secs: 30,
            user_agent: "voxgate".to_string(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.retry_after_secs))
    }
}

/// `[media]`: RTP ports, codecs, jitter buffer, media threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaConfig {
    /// First RTP port (even); RTCP uses the odd port above.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub rtp_bind: IpAddr,
    /// Preference order.
    pub codecs: Vec<CodecName>,
    pub ptime_ms: u32,
    /// Media threads; 0 = one per core.
    pub threads: usize,
    /// Goertzel DTMF detection for trunks without RFC 4733.
    pub inband_dtmf: bool,
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// Hang up after this long without RTP; 0 = never.
    pub no_packet_timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            rtp_bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            codecs: vec![CodecName::Pcmu, CodecName::Pcma],
            ptime_ms: 20,
            threads: 0,
            inband_dtmf: true,
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            no_packet_timeout_secs: 60,
        }
    }
}

impl MediaConfig {
    pub fn ptime(&self) -> Duration {
        Duration::from_millis(u64::from(self.ptime_ms))
    }
    pub fn jitter_min(&self) -> Duration {
        Duration::from_millis(u64::from(self.jitter_min_ms))
    }
    pub fn jitter_max(&self) -> Duration {
        Duration::from_millis(u64::from(self.jitter_max_ms))
    }
    /// `None` when the timeout is disabled (0).
    pub fn no_packet_timeout(&self) -> Option<Duration> {
        (self.no_packet_timeout_secs > 0).then(|| Duration::from_secs(self.no_packet_timeout_secs))
    }
}

/// `[prompts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptsConfig {
    /// Root of the prompt sets (resolved).
    pub dir: PathBuf,
    /// Sub-directory of `dir` holding the set to play.
    pub language: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("prompts"),
            language: "en".to_string(),
        }
    }
}

impl PromptsConfig {
    /// `dir/language`, the directory to hand to the prompt cache.
    pub fn language_dir(&self) -> PathBuf {
        self.dir.join(&self.language)
    }
}

/// `[recording]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingConfig {
    pub enabled: bool,
    /// Where call WAVs go (resolved).
    pub dir: PathBuf,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("var/recordings"),
        }
    }
}

/// `[storage]`.
///
/// `Debug` is written by hand and `postgres_url` is not serialised: the URL may hold a password.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct StorageConfig {
    /// SQLite database file (resolved); unused when `postgres_url` is set.
    pub path: PathBuf,
    /// `postgres://user:pass@host:port/db`: store calls in PostgreSQL instead of the SQLite file.
    #[serde(skip_serializing)]
    pub postgres_url: Option<String>,
    /// Recordings and transcripts of calls that ended more than this many days ago are purged; 0 keeps
    /// them forever.
    pub retention_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("var/voxgate.db"),
            postgres_url: None,
            retention_days: 0,
        }
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("path", &self.path)
            .field(
                "postgres_url",
                &self.postgres_url.as_ref().map(|_| "<redacted>"),
            )
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpConfig {
    pub bind: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// tracing env-filter directives; RUST_LOG overrides.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// `[hw]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HwConfig {
    pub pin_media_threads: bool,
    /// Explicit core ids for media threads; empty = first N cores.
    pub media_cores: Vec<usize>,
}

/// `[call]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallConfig {
    pub max_duration_secs: u64,
    pub menu_timeout_secs: u64,
    /// Ring time between 180 Ringing and 200 OK; 0 answers at once.
    pub answer_delay_ms: u64,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            max_duration_secs: 3600,
            menu_timeout_secs: 8,
            answer_delay_ms: 0,
        }
    }
}

impl CallConfig {
    pub fn max_duration(&self) -> Duration {
        Duration::from_secs(self.max_duration_secs)
    }
    pub fn menu_timeout(&self) -> Duration {
        Duration::from_secs(self.menu_timeout_secs)
    }
    pub fn answer_delay(&self) -> Duration {
        Duration::from_millis(self.answer_delay_ms)
    }
}

/// Voice activity detector used for barge-in and endpointing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VadName {
    /// WebRTC's GMM VAD, most aggressive mode: best F1 on the phone-band corpus, ~1 µs/frame.
    #[default]
    Webrtc,
    /// earshot's neural VAD (16 kHz, ~40 ms more latency).
    Earshot,
}

impl VadName {
    pub const ALL: [VadName; 2] = [VadName::Webrtc, VadName::Earshot];
    pub fn as_str(self) -> &'static str {
        match self {
            VadName::Webrtc => "webrtc",
            VadName::Earshot => "earshot",
        }
    }
}

/// What happens between "caller speech seen" and "prompt flushed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BargeInResume {
    /// Flush the prompt as soon as enough speech is seen.
    #[default]
    Flush,
    /// Pause the prompt; flush if speech continues, resume it if the speech was a false alarm.
    Pause,
}

impl BargeInResume {
    pub const ALL: [BargeInResume; 2] = [BargeInResume::Flush, BargeInResume::Pause];
    pub fn as_str(self) -> &'static str {
        match self {
            BargeInResume::Flush => "flush",
            BargeInResume::Pause => "pause",
        }
    }
}

/// `[speech]`: hearing the caller while voxgate talks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpeechConfig {
    /// Listen to callers (VAD, barge-in, endpointing, ASR); `false` = keypad only.
    pub enabled: bool,
    pub vad: VadName,
    /// Caller speech interrupts interruptible prompts (DTMF always does).
    pub bargein: bool,
    pub bargein_min_speech_ms: u32,
    pub bargein_resume: BargeInResume,
    /// With `pause`: speech lasting this long after the pause confirms the barge-in.
    pub bargein_confirm_ms: u32,
    /// Cancel the echo of our own prompts before the VAD sees the caller's audio.
    pub echo_guard: bool,
    pub start_speech_ms: u32,
    pub end_silence_ms: u32,
    pub max_utterance_ms: u32,
    pub pre_roll_ms: u32,
    /// Interval between streaming partial re-decodes; 0 = finals only.
    pub partial_interval_ms: u32,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            vad: VadName::Webrtc,
            bargein: true,
            bargein_min_speech_ms: 160,
            bargein_resume: BargeInResume::Flush,
            bargein_confirm_ms: 400,
            echo_guard: true,
            start_speech_ms: 100,
            end_silence_ms: 700,
            max_utterance_ms: 15_000,
            pre_roll_ms: 300,
            partial_interval_ms: 600,
        }
    }
}

/// Whisper model voxgate installs and loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum AsrModel {
    /// English-only tiny (39 M parameters).
    #[default]
    #[serde(rename = "tiny.en")]
    TinyEn,
    /// Multilingual base (74 M parameters), needed for Mandarin.
    #[serde(rename = "base")]
    Base,
    /// tiny.en with 8-bit (Q8_0) matrices: faster decoding, half the memory.
    #[serde(rename = "tiny.en-q8_0")]
    TinyEnQ8,
    /// base with 8-bit (Q8_0) matrices.
    #[serde(rename = "base-q8_0")]
    BaseQ8,
}

impl AsrModel {
    pub const ALL: [AsrModel; 4] = [
        AsrModel::TinyEn,
        AsrModel::Base,
        AsrModel::TinyEnQ8,
        AsrModel::BaseQ8,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AsrModel::TinyEn => "tiny.en",
            AsrModel::Base => "base",
            AsrModel::TinyEnQ8 => "tiny.en-q8_0",
            AsrModel::BaseQ8 => "base-q8_0",
        }
    }

    /// Transcribes English only (cannot serve Mandarin flows).
    pub fn is_english_only(self) -> bool {
        matches!(self, AsrModel::TinyEn | AsrModel::TinyEnQ8)
    }
}

/// Language callers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AsrLanguage {
    #[default]
    En,
    /// Mandarin, transcribed in Simplified Chinese (multilingual model only).
    Zh,
}

impl AsrLanguage {
    pub const ALL: [AsrLanguage; 2] = [AsrLanguage::En, AsrLanguage::Zh];
    pub fn as_str(self) -> &'static str {
        match self {
            AsrLanguage::En => "en",
            AsrLanguage::Zh => "zh",
        }
    }
}

/// `[asr]`: offline Whisper speech recognition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsrConfig {
    pub model: AsrModel,
    /// Where GGML models live (resolved); `voxgate run` installs the model here when missing.
    pub models_dir: PathBuf,
    pub language: AsrLanguage,
    /// Decoder worker threads (each decodes one utterance at a time).
    pub workers: usize,
    /// Compute threads per decode.
    pub threads_per_worker: u16,
    /// Utterances waiting for a worker before new ones are refused (callers then get keypad prompts).
    pub queue: usize,
    /// Domain biasing: words the decoder should expect; empty = none.
    pub initial_prompt: String,
    /// A decode taking longer is aborted.
    pub max_decode_ms: u64,
    /// Recognise speech; `false` keeps VAD, barge-in and endpointing but loads no model (callers are
    /// steered to the keypad), e.g. on a box sized for media only.
    pub enabled: bool,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model: AsrModel::TinyEn,
            models_dir: PathBuf::from("var/models"),
            language: AsrLanguage::En,
            workers: 1,
            threads_per_worker: 2,
            queue: 4,
            initial_prompt: "Demo bank hotline: balance, card, lost card, stolen card, freeze, fraud, payment, agent."
                .to_string(),
            max_decode_ms: 10_000,
            enabled: true,
        }
    }
}

impl AsrConfig {
    pub fn max_decode(&self) -> Duration {
        Duration::from_millis(self.max_decode_ms)
    }
}

/// `[dialog]`: which call flow runs, per dialled number, and caller voiceprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialogConfig {
    /// Flow file (declarative TOML) for calls to numbers not listed in `numbers` (resolved).
    /// This crate only resolves the path; the binary loads and validates the flow.
    pub flow: PathBuf,
    /// Dialled number (digits with an optional leading `+`) → flow file (resolved), e.g. to pick
    /// the language per DID. Sorted by number: matching is exact, so the order carries no meaning.
    pub numbers: Vec<(String, PathBuf)>,
    /// Offer consented voiceprint enrolment after PIN verification, and verify enrolled callers'
    /// voices in the background on later calls.
    pub voiceprint: bool,
    /// Cosine score at or above which a voiceprint is accepted, in thousandths (900 = 0.90; the equal-error point measured on synthetic phone voices is 0.92, see docs/dialog.md).
    ///
    /// Stored as an integer rather than `f64` so the config stays `Eq` and renders back exactly;
    /// the file takes a float strictly between 0 and 1 with at most three decimals.
    /// [`DialogConfig::voiceprint_threshold`] gives the score.
    pub voiceprint_threshold_milli: u16,
    /// Caller speech collected before an enrolment template is made.
    pub voiceprint_enroll_secs: u32,
    /// Caller speech needed before a verification verdict.
    pub voiceprint_min_secs: u32,
}

impl Default for DialogConfig {
    fn default() -> Self {
        Self {
            flow: PathBuf::from("flows/bank.en.toml"),
            numbers: Vec::new(),
            voiceprint: true,
            voiceprint_threshold_milli: 900,
            voiceprint_enroll_secs: 8,
            voiceprint_min_secs: 3,
        }
    }
}

impl DialogConfig {
    /// The acceptance threshold as a cosine score in (0, 1).
    pub fn voiceprint_threshold(&self) -> f32 {
        f32::from(self.voiceprint_threshold_milli) / 1000.0
    }
    pub fn voiceprint_enroll(&self) -> Duration {
        Duration::from_secs(u64::from(self.voiceprint_enroll_secs))
    }
    pub fn voiceprint_min(&self) -> Duration {
        Duration::from_secs(u64::from(self.voiceprint_min_secs))
    }
}

/// Where account questions (PIN checks, balances, card freezes) are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The built-in demo bank (SQLite file `demo_db`).
    #[default]
    Demo,
    /// The bank's own service behind a JSON webhook (`url`).
    Webhook,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::Demo, BackendKind::Webhook];
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Demo => "demo",
            BackendKind::Webhook => "webhook",
        }
    }
}

/// `[backend]`: the banking back end behind the dialog.
///
/// `Debug` is written by hand so `bearer_token` never reaches a log line; it is also left out
/// of serialisation.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    pub kind: BackendKind,
    /// Demo bank database (resolved); used with [`BackendKind::Demo`].
    pub demo_db: PathBuf,
    /// Wrong PINs in a row before the demo bank locks the account.
    pub max_pin_attempts: u32,
    /// Webhook endpoint, `http://` or `https://`; non-empty when `kind` is webhook, else may be "".
    pub url: String,
    /// Per webhook attempt.
    pub timeout_ms: u64,
    /// Extra webhook attempts after the first.
    pub retries: u32,
    /// Wait before the first webhook retry (doubling per retry).
    pub backoff_ms: u64,
    /// Sent as `Authorization: Bearer …` to the webhook; "" = none.
    #[serde(skip_serializing)]
    pub bearer_token: String,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            kind: BackendKind::Demo,
            demo_db: PathBuf::from("var/demo-bank.sqlite"),
            max_pin_attempts: 3,
            url: String::new(),
            timeout_ms: 3000,
            retries: 2,
            backoff_ms: 200,
            bearer_token: String::new(),
        }
    }
}

/// Hand-written so the token never reaches a log line.
impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig")
            .field("kind", &self.kind)
            .field("demo_db", &self.demo_db)
            .field("max_pin_attempts", &self.max_pin_attempts)
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .field(
                "bearer_token",
                &(!self.bearer_token.is_empty()).then_some("<redacted>"),
            )
            .finish()
    }
}

impl BackendConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn backoff(&self) -> Duration {
        Duration::from_millis(self.backoff_ms)
    }
}

/// `[handoff]`: human agents, reached by voxgate as a B2BUA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandoffConfig {
    /// How long an agent's phone rings before the next agent is tried.
    pub ring_timeout_secs: u32,
    /// Longest wait in the queue before the caller is offered options.
    pub queue_timeout_secs: u32,
    /// Interval of queue position / estimated wait announcements.
    pub announce_every_secs: u32,
    /// Audio played while queued (resolved); `None` = built-in comfort noise, no tones.
    pub hold_music: Option<PathBuf>,
    /// SIP URI for a blind transfer (REFER) instead of bridging agents; `None` = bridge.
    pub refer_target: Option<String>,
    /// `http(s)://` URL that gets the call's context (JSON) each time an agent's phone rings.
    pub screen_pop_url: Option<String>,
    /// `[[handoff.agent]]` tables, in file order.
    pub agents: Vec<AgentConfig>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            ring_timeout_secs: 20,
            queue_timeout_secs: 90,
            announce_every_secs: 30,
            hold_music: None,
            refer_target: None,
            screen_pop_url: None,
            agents: Vec::new(),
        }
    }
}

impl HandoffConfig {
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.ring_timeout_secs))
    }
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.queue_timeout_secs))
    }
    pub fn announce_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.announce_every_secs))
    }
}

/// One `[[handoff.agent]]`: a human who can take transferred calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentConfig {
    /// Unique, non-empty; names the agent in logs and call records.
    pub name: String,
    /// Where the agent leg is sent: a `sip:` or `sips:` URI.
    pub uri: String,
    /// Lowercase skills matched against the flow's transfer skill (e.g. "fraud", "general").
    pub skills: Vec<String>,
    /// Languages the agent speaks (prompt-set tags such as "en", "zh").
    pub languages: Vec<String>,
}

impl Default for AgentConfig {
    /// `name`, `uri` and `skills` have no usable default and must be given in the file; the
    /// default exists for `languages`.
    fn default() -> Self {
        Self {
            name: String::new(),
            uri: String::new(),
            skills: Vec::new(),
            languages: vec!["en".to_string()],
        }
    }
}

/// `[qa]`: automated quality checking of every call and live risk alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QaConfig {
    /// Score every finished call and raise live alerts.
    pub enabled: bool,
    /// Directory of scorecard files (`*.toml`, resolved); each applies to calls in its language.
    pub scorecards: PathBuf,
    /// Run realtime rules on partial transcripts too, so an alert can arrive before the caller finishes.
    pub live_partials: bool,
    /// `http(s)://` URL each alert is POSTed to (JSON); `None` = SSE and the API only.
    pub alert_webhook: Option<String>,
    pub alert_webhook_timeout_ms: u64,
}

impl Default for QaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            scorecards: PathBuf::from("scorecards"),
            live_partials: true,
            alert_webhook: None,
            alert_webhook_timeout_ms: 3000,
        }
    }
}

impl QaConfig {
    pub fn alert_webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.alert_webhook_timeout_ms)
    }
}

/// What a web UI / API user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including purges and user administration.
    Admin,
    /// Live board, alerts, calls and scores (read only).
    Supervisor,
    /// Calls, scores, reviews (overrides) and exports.
    QaReviewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Supervisor, Role::QaReviewer];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::QaReviewer => "qa_reviewer",
        }
    }
    pub fn from_name(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One `[[auth.user]]`: a person who logs in to the web UI.
///
/// `Debug` is hand-written and the hash is not serialised, so neither reaches a log line.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    /// Argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), made by `voxgate auth hash-password`.
    #[serde(skip_serializing)]
    pub password_hash: String,
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// One `[[auth.token]]`: an API client (`Authorization: Bearer …`), stored as the token's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token, made by `voxgate auth new-token`.
    pub sha256: String,
}

/// `[auth]`: who may use the web UI and the API. No user or password is built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthConfig {
    /// A UI login lasts this long.
    pub session_hours: u32,
    /// Wrong passwords in a row before a user is locked out for `lockout_secs`.
    pub max_failures: u32,
    pub lockout_secs: u32,
    /// Users managed with `voxgate auth add-user` (TOML with `[[user]]` tables, resolved); read at start-up
    /// beside `[[auth.user]]`. When neither holds a user, the first start creates an `admin` with a random
    /// password, printed once.
    pub users_file: PathBuf,
    pub users: Vec<UserConfig>,
    pub tokens: Vec<TokenConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_hours: 12,
            max_failures: 5,
            lockout_secs: 300,
            users_file: PathBuf::from("var/users.toml"),
            users: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

impl AuthConfig {
    pub fn session(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_hours) * 3600)
    }
    pub fn lockout(&self) -> Duration {
        Duration::from_secs(u64::from(self.lockout_secs))
    }
}
