//! Intent classification over ASR hypotheses.
//!
//! Each intent gets two kinds of evidence, combined as independent signals (noisy-OR):
//!
//! * **example similarity** — a soft, IDF-weighted F1 between the utterance and each example phrase: English
//!   content words matched fuzzily (exact, stem, sound-alike key, edit distance, and adjacent-word joins so
//!   "a count" finds "account"); Mandarin as character unigrams + bigrams after dropping particles. Words
//!   shared by many intents weigh little; words no intent knows ("weather") dilute the match, which is what
//!   pushes out-of-scope requests under the accept threshold. The best example's F1 counts raised to the
//!   power 1.5, so matching one of two content words ("change my address" vs "I changed my mind") stays
//!   weak.
//! * **weighted keywords** — a word or phrase with a weight in (0, 1], roughly "how sure this alone makes
//!   us"; several hits combine as noisy-OR. Negative keywords scale the score down ("cancel my *card*" is not
//!   the `cancel` intent).
//!
//! Several hypotheses (an n-best list, or a final and its partials) are combined per intent as the best
//! score over hypotheses, each discounted by `sqrt(confidence / top confidence)`: evidence that only a
//! less likely reading contains still counts, a little less, and a weak partial ("check my") does not drag
//! down the final that completed it, as averaging would.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::NluError;
use super::phonetic::{word_similarity, WordForm};
use super::text::{is_han_stop, is_stop_word, normalize, stem, Normalized};

/// A keyword or key phrase and how strongly it alone indicates the intent.
#[derive(Clone, Debug, PartialEq)]
pub struct Keyword {
    /// A word or multi-word phrase (English: stop-words inside are ignored, the rest must appear in order
    /// with at most two words between); or Han characters, matched as a substring.
    pub phrase: String,
    /// In (0, 1]: 0.9 "this word alone means the intent", 0.3 "a hint".
    pub weight: f32,
}

/// One intent as a flow defines it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct IntentSpec {
    pub name: String,
    /// Typical requests, as callers say them.
    pub examples: Vec<String>,
    pub keywords: Vec<Keyword>,
    /// Words that argue against this intent even when its keywords match.
    pub negative: Vec<Keyword>,
}

impl IntentSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    pub fn examples<I, S>(mut self, examples: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.examples.extend(examples.into_iter().map(Into::into));
        self
    }

    pub fn keywords(mut self, keywords: &[(&str, f32)]) -> Self {
        self.keywords.extend(keywords.iter().map(|(p, w)| Keyword {
            phrase: (*p).to_owned(),
            weight: *w,
        }));
        self
    }

    pub fn negative(mut self, keywords: &[(&str, f32)]) -> Self {
        self.negative.extend(keywords.iter().map(|(p, w)| Keyword {
            phrase: (*p).to_owned(),
            weight: *w,
        }));
        self
    }

    /// Adds `other`'s evidence to this spec (same intent in another language, or site additions).
    pub fn merge(&mut self, other: IntentSpec) {
        self.examples.extend(other.examples);
        self.keywords.extend(other.keywords);
        self.negative.extend(other.negative);
    }
}

/// Decision thresholds; sites tune them against their own call logs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NluConfig {
    /// Lowest best score accepted as an intent; below it the request is out of scope.
    pub accept: f32,
    /// Lowest lead of the best intent over the runner-up; closer than this the dialog should clarify.
    pub min_margin: f32,
}

impl Default for NluConfig {
    fn default() -> Self {
        Self {
            accept: 0.5,
            min_margin: 0.1,
        }
    }
}

impl NluConfig {
    fn validate(&self) -> Result<(), NluError> {
        for (field, value) in [("accept", self.accept), ("min_margin", self.min_margin)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(NluError::BadThreshold { field, value });
            }
        }
        Ok(())
    }
}

/// One recognition hypothesis: an n-best entry, or a final result and its partials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hypothesis<'a> {
    pub text: &'a str,
    /// The recogniser's confidence in 0..=1; only the ratios to the most confident hypothesis matter.
    pub confidence: f32,
}

impl<'a> Hypothesis<'a> {
    pub fn new(text: &'a str, confidence: f32) -> Self {
        Self { text, confidence }
    }
}

/// An intent and its score in 0..=1.
#[derive(Clone, Debug, PartialEq)]
pub struct IntentScore {
    pub intent: Arc<str>,
    pub score: f32,
}

