//! Config errors: every one carries `file:line:column` so an operator editing the appliance's
//! config over SSH can jump straight to the offending key.

use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};

use crate::schema::CodecName;

/// A position in the config file, 1-based, column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Converts a byte offset into `text` to line/column; offsets past the end clamp to it.
    pub(crate) fn from_offset(file: &Path, text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One semantic problem with a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("must not be 0")]
    Zero,
    #[error("RTP port {port} must be even (RTP even, RTCP the odd port above it)")]
    OddRtpPort { port: i64 },
    #[error("rtp_port_min {min} must be below rtp_port_max {max} (one even/odd pair at least)")]
    PortRangeEmpty { min: i64, max: i64 },
    #[error("invalid socket address {value:?}: {source}")]
    BadSocketAddr {
        value: String,
        #[source]
        source: AddrParseError,
    },
    #[error("invalid IP address {value:?}: {source}")]
    BadIpAddr {
        value: String,
        #[source]
        source: AddrParseError,
    },
    #[error("listen address {addr} given twice")]
    DuplicateAddr { addr: SocketAddr },
    #[error("invalid public address {value:?} (expected a host name or IP address, no port)")]
    BadPublicAddress { value: String },
    #[error("unknown codec {name:?} (known: pcmu, pcma, opus)")]
    UnknownCodec { name: String },
    #[error("codec {codec} is not compiled into this build (enable the `opus` feature)")]
    CodecNotCompiled { codec: CodecName },
    #[error("codec {codec} listed twice")]
    DuplicateCodec { codec: CodecName },
    #[error("at least one codec is required")]
    NoCodecs,
    #[error("ptime {value} ms must be a multiple of 10 in 10..=60")]
    BadPtime { value: i64 },
    #[error("jitter_min_ms {min} exceeds jitter_max_ms {max}")]
    JitterInverted { min: i64, max: i64 },
    #[error("t2_ms {t2} must not be below t1_ms {t1}")]
    T2BelowT1 { t1: i64, t2: i64 },
    #[error("user agent must be non-empty printable ASCII, got {value:?}")]
    BadUserAgent { value: String },
    #[error("path must not be empty")]
    EmptyPath,
    #[error("invalid language tag {value:?} (letters, digits, '-' or '_')")]
    BadLanguage { value: String },
    #[error("invalid log filter {value:?} (non-empty, no whitespace or control characters)")]
    BadLogLevel { value: String },
    #[error("unknown log format {value:?} (text or json)")]
    UnknownLogFormat { value: String },
    #[error("core {core} listed twice")]
    DuplicateCore { core: i64 },
    #[error("unknown value {value:?} (expected one of: {expected})")]
    UnknownChoice {
        value: String,
        expected: &'static str,
    },
    #[error("language {language} needs the multilingual model (model = \"base\")")]
    LanguageNeedsMultilingual { language: &'static str },
    #[error("{value} ms must be below max_utterance_ms {max} ms")]
    NotBelowMaxUtterance { value: i64, max: i64 },
    /// The float as written (kept as text so `Problem` stays `Eq`).
    #[error("{value} must be strictly between 0 and 1, with at most 3 decimals")]
    BadThreshold { value: String },
    #[error("invalid dialled number {value:?} (digits with an optional leading '+')")]
    BadDialledNumber { value: String },
    #[error(
        "dialled number {value:?} also given as {other:?} (a leading '+' is ignored when matching)"
    )]
    DuplicateNumber { value: String, other: String },
    #[error("kind = \"webhook\" needs url (http:// or https://)")]
    MissingWebhookUrl,
    #[error("invalid URL {value:?} (expected http://host/... or https://host/..., no spaces)")]
    BadUrl { value: String },
    /// Deliberately without the value: it is a secret.
    #[error("bearer_token must be printable ASCII without spaces (value not shown)")]
    BadBearerToken,
    #[error("invalid SIP URI {value:?} (expected sip:... or sips:..., no spaces)")]
    BadSipUri { value: String },
    #[error("agent name must be non-empty without control characters, got {value:?}")]
    BadAgentName { value: String },
    #[error("agent name {name:?} given twice")]
    DuplicateAgent { name: String },
    #[error("invalid skill {value:?} (lowercase letters, digits, '-' or '_')")]
    BadSkill { value: String },
    #[error("must list at least one entry")]
    EmptyList,
    /// Deliberately without the value: it may hold a password.
    #[error("postgres_url must be postgres://… or postgresql://…, printable ASCII without spaces (value not shown)")]
    BadPostgresUrl,
    #[error("invalid user name {value:?} (1..=64 letters, digits, '.', '_', '-', '@')")]
    BadUserName { value: String },
    #[error("name {name:?} given twice")]
    DuplicateUser { name: String },
    /// Deliberately without the value.
    #[error("password_hash must be an argon2 PHC string from `voxgate auth hash-password` (value not shown)")]
    BadPasswordHash,
    #[error("sha256 must be 64 lowercase hex digits from `voxgate auth new-token`")]
    BadTokenHash,
}

/// A [`Problem`] at a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {key}: {problem}")]
pub struct Diagnostic {
    pub location: Location,
    /// Dotted key, with `[i]` for array (and array-of-tables) elements (`media.codecs[1]`,
    /// `handoff.agent[0].uri`); keys that are not bare TOML keys are quoted
    /// (`dialog.numbers."+15550200"`).
    pub key: String,
    pub problem: Problem,
}

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong value type (reported by the TOML parser, which
    /// stops at the first one).
    #[error("{location}: {message}")]
    Parse { location: Location, message: String },
    /// One or more values are well-formed but unacceptable; all are reported at once.
    #[error("{}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_line_and_char_column() {
        let text = "a = 1\nbé = 2\n\nc";
        let f = Path::new("x.toml");
        let at = |o| {
            let l = Location::from_offset(f, text, o);
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(4), (1, 5));
        assert_eq!(at(6), (2, 1));
        // 'é' is two bytes but one column; offset 9 is the space after it.
        assert_eq!(at(9), (2, 3));
        // Inside the multi-byte char: clamps back to its start.
        assert_eq!(at(8), (2, 2));
        assert_eq!(at(text.len()), (4, 2));
        assert_eq!(at(10_000), (4, 2));
        assert_eq!(Location::from_offset(f, text, 6).to_string(), "x.toml:2:1");
    }
}
