//! Partial-hypothesis stabilisation (sans-IO, pure logic).
//!
//! Re-decoding a growing utterance makes whisper revise its tail every time; shown raw, the partial text flickers.
//! Local agreement: a word prefix becomes *stable* once two consecutive hypotheses agree on it, and stable words
//! are never retracted until the final result replaces the whole partial.

/// The partial to show: `stable` never shrinks within an utterance, `unstable` is the latest guess at the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StablePartial<'a> {
    pub stable: &'a str,
    pub unstable: &'a str,
    /// Words that became stable with this update.
    pub newly_stable: usize,
}

#[derive(Debug, Default, Clone)]
pub struct PartialStabilizer {
    /// Normalised words of the previous hypothesis.
    previous: Vec<String>,
    /// Normalised stable words, to compare against; `stable_text` holds their display form.
    stable_words: Vec<String>,
    stable_text: String,
    unstable_text: String,
}

impl PartialStabilizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the newest partial hypothesis of the current utterance.
    pub fn update(&mut self, hypothesis: &str) -> StablePartial<'_> {
        let words: Vec<&str> = hypothesis.split_whitespace().collect();
        let normalised: Vec<String> = words.iter().map(|w| normalise(w)).collect();

        // Agreement between this and the previous hypothesis, which must also extend what is already stable.
        let agreed = common_prefix(&self.previous, &normalised);
        let consistent = common_prefix(&self.stable_words, &normalised) == self.stable_words.len();
        let mut newly_stable = 0;
        if consistent && agreed > self.stable_words.len() {
            for (w, n) in words
                .iter()
                .zip(&normalised)
                .take(agreed)
                .skip(self.stable_words.len())
            {
                if !self.stable_text.is_empty() {
                    self.stable_text.push(' ');
                }
                self.stable_text.push_str(w);
                self.stable_words.push(n.clone());
                newly_stable += 1;
            }
        }

        // Whatever the hypothesis says beyond the stable words; if it contradicts them, its tail past their count.
        self.unstable_text.clear();
        for w in words.iter().skip(self.stable_words.len()) {
            if !self.unstable_text.is_empty() {
                self.unstable_text.push(' ');
            }
            self.unstable_text.push_str(w);
        }
        self.previous = normalised;
        StablePartial {
            stable: &self.stable_text,
            unstable: &self.unstable_text,
            newly_stable,
        }
    }

    pub fn stable(&self) -> &str {
        &self.stable_text
    }

    pub fn unstable(&self) -> &str {
        &self.unstable_text
    }

    /// The final result replaces the partial outright; the stabilizer is reset for the next utterance.
    pub fn finalize(&mut self, final_text: &str) -> String {
        self.reset();
        final_text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub fn reset(&mut self) {
        self.previous.clear();
        self.stable_words.clear();
        self.stable_text.clear();
        self.unstable_text.clear();
    }
}

/// Case and punctuation are what whisper revises most between decodes; they must not block agreement.
fn normalise(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .flat_map(char::to_lowercase)
        .collect()
}

fn common_prefix(a: &[String], b: &[String]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hypothesis_is_entirely_unstable() {
        let mut s = PartialStabilizer::new();
        let p = s.update("I want to");
        assert_eq!(p.stable, "");
        assert_eq!(p.unstable, "I want to");
        assert_eq!(p.newly_stable, 0);
    }

    #[test]
    fn agreed_prefix_of_two_consecutive_hypotheses_becomes_stable() {
        let mut s = PartialStabilizer::new();
        s.update("I want to");
        let p = s.update("I want two check");
        assert_eq!(p.stable, "I want");
        assert_eq!(p.unstable, "two check");
        assert_eq!(p.newly_stable, 2);
        let p = s.update("I want to check my balance");
        assert_eq!(p.stable, "I want");
        assert_eq!(p.unstable, "to check my balance");
        let p = s.update("I want to check my balance.");
        assert_eq!(p.stable, "I want to check my balance.");
        assert_eq!(p.unstable, "");
        assert_eq!(p.newly_stable, 4);
    }

    #[test]
    fn stable_words_are_never_retracted_by_a_contradicting_hypothesis() {
        let mut s = PartialStabilizer::new();
        s.update("block my card");
        s.update("block my card please");
        assert_eq!(s.stable(), "block my card");
        // A flicker that rewrites the start must not shrink or change the stable text.
        let p = s.update("lock my card please");
        assert_eq!(p.stable, "block my card");
        assert_eq!(p.unstable, "please");
        assert_eq!(p.newly_stable, 0);
        // And the next two agreeing hypotheses that contradict it add nothing either.
        let p = s.update("lock my card please now");
        assert_eq!(p.stable, "block my card");
        assert_eq!(p.newly_stable, 0);
    }

    #[test]
    fn case_and_punctuation_do_not_block_agreement() {
        let mut s = PartialStabilizer::new();
        s.update("Hello, agent");
        let p = s.update("hello agent.");
        assert_eq!(p.stable, "hello agent.");
        assert_eq!(p.newly_stable, 2);
    }

    #[test]
    fn final_replaces_partial_and_resets_for_next_utterance() {
        let mut s = PartialStabilizer::new();
        s.update("pay my");
        s.update("pay my bill");
        assert_eq!(s.stable(), "pay my");
        assert_eq!(s.finalize("  Pay my bill. "), "Pay my bill.");
        assert_eq!(s.stable(), "");
        assert_eq!(s.unstable(), "");
        // The previous utterance's words do not count as agreement for the next one.
        let p = s.update("pay my");
        assert_eq!(p.stable, "");
    }
}