/// Why no intent was accepted; each calls for a different re-prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutOfScope {
    /// No words at all: ask again.
    NoSpeech,
    /// Nothing matched well enough: say what the line can do.
    LowScore,
    /// Two intents are about equally likely: ask which one.
    Ambiguous,
}

/// What the classifier decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Intent(Arc<str>),
    OutOfScope(OutOfScope),
}

/// Every intent ranked best first, the best one's lead, and the decision.
#[derive(Clone, Debug, PartialEq)]
pub struct IntentResult {
    pub ranked: Vec<IntentScore>,
    /// Best score minus the runner-up's (the best score if there is only one intent).
    pub margin: f32,
    pub outcome: Outcome,
}

impl IntentResult {
    /// The top-ranked intent, accepted or not (for clarification: "did you mean …?").
    pub fn best(&self) -> Option<&IntentScore> {
        self.ranked.first()
    }

    /// The runner-up, the other half of an ambiguity.
    pub fn runner_up(&self) -> Option<&IntentScore> {
        self.ranked.get(1)
    }

    /// The accepted intent's name, if any.
    pub fn intent(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Intent(name) => Some(name),
            Outcome::OutOfScope(_) => None,
        }
    }

    pub fn is_out_of_scope(&self) -> bool {
        matches!(self.outcome, Outcome::OutOfScope(_))
    }

    /// The score of `intent` (0 if unknown).
    pub fn score_of(&self, intent: &str) -> f32 {
        self.ranked
            .iter()
            .find(|s| &*s.intent == intent)
            .map_or(0.0, |s| s.score)
    }
}

type FeatureId = u32;

/// How much an utterance word that no intent knows weighs against a match (IDF scale: 1 = a word unique
/// to one intent).
const UNKNOWN_WEIGHT: f32 = 0.55;
/// Example similarity is raised to this power before it counts: a half match (one of two content words,
/// "change my address" vs "I changed my mind") is weak evidence, a near-full match stays strong.
const EXAMPLE_SHARPNESS: f32 = 1.5;
/// Joined adjacent words ("a count" → "acount") are a guess; they count a little less than a real word.
const JOIN_FACTOR: f32 = 0.9;
/// Most words allowed between the parts of a key phrase.
const PHRASE_GAP: usize = 2;
/// A key phrase whose words appear out of order or far apart still hints, at this factor.
const LOOSE_PHRASE_FACTOR: f32 = 0.6;
/// A Han keyword of 3+ characters heard with one character wrong (a homophone) counts this much.
const HAN_NEAR_FACTOR: f32 = 0.6;

#[derive(Debug)]
struct Example {
    /// Sorted, deduplicated.
    features: Vec<FeatureId>,
    recall_den: f32,
}

#[derive(Debug)]
enum Matcher {
    Words(Vec<FeatureId>),
    Han(Vec<char>),
}

#[derive(Debug)]
struct Rule {
    matcher: Matcher,
    weight: f32,
}

#[derive(Debug)]
struct Intent {
    name: Arc<str>,
    examples: Vec<Example>,
    keywords: Vec<Rule>,
    negative: Vec<Rule>,
}

/// A compiled intent set: build once per flow, classify per utterance (pure, allocation-light, `Sync`).
#[derive(Debug)]
pub struct IntentModel {
    intents: Vec<Intent>,
    /// IDF per feature, 0..=1.
    idf: Vec<f32>,
    /// Normalised stem or Han n-gram → feature.
    vocab: HashMap<String, FeatureId>,
    /// The word features, for fuzzy scans.
    words: Vec<(FeatureId, WordForm)>,
    config: NluConfig,
}

/// Content stems of an English text, in order; all its words when it has only stop-words ("what can I
/// do" is a request in its own right).
fn content_stems(norm: &Normalized) -> Vec<String> {
    let all_stop = norm.words.iter().all(|w| is_stop_word(w));
    norm.words
        .iter()
        .filter(|w| all_stop || !is_stop_word(w))
        .map(|w| stem(w))
        .collect()
}

/// Han unigrams and bigrams of each run after dropping particles.
fn han_ngrams(norm: &Normalized) -> Vec<String> {
    let mut out = Vec::new();
    for run in &norm.han_runs {
        let kept: Vec<char> = run.iter().copied().filter(|c| !is_han_stop(*c)).collect();
        for (i, c) in kept.iter().enumerate() {
            out.push(c.to_string());
            if let Some(n) = kept.get(i + 1) {
                out.push([*c, *n].iter().collect());
            }
        }
    }
    out
}

