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
            base_dir: base_dir.to_path_buf(),
        };
        config.prompts.dir = base_dir.join(&config.prompts.dir);
        config.recording.dir = base_dir.join(&config.recording.dir);
        config.storage.path = base_dir.join(&config.storage.path);
        config.asr.models_dir = base_dir.join(&config.asr.models_dir);
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageConfig {
    /// SQLite database file (resolved).
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("var/voxgate.db"),
        }
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
}

impl AsrModel {
    pub const ALL: [AsrModel; 2] = [AsrModel::TinyEn, AsrModel::Base];
    pub fn as_str(self) -> &'static str {
        match self {
            AsrModel::TinyEn => "tiny.en",
            AsrModel::Base => "base",
        }
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
        }
    }
}

impl AsrConfig {
    pub fn max_decode(&self) -> Duration {
        Duration::from_millis(self.max_decode_ms)
    }
}
