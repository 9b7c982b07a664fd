//! The call flows this box runs and the prompt audio they speak, loaded at start-up and on reload.
//!
//! Calls take an `Arc` of their flow when they arrive, so a reload (SIGHUP) changes what new calls get while
//! calls in progress finish on the flow they started with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use voxgate_config::Config;
use voxgate_dialog::flow::{self, Flow};
use voxgate_media::player::{PlayerError, PromptCache};

/// A flow and the prompt set in its language.
#[derive(Clone)]
pub struct DialogSet {
    pub flow: Arc<Flow>,
    pub prompts: Arc<PromptCache>,
    /// Prompt fragment → words, for voxgate's turns in the transcript (flow prompts and readout fragments).
    pub texts: Arc<HashMap<String, String>>,
}

/// A language's prompt audio and the words of its readout fragments.
type LanguageSet = (Arc<PromptCache>, Arc<HashMap<String, String>>);

/// Every flow in the config: the default and those chosen by dialled number.
#[derive(Clone)]
pub struct Dialogs {
    default: DialogSet,
    by_number: Vec<(String, DialogSet)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DialogsError {
    #[error("{0}")]
    Flow(#[from] flow::LoadError),
    #[error("cannot load prompts from {dir}: {source}")]
    Prompts { dir: PathBuf, source: PlayerError },
    #[error(
        "{flow}: a Mandarin flow needs the multilingual speech model; [asr] model = tiny.en is English-only (set model = \"base\")"
    )]
    EnglishOnlyModel { flow: PathBuf },
    #[error(
        "{flow}: no audio for prompt(s) {missing} in {dir} (render them with scripts/make-prompts.sh)"
    )]
    MissingAudio {
        flow: PathBuf,
        dir: PathBuf,
        missing: String,
    },
}

impl Dialogs {
    /// Loads and validates every configured flow and its prompt audio; any problem stops start-up (or the
    /// reload, which then keeps the flows already running).
    pub fn load(cfg: &Config) -> Result<Self, DialogsError> {
        let mut caches: HashMap<String, LanguageSet> = HashMap::new();
        let mut load_one = |path: &Path| -> Result<DialogSet, DialogsError> {
            let flow = Arc::new(flow::load_file(path)?);
            if flow.language == "zh" && cfg.speech.enabled && cfg.asr.model.is_english_only() {
                return Err(DialogsError::EnglishOnlyModel {
                    flow: path.to_path_buf(),
                });
            }
            let dir = cfg.prompts.dir.join(&flow.language);
            let (prompts, base_texts) = match caches.get(&flow.language) {
                Some(c) => c.clone(),
                None => {
                    let cache =
                        PromptCache::load_dir(&dir).map_err(|source| DialogsError::Prompts {
                            dir: dir.clone(),
                            source,
                        })?;
                    let texts = crate::speech::load_prompt_texts(&dir);
                    let c = (Arc::new(cache), texts);
                    caches.insert(flow.language.clone(), c.clone());
                    c
                }
            };
            let missing: Vec<&str> = flow
                .prompts
                .keys()
                .filter(|k| !prompts.contains(k))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(DialogsError::MissingAudio {
                    flow: path.to_path_buf(),
                    dir,
                    missing: missing.join(", "),
                });
            }
            let mut texts = (*base_texts).clone();
            texts.extend(flow.prompts.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(DialogSet {
                flow,
                prompts,
                texts: Arc::new(texts),
            })
        };
        let default = load_one(&cfg.dialog.flow)?;
        let mut by_number = Vec::with_capacity(cfg.dialog.numbers.len());
        for (number, path) in &cfg.dialog.numbers {
            by_number.push((number.clone(), load_one(path)?));
        }
        Ok(Self { default, by_number })
    }

    /// The flow for a dialled number (exact match, ignoring a leading `+`), else the default.
    pub fn for_called(&self, called: Option<&str>) -> &DialogSet {
        let Some(called) = called else {
            return &self.default;
        };
        let plain = |s: &str| s.trim_start_matches('+').to_string();
        let want = plain(called);
        self.by_number
            .iter()
            .find(|(n, _)| plain(n) == want)
            .map_or(&self.default, |(_, set)| set)
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ({})",
            self.default.flow.name, self.default.flow.language
        );
        for (n, set) in &self.by_number {
            s.push_str(&format!(
                ", {n} → {} ({})",
                set.flow.name, set.flow.language
            ));
        }
        s
    }
}

/// The user part of a SIP/tel URI: `sip:+15550100001@host;user=phone` → `+15550100001`.
pub fn uri_user(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '?']).next().unwrap_or("");
    (!user.is_empty() && rest.contains('@') || uri.starts_with("tel:"))
        .then(|| user.to_string())
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::uri_user;

    #[test]
    fn user_parts() {
        assert_eq!(
            uri_user("sip:+15550100001@10.0.0.1;user=phone").as_deref(),
            Some("+15550100001")
        );
        assert_eq!(uri_user("sips:200@pbx").as_deref(), Some("200"));
        assert_eq!(
            uri_user("tel:+15550100002").as_deref(),
            Some("+15550100002")
        );
        assert_eq!(uri_user("sip:pbx.example.com"), None);
        assert_eq!(uri_user("mailto:x@y"), None);
    }
}