struct Builder {
    vocab: HashMap<String, FeatureId>,
    words: Vec<(FeatureId, WordForm)>,
    /// Per feature, the last intent index that used it and how many intents did.
    df: Vec<(usize, u32)>,
}

impl Builder {
    /// The feature for `text`, counted as evidence of `intent` unless that is `None`.
    fn intern(&mut self, text: &str, is_word: bool, intent: Option<usize>) -> FeatureId {
        let id = match self.vocab.get(text) {
            Some(id) => *id,
            None => {
                let id = self.df.len() as FeatureId;
                self.vocab.insert(text.to_owned(), id);
                self.df.push((usize::MAX, 0));
                if is_word {
                    self.words.push((id, WordForm::new(text)));
                }
                id
            }
        };
        if let Some(intent) = intent {
            let entry = &mut self.df[id as usize];
            if entry.0 != intent {
                *entry = (intent, entry.1 + 1);
            }
        }
        id
    }

    fn rule(
        &mut self,
        spec: &IntentSpec,
        index: usize,
        kw: &Keyword,
        intent: Option<usize>,
    ) -> Result<Rule, NluError> {
        if !(kw.weight > 0.0 && kw.weight <= 1.0) {
            return Err(NluError::BadWeight {
                intent: spec.name.clone(),
                index,
                weight: kw.weight,
            });
        }
        let norm = normalize(&kw.phrase);
        let matcher = if !norm.han_runs.is_empty() {
            Matcher::Han(norm.han_runs.concat())
        } else {
            // A keyword of stop-words only would never be looked at in a real request.
            let stems: Vec<String> = norm
                .words
                .iter()
                .filter(|w| !is_stop_word(w))
                .map(|w| stem(w))
                .collect();
            if stems.is_empty() {
                return Err(NluError::EmptyKeyword {
                    intent: spec.name.clone(),
                    index,
                });
            }
            Matcher::Words(stems.iter().map(|s| self.intern(s, true, intent)).collect())
        };
        Ok(Rule {
            matcher,
            weight: kw.weight,
        })
    }
}

/// What one utterance offers to match against.
struct Analysis {
    /// Per precision item (content word or Han n-gram): the features it matches and how well.
    cover: Vec<Vec<(FeatureId, f32)>>,
    /// Per precision item, its weight.
    item_weight: Vec<f32>,
    item_weight_sum: f32,
    /// Per feature: best match strength anywhere in the utterance, and the token span of that match.
    best: Vec<f32>,
    span: Vec<(usize, usize)>,
    /// Han runs as heard, and without particles.
    han_runs: Vec<Vec<char>>,
    empty: bool,
}

impl IntentModel {
    /// Compiles `specs` with the default thresholds.
    pub fn new(specs: &[IntentSpec]) -> Result<Self, NluError> {
        Self::with_config(specs, NluConfig::default())
    }

