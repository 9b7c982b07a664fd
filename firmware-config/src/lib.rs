//! The appliance's single TOML config file: schema, defaults and validation.
//!
//! Every error points at `file:line:column`, and all semantic problems are reported at
//! once, because the operator typically edits this file on the box with no other feedback.

mod error;
mod raw;
mod render;
mod schema;
mod validate;

use std::path::Path;

pub use error::{ConfigError, Diagnostic, Location, Problem};
pub use schema::{
    AgentConfig, AsrConfig, AsrLanguage, AsrModel, AuthConfig, BackendConfig, BackendKind,
    BargeInResume, CallConfig, CodecName, Config, DialogConfig, HandoffConfig, HttpConfig,
    HwConfig, LogConfig, LogFormat, MediaConfig, PromptsConfig, QaConfig, RecordingConfig, Role,
    SipConfig, SpeechConfig, StorageConfig, TokenConfig, UserConfig, VadName,
};
pub use validate::{valid_password_hash, valid_user_name};

/// Reads and validates the config at `path` against the codecs compiled into this build.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_codecs(path, CodecName::COMPILED)
}

/// [`load`] with an explicit list of codecs the binary can actually negotiate.
pub fn load_with_codecs(path: &Path, compiled: &[CodecName]) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_with_codecs(&text, path, compiled)
}

/// Parses config text; `origin` names it in errors and its parent directory anchors
/// relative paths.
pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    parse_with_codecs(text, origin, CodecName::COMPILED)
}

/// [`parse`] with an explicit list of compiled codecs.
pub fn parse_with_codecs(
    text: &str,
    origin: &Path,
    compiled: &[CodecName],
) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        location: Location::from_offset(origin, text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim_end().to_string(),
    })?;
    validate::Validator::new(text, origin, compiled)
        .run(&raw)
        .map_err(ConfigError::Invalid)
}

impl Config {
    /// This config as a fully commented TOML file; parsing it back yields the same config.
    pub fn to_toml_string(&self) -> String {
        render::to_toml_string(self)
    }
}

#[cfg(test)]
mod tests;