    pub fn with_config(specs: &[IntentSpec], config: NluConfig) -> Result<Self, NluError> {
        config.validate()?;
        if specs.is_empty() {
            return Err(NluError::NoIntents);
        }
        let mut b = Builder {
            vocab: HashMap::new(),
            words: Vec::new(),
            df: Vec::new(),
        };
        let mut intents = Vec::with_capacity(specs.len());
        let mut raw_examples: Vec<Vec<Vec<FeatureId>>> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if spec.name.trim().is_empty() {
                return Err(NluError::EmptyName { index: i });
            }
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(NluError::DuplicateIntent {
                    intent: spec.name.clone(),
                });
            }
            if spec.examples.is_empty() && spec.keywords.is_empty() {
                return Err(NluError::NoEvidence {
                    intent: spec.name.clone(),
                });
            }
            let mut examples = Vec::with_capacity(spec.examples.len());
            for (index, text) in spec.examples.iter().enumerate() {
                let norm = normalize(text);
                let mut ids: Vec<FeatureId> = Vec::new();
                for s in content_stems(&norm) {
                    ids.push(b.intern(&s, true, Some(i)));
                }
                for g in han_ngrams(&norm) {
                    ids.push(b.intern(&g, false, Some(i)));
                }
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    return Err(NluError::EmptyExample {
                        intent: spec.name.clone(),
                        index,
                    });
                }
                examples.push(ids);
            }
            raw_examples.push(examples);
            let keywords = spec
                .keywords
                .iter()
                .enumerate()
                .map(|(index, kw)| b.rule(spec, index, kw, Some(i)))
                .collect::<Result<Vec<_>, _>>()?;
            // Negative keywords are not evidence for the intent: keep them out of its document frequency.
            let negative = spec
                .negative
                .iter()
                .enumerate()
                .map(|(index, kw)| b.rule(spec, index, kw, None))
                .collect::<Result<Vec<_>, _>>()?;
            intents.push(Intent {
                name: Arc::from(spec.name.as_str()),
                examples: Vec::new(),
                keywords,
                negative,
            });
        }
        let n = specs.len() as f32;
        let norm = (1.0 + n).ln();
        let idf: Vec<f32> =
            b.df.iter()
                .map(|(_, df)| {
                    let df = (*df).max(1) as f32;
                    ((1.0 + n / df).ln() / norm).clamp(0.05, 1.0)
                })
                .collect();
        for (intent, examples) in intents.iter_mut().zip(raw_examples) {
            intent.examples = examples
                .into_iter()
                .map(|features| Example {
                    recall_den: features.iter().map(|f| idf[*f as usize]).sum(),
                    features,
                })
                .collect();
        }
        Ok(Self {
            intents,
            idf,
            vocab: b.vocab,
            words: b.words,
            config,
        })
    }

    pub fn config(&self) -> NluConfig {
        self.config
    }

    /// Intent names in definition order.
    pub fn intent_names(&self) -> impl Iterator<Item = &str> {
        self.intents.iter().map(|i| &*i.name)
    }

    /// Classifies one text as a single, fully trusted hypothesis.
    pub fn classify_text(&self, text: &str) -> IntentResult {
        self.classify(&[Hypothesis::new(text, 1.0)])
    }

    /// Ranks every intent for the hypotheses (n-best, or a final and its partials) and decides.
    pub fn classify(&self, nbest: &[Hypothesis<'_>]) -> IntentResult {
        let mut best_of = vec![0.0f32; self.intents.len()];
        let mut any_words = false;
        let clean = |c: f32| {
            if c.is_finite() {
                c.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let top = nbest
            .iter()
            .map(|h| clean(h.confidence))
            .fold(0.0f32, f32::max);
        for h in nbest {
            // Relative to the most confident hypothesis; all-zero (or broken) confidences count equally.
            let trust = if top > 0.0 {
                (clean(h.confidence) / top).sqrt()
            } else {
                1.0
            };
            if trust == 0.0 {
                continue;
            }
            let an = self.analyze(h.text);
            any_words |= !an.empty;
            for (b, intent) in best_of.iter_mut().zip(&self.intents) {
                *b = b.max(trust * self.score(intent, &an));
            }
        }
        let mut ranked: Vec<IntentScore> = self
            .intents
            .iter()
            .zip(&best_of)
            .map(|(intent, s)| IntentScore {
                intent: intent.name.clone(),
                score: s.clamp(0.0, 1.0),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        let best = ranked.first().map_or(0.0, |s| s.score);
        let margin = best - ranked.get(1).map_or(0.0, |s| s.score);
        let outcome = if !any_words {
            Outcome::OutOfScope(OutOfScope::NoSpeech)
        } else if best < self.config.accept {
            Outcome::OutOfScope(OutOfScope::LowScore)
        } else if margin < self.config.min_margin {
            Outcome::OutOfScope(OutOfScope::Ambiguous)
        } else {
            match ranked.first() {
                Some(s) => Outcome::Intent(s.intent.clone()),
                None => Outcome::OutOfScope(OutOfScope::NoSpeech),
            }
        };
        IntentResult {
            ranked,
            margin,
            outcome,
        }
    }

    fn analyze(&self, text: &str) -> Analysis {
        let norm = normalize(text);
        let nf = self.idf.len();
        let mut an = Analysis {
            cover: Vec::new(),
            item_weight: Vec::new(),
            item_weight_sum: 0.0,
            best: vec![0.0; nf],
            span: vec![(0, 0); nf],
            han_runs: norm.han_runs.clone(),
            empty: norm.words.is_empty() && norm.han_runs.is_empty(),
        };
        // English: content words are precision items; single words and adjacent joins are match units.
        let words = &norm.words;
        let all_stop = words.iter().all(|w| is_stop_word(w));
        let mut item_of: Vec<Option<usize>> = Vec::with_capacity(words.len());
        for w in words {
            if is_stop_word(w) && !all_stop {
                item_of.push(None);
            } else {
                item_of.push(Some(an.cover.len()));
                an.cover.push(Vec::new());
            }
        }
        let mut matches: Vec<(FeatureId, f32)> = Vec::new();
        for start in 0..words.len() {
            for len in 1..=2 {
                let end = start + len - 1;
                if end >= words.len() {
                    break;
                }
                let (stemmed, factor) = if len == 1 {
                    if item_of[start].is_none() {
                        continue;
                    }
                    (stem(&words[start]), 1.0)
                } else {
                    let (a, b) = (&words[start], &words[end]);
                    if !a.chars().chain(b.chars()).all(char::is_alphabetic)
                        || (item_of[start].is_none() && item_of[end].is_none())
                    {
                        continue;
                    }
                    (stem(&format!("{a}{b}")), JOIN_FACTOR)
                };
                matches.clear();
                match self.vocab.get(&stemmed) {
                    // A word the intents know exactly is that word, not a mishearing of a neighbour
                    // ("last" is not "lost").
                    Some(id) => matches.push((*id, factor)),
                    None => {
                        let form = WordForm::new(&stemmed);
                        for (id, known) in &self.words {
                            let s = word_similarity(&form, known);
                            if s > 0.0 {
                                matches.push((*id, s * factor));
                            }
                        }
                    }
                }
                for &(id, s) in &matches {
                    let f = id as usize;
                    if s > an.best[f] {
                        an.best[f] = s;
                        an.span[f] = (start, end);
                    }
                    for item in item_of[start..=end].iter().flatten() {
                        an.cover[*item].push((id, s));
                    }
                }
            }
        }
        // Mandarin: each n-gram is an item matching itself.
        for gram in han_ngrams(&norm) {
            let mut cover = Vec::new();
            if let Some(id) = self.vocab.get(&gram) {
                an.best[*id as usize] = 1.0;
                cover.push((*id, 1.0));
            }
            an.cover.push(cover);
        }
        an.item_weight = an
            .cover
            .iter()
            .map(|cover| {
                cover
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(UNKNOWN_WEIGHT, |(id, _)| self.idf[*id as usize])
            })
            .collect();
        an.item_weight_sum = an.item_weight.iter().sum();
        an
    }

    fn score(&self, intent: &Intent, an: &Analysis) -> f32 {
        let ex = intent
            .examples
            .iter()
            .map(|e| self.example_similarity(e, an))
            .fold(0.0f32, f32::max)
            .powf(EXAMPLE_SHARPNESS);
        let miss = intent
            .keywords
            .iter()
            .map(|r| 1.0 - r.weight * self.rule_match(r, an))
            .product::<f32>();
        let keep = intent
            .negative
            .iter()
            .map(|r| 1.0 - r.weight * self.rule_match(r, an))
            .product::<f32>();
        (1.0 - miss * (1.0 - ex)) * keep
    }

    /// Soft IDF-weighted F1 between the utterance and one example.
    fn example_similarity(&self, e: &Example, an: &Analysis) -> f32 {
        if e.recall_den <= 0.0 || an.item_weight_sum <= 0.0 {
            return 0.0;
        }
        let recall_num: f32 = e
            .features
            .iter()
            .map(|f| self.idf[*f as usize] * an.best[*f as usize])
            .sum();
        let recall = recall_num / e.recall_den;
        if recall == 0.0 {
            return 0.0;
        }
        let precision_num: f32 = an
            .cover
            .iter()
            .zip(&an.item_weight)
            .map(|(cover, w)| {
                w * cover
                    .iter()
                    .filter(|(id, _)| e.features.binary_search(id).is_ok())
                    .map(|(_, s)| *s)
                    .fold(0.0f32, f32::max)
            })
            .sum();
        let precision = precision_num / an.item_weight_sum;
        if precision + recall <= 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        }
    }

    /// How well a keyword rule matches, 0..=1.
    fn rule_match(&self, rule: &Rule, an: &Analysis) -> f32 {
        match &rule.matcher {
            Matcher::Words(ids) => {
                let mut total = 0.0;
                let mut tight = true;
                let mut prev_end: Option<usize> = None;
                for id in ids {
                    let s = an.best[*id as usize];
                    if s == 0.0 {
                        return 0.0;
                    }
                    total += s;
                    let (start, end) = an.span[*id as usize];
                    if let Some(pe) = prev_end {
                        if start <= pe || start - pe - 1 > PHRASE_GAP {
                            tight = false;
                        }
                    }
                    prev_end = Some(end);
                }
                let mean = total / ids.len() as f32;
                if tight {
                    mean
                } else {
                    mean * LOOSE_PHRASE_FACTOR
                }
            }
            Matcher::Han(kw) => an
                .han_runs
                .iter()
                .map(|run| han_match(run, kw))
                .fold(0.0f32, f32::max),
        }
    }
}

/// Substring match of a Han keyword in a run, allowing one wrong character in keywords of 3+ characters
/// (the recogniser picked a homophone). Particles in the run are skipped so "卡丢了" finds "卡丢".
fn han_match(run: &[char], kw: &[char]) -> f32 {
    if kw.is_empty() {
        return 0.0;
    }
    let stripped: Vec<char> = run.iter().copied().filter(|c| !is_han_stop(*c)).collect();
    let mut best = 0.0f32;
    for hay in [run, stripped.as_slice()] {
        if hay.len() < kw.len() {
            continue;
        }
        for window in hay.windows(kw.len()) {
            let wrong = window.iter().zip(kw).filter(|(a, b)| a != b).count();
            if wrong == 0 {
                return 1.0;
            }
            if wrong == 1 && kw.len() >= 3 {
                best = HAN_NEAR_FACTOR;
            }
        }
    }
    best
}

#[cfg(test)]
impl IntentModel {
    /// Which known words each heard item matched, for debugging misclassifications.
    pub(crate) fn explain(&self, text: &str) -> Vec<String> {
        let an = self.analyze(text);
        let mut names: Vec<&str> = vec![""; self.idf.len()];
        for (k, v) in &self.vocab {
            names[*v as usize] = k;
        }
        an.cover
            .iter()
            .zip(&an.item_weight)
            .map(|(cover, w)| {
                let m: Vec<String> = cover
                    .iter()
                    .map(|(id, s)| format!("{}:{s:.2}", names[*id as usize]))
                    .collect();
                format!("w{w:.2} [{}]", m.join(" "))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "debugging aid: cargo test -p voxgate-dialog explain -- --ignored --nocapture"]
    fn explain() {
        let m = IntentModel::new(&crate::nlu::bank_intents()).unwrap();
        let text = std::env::var("NLU_TEXT").unwrap_or_else(|_| "check my account melon".into());
        for line in m.explain(&text) {
            println!("{line}");
        }
        let r = m.classify_text(&text);
        for s in r.ranked.iter().take(4) {
            println!("{} {:.3}", s.intent, s.score);
        }
    }

    fn spec(name: &str, examples: &[&str], kws: &[(&str, f32)]) -> IntentSpec {
        IntentSpec::new(name)
            .examples(examples.iter().copied())
            .keywords(kws)
    }

    #[test]
    fn invalid_specs_are_rejected() {
        assert_eq!(IntentModel::new(&[]).unwrap_err(), NluError::NoIntents);
        assert_eq!(
            IntentModel::new(&[spec("", &["x"], &[])]).unwrap_err(),
            NluError::EmptyName { index: 0 }
        );
        assert_eq!(
            IntentModel::new(&[spec("a", &["card"], &[]), spec("a", &["bank"], &[])]).unwrap_err(),
            NluError::DuplicateIntent { intent: "a".into() }
        );
        assert_eq!(
            IntentModel::new(&[spec("a", &[], &[])]).unwrap_err(),
            NluError::NoEvidence { intent: "a".into() }
        );
        assert_eq!(
            IntentModel::new(&[spec("a", &["card", "?!"], &[])]).unwrap_err(),
            NluError::EmptyExample {
                intent: "a".into(),
                index: 1
            }
        );
        assert_eq!(
            IntentModel::new(&[spec("a", &["card"], &[("card", 1.5)])]).unwrap_err(),
            NluError::BadWeight {
                intent: "a".into(),
                index: 0,
                weight: 1.5
            }
        );
        assert_eq!(
            IntentModel::new(&[spec("a", &["card"], &[("to the", 0.5)])]).unwrap_err(),
            NluError::EmptyKeyword {
                intent: "a".into(),
                index: 0
            }
        );
        assert_eq!(
            IntentModel::with_config(
                &[spec("a", &["card"], &[])],
                NluConfig {
                    accept: 1.2,
                    min_margin: 0.1
                }
            )
            .unwrap_err(),
            NluError::BadThreshold {
                field: "accept",
                value: 1.2
            }
        );
    }

    fn toy() -> IntentModel {
        IntentModel::new(&[
            spec("pay", &["pay my bill", "make a payment"], &[("pay", 0.8)]),
            spec("card", &["block my card"], &[("card", 0.5), ("block", 0.8)]),
        ])
        .unwrap()
    }

    #[test]
    fn empty_and_stop_word_only_input_is_out_of_scope() {
        let m = toy();
        assert_eq!(
            m.classify_text("  ...  ").outcome,
            Outcome::OutOfScope(OutOfScope::NoSpeech)
        );
        assert_eq!(
            m.classify(&[]).outcome,
            Outcome::OutOfScope(OutOfScope::NoSpeech)
        );
        assert_eq!(
            m.classify_text("um so I would").outcome,
            Outcome::OutOfScope(OutOfScope::LowScore)
        );
    }

    #[test]
    fn scores_are_ranked_and_bounded() {
        let r = toy().classify_text("please block my cart");
        assert_eq!(r.intent(), Some("card"));
        assert!(r.ranked.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(r.ranked.iter().all(|s| (0.0..=1.0).contains(&s.score)));
        assert!((r.margin - (r.ranked[0].score - r.ranked[1].score)).abs() < 1e-6);
        assert_eq!(r.best().map(|b| &*b.intent), Some("card"));
    }

    #[test]
    fn close_calls_are_ambiguous() {
        let m = toy();
        let r = m.classify_text("pay my bill and block my card");
        assert_eq!(
            r.outcome,
            Outcome::OutOfScope(OutOfScope::Ambiguous),
            "{r:?}"
        );
        assert_eq!(r.best().map(|b| &*b.intent), Some("card"));
        assert_eq!(r.runner_up().map(|b| &*b.intent), Some("pay"));
    }

    #[test]
    fn nbest_is_confidence_weighted() {
        let m = toy();
        let strong = m.classify(&[
            Hypothesis::new("block my card", 0.9),
            Hypothesis::new("lock my car", 0.1),
        ]);
        let weak = m.classify(&[
            Hypothesis::new("block my card", 0.1),
            Hypothesis::new("lock my car", 0.9),
        ]);
        assert!(strong.score_of("card") > weak.score_of("card"));
        // Zero or broken confidences: all hypotheses count equally rather than none.
        let r = m.classify(&[Hypothesis::new("block my card", f32::NAN)]);
        assert_eq!(r.intent(), Some("card"));
    }

    #[test]
    fn negative_keywords_pull_down() {
        let m = IntentModel::new(&[
            spec("cancel", &["cancel"], &[("cancel", 0.9)]).negative(&[("card", 0.8)]),
            spec("card", &["block my card"], &[("card", 0.6)]),
        ])
        .unwrap();
        assert_eq!(m.classify_text("cancel").intent(), Some("cancel"));
        assert_eq!(m.classify_text("cancel my card").intent(), Some("card"));
    }

    #[test]
    fn phrases_need_order_and_proximity() {
        let m = IntentModel::new(&[spec("safe", &["zzz"], &[("safe account", 1.0)])]).unwrap();
        let an = m.analyze("move it to a safe a count");
        let rule = &m.intents[0].keywords[0];
        assert!(m.rule_match(rule, &an) > 0.7);
        let an = m.analyze("account for safety it is safe");
        assert!(m.rule_match(rule, &an) < 0.7);
    }

    #[test]
    fn han_keywords_tolerate_one_homophone() {
        let kw: Vec<char> = "转人工".chars().collect();
        assert_eq!(
            han_match(&"我要转人工".chars().collect::<Vec<_>>(), &kw),
            1.0
        );
        assert_eq!(
            han_match(&"我要专人工".chars().collect::<Vec<_>>(), &kw),
            HAN_NEAR_FACTOR
        );
        assert_eq!(han_match(&"你好".chars().collect::<Vec<_>>(), &kw), 0.0);
    }
}
