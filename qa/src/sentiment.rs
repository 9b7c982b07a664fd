//! Lexical sentiment of one turn (English and Mandarin), with negation and intensifiers.
//!
//! Built for whisper transcripts of bank-hotline calls: any casing and punctuation, contractions with or
//! without apostrophes, Mandarin in simplified or traditional characters (folded before matching), and both
//! languages in one turn. The lexicon holds words and set phrases of anger, frustration, complaint,
//! distress, fear (scams), satisfaction and gratitude, each weighted by strength.
//!
//! Scoring, left to right over words (Latin) and characters (Han), always taking the longest lexicon entry:
//! * a negator ("not", "n't", "never", "没有", "不", …) flips the entries in the next few words (up to the
//!   next punctuation): a negated positive becomes negative ("not happy"), a negated negative becomes only
//!   mildly positive ("not bad"; "I'm not angry" is not anger but not praise either);
//! * intensifiers and diminishers just before an entry scale it ("very", "a bit", "非常", "有点");
//! * exclamation marks ending the sentence and words in capitals (in a turn that is not all capitals)
//!   strengthen it;
//! * "but"/"但是" halves what came before it, and thanks in a turn that also complains count half: courtesy
//!   around a complaint is ritual;
//! * the turn's score is a saturating sum of its entries, `s / sqrt(s² + 1)`, not an average over words, so
//!   one strong complaint in a long polite turn still reads clearly negative.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use voxgate_dialog::nlu::is_han;

/// A lexicon word or phrase found in the text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The words as they appear in the text.
    pub text: String,
    /// Byte range in the text given to [`lexical`].
    pub start: usize,
    pub end: usize,
    /// Contribution after negation and intensifiers (negative = angry/unhappy).
    pub weight: f32,
    /// A negator ("not", "没有", …) flipped or damped it.
    pub negated: bool,
}

/// How positive or negative a turn's words are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    /// -1 (very negative) ..= 1 (very positive); 0 when no lexicon entry was found.
    pub score: f32,
    pub hits: Vec<Hit>,
}

/// Scores `text` (English, Mandarin, or mixed).
pub fn lexical(text: &str) -> Sentiment {
    let lex = lexicon();
    let mut arena = String::with_capacity(text.len() + 16);
    let mut toks = Vec::with_capacity(text.len() / 4 + 4);
    tokenize(text, &lex.fold, &mut arena, &mut toks);

    let mut hits: Vec<Hit> = Vec::new();
    let mut classes: Vec<Class> = Vec::new();
    let mut key = String::new();
    let mut prefix_ends: Vec<usize> = Vec::new();
    // Words left in the current negator's scope; product of the intensifiers just before this word.
    let mut neg_left: u8 = 0;
    let mut boost: f32 = 1.0;
    let text_has_lower = text.chars().any(char::is_lowercase);
    let mut i = 0;
    while i < toks.len() {
        if toks[i].kind == Kind::Punct {
            neg_left = 0;
            boost = 1.0;
            i += 1;
            continue;
        }
        let (n, entry) = longest_match(lex, &toks, &arena, i, &mut key, &mut prefix_ends);
        match entry {
            Some(Entry::Mood(class, magnitude)) => {
                let (start, end) = (toks[i].start, toks[i + n - 1].end);
                let base = class.sign() * magnitude;
                let negated = neg_left > 0;
                // Intensifiers between a negator and its word are dropped: "not very happy" is not
                // more negative than "not happy".
                let mut weight = match (negated, base > 0.0) {
                    (true, true) => NEGATED_POSITIVE * base,
                    (true, false) => NEGATED_NEGATIVE * base,
                    (false, _) => base * boost,
                };
                if text_has_lower && is_shouted(&text[start..end]) {
                    weight *= CAPS_BOOST;
                }
                weight *= 1.0 + EXCLAMATION_BOOST * trailing_exclamations(&text[end..]) as f32;
                hits.push(Hit {
                    text: text[start..end].to_string(),
                    start,
                    end,
                    weight: weight.clamp(-MAX_HIT, MAX_HIT),
                    negated,
                });
                classes.push(class);
                boost = 1.0;
            }
            Some(Entry::Intensifier(m)) => {
                boost = (boost * m).clamp(MIN_BOOST, MAX_BOOST);
                i += n;
                continue;
            }
            Some(Entry::Negator(scope)) => {
                neg_left = scope;
                boost = 1.0;
                i += n;
                continue;
            }
            Some(Entry::Contrast) => {
                for h in &mut hits {
                    h.weight *= BEFORE_CONTRAST;
                }
                neg_left = 0;
                boost = 1.0;
                i += n;
                continue;
            }
            Some(Entry::Neutral) => boost = 1.0,
            None => {
                if toks[i].kind == Kind::Word && is_transparent(toks[i].norm(&arena)) {
                    i += 1;
                    continue;
                }
                boost = 1.0;
            }
        }
        neg_left = neg_left.saturating_sub(1);
        i += n;
    }

    if hits
        .iter()
        .any(|h| h.weight <= -COMPLAINT_FOR_COURTESY_DAMPING)
    {
        for (h, class) in hits.iter_mut().zip(&classes) {
            if *class == Class::Gratitude && h.weight > 0.0 {
                h.weight *= COURTESY_IN_COMPLAINT;
            }
        }
    }
    if hits.is_empty() {
        return Sentiment::default();
    }
    let sum: f32 = hits.iter().map(|h| h.weight).sum();
    Sentiment {
        score: (sum / (sum * sum + SATURATION).sqrt()).clamp(-1.0, 1.0),
        hits,
    }
}

/// `score = s / sqrt(s² + SATURATION)`: one strong entry (|w| ≈ 0.8) scores about ±0.6, two about ±0.85.
const SATURATION: f32 = 1.0;
/// Negated positive entries keep most of their strength ("not happy").
const NEGATED_POSITIVE: f32 = -0.8;
/// Negated negative entries become mildly positive ("not bad"); "not angry" is no praise.
const NEGATED_NEGATIVE: f32 = -0.25;
const MIN_BOOST: f32 = 0.3;
const MAX_BOOST: f32 = 2.0;
const MAX_HIT: f32 = 1.5;
const CAPS_BOOST: f32 = 1.2;
/// Per '!' ending the entry's sentence, up to three.
const EXCLAMATION_BOOST: f32 = 0.1;
/// What an entry before "but"/"但是" still counts.
const BEFORE_CONTRAST: f32 = 0.5;
/// Thanks count this much in a turn that also has a clear complaint (this strong or stronger).
const COURTESY_IN_COMPLAINT: f32 = 0.5;
const COMPLAINT_FOR_COURTESY_DAMPING: f32 = 0.3;

/// What an emotion entry expresses; the sign of its weight comes from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Anger,
    Frustration,
    Complaint,
    Distress,
    /// Fear, including scam and fraud distress.
    Fear,
    Satisfaction,
    Gratitude,
}

impl Class {
    fn sign(self) -> f32 {
        match self {
            Class::Satisfaction | Class::Gratitude => 1.0,
            _ => -1.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Entry {
    /// An emotion word or phrase with its strength (0..=1).
    Mood(Class, f32),
    /// Multiplies the next entry ("very" 1.3, "a bit" 0.6).
    Intensifier(f32),
    /// Flips entries in the next this-many words or characters.
    Negator(u8),
    /// "but": what came before counts less.
    Contrast,
    /// An idiom that holds lexicon words without their sentiment ("good morning", "不好意思").
    Neutral,
}

// ---------------------------------------------------------------------------------------------------------
// Lexicon. English keys are lowercase with contractions expanded ("can not", "i am", "you have"), the form
// the tokenizer produces; Mandarin keys are simplified. Strengths: 0.3 mild, 0.5 clear, 0.7 strong, 0.9
// extreme.

const EN_ANGER: &[(&str, f32)] = &[
    ("angry", 0.7),
    ("anger", 0.6),
    ("mad", 0.6),
    ("furious", 0.9),
    ("fuming", 0.8),
    ("livid", 0.9),
    ("outraged", 0.9),
    ("outrage", 0.8),
    ("outrageous", 0.85),
    ("enraged", 0.9),
    ("rage", 0.7),
    ("irate", 0.8),
    ("infuriated", 0.85),
    ("infuriating", 0.85),
    ("incensed", 0.8),
    ("seething", 0.8),
    ("pissed", 0.8),
    ("pissed off", 0.9),
    ("hate", 0.7),
    ("disgusted", 0.8),
    ("disgusting", 0.8),
    ("disgrace", 0.8),
    ("disgraceful", 0.9),
    ("shameful", 0.7),
    ("shame on you", 0.8),
    ("appalling", 0.85),
    ("appalled", 0.8),
    ("how dare you", 0.9),
    ("idiot", 0.9),
    ("idiots", 0.9),
    ("stupid", 0.7),
    ("moron", 0.9),
    ("morons", 0.9),
    ("incompetent", 0.8),
    ("incompetence", 0.8),
    ("useless", 0.8),
    ("pathetic", 0.8),
    ("liar", 0.8),
    ("liars", 0.8),
    ("lying", 0.6),
    ("lied", 0.6),
    ("thief", 0.7),
    ("thieves", 0.8),
    ("crooks", 0.8),
    ("bloody", 0.5),
    ("damn", 0.5),
    ("dammit", 0.6),
    ("damn it", 0.6),
    ("goddamn", 0.7),
    ("hell", 0.4),
    ("the hell", 0.5),
    ("what the hell", 0.7),
    ("what the heck", 0.5),
    ("shit", 0.7),
    ("bullshit", 0.9),
    ("crap", 0.6),
    ("fuck", 0.9),
    ("fucking", 0.7),
    ("fucked", 0.8),
    ("shut up", 0.8),
    ("screw you", 0.9),
    ("screw this", 0.8),
    ("go to hell", 0.9),
    ("rubbish", 0.7),
    ("nonsense", 0.6),
    ("garbage", 0.7),
    ("joke", 0.3),
    ("a joke", 0.5),
    ("what a joke", 0.7),
    ("this is a joke", 0.75),
    ("are you kidding me", 0.7),
    ("you have got to be kidding", 0.8),
    ("you must be joking", 0.7),
    ("are you serious", 0.5),
    ("are you joking", 0.5),
    ("unbelievable", 0.6),
    ("can not believe", 0.4),
    ("can not believe this", 0.6),
    ("ridiculous", 0.75),
    ("this is ridiculous", 0.85),
    ("ludicrous", 0.75),
    ("absurd", 0.7),
    ("insane", 0.6),
    ("crazy", 0.4),
    ("unacceptable", 0.8),
    ("inexcusable", 0.8),
    ("unforgivable", 0.8),
    ("fed up", 0.7),
    ("fed up with", 0.75),
    ("sick and tired", 0.85),
    ("sick of", 0.7),
    ("sick of this", 0.8),
    ("had enough", 0.6),
    ("i have had enough", 0.75),
    ("enough is enough", 0.75),
    ("the last straw", 0.75),
    ("losing my patience", 0.7),
    ("lost my patience", 0.7),
    ("out of patience", 0.6),
    ("driving me crazy", 0.7),
    ("driving me mad", 0.7),
    ("drives me crazy", 0.7),
    ("rip off", 0.7),
    ("ripoff", 0.7),
    ("ripped off", 0.7),
    ("daylight robbery", 0.8),
    ("cheat", 0.6),
    ("cheated", 0.7),
    ("rude", 0.7),
    ("rudeness", 0.7),
    ("disrespectful", 0.7),
    ("insulting", 0.7),
    ("insult", 0.6),
    ("arrogant", 0.6),
    ("thanks for nothing", 0.7),
    ("never been treated like this", 0.8),
];

const EN_FRUSTRATION: &[(&str, f32)] = &[
    ("frustrate", 0.6),
    ("frustrated", 0.6),
    ("frustrating", 0.6),
    ("frustration", 0.6),
    ("annoy", 0.5),
    ("annoyed", 0.5),
    ("annoying", 0.5),
    ("annoyance", 0.5),
    ("irritate", 0.5),
    ("irritated", 0.5),
    ("irritating", 0.5),
    ("exasperated", 0.7),
    ("exasperating", 0.7),
    ("aggravated", 0.6),
    ("aggravating", 0.6),
    ("tired of", 0.5),
    ("waste of time", 0.7),
    ("a waste of time", 0.75),
    ("waste of my time", 0.75),
    ("wasting my time", 0.75),
    ("wasted my time", 0.7),
    ("waste my time", 0.7),
    ("wasting time", 0.5),
    ("total waste", 0.7),
    ("pointless", 0.6),
    ("hopeless", 0.7),
    ("going round in circles", 0.6),
    ("going around in circles", 0.6),
    ("round in circles", 0.6),
    ("over and over", 0.4),
    ("over and over again", 0.5),
    ("again and again", 0.4),
    ("how many times", 0.5),
    ("for the third time", 0.5),
    ("every single time", 0.4),
    ("still waiting", 0.5),
    ("been waiting", 0.4),
    ("kept waiting", 0.5),
    ("been on hold", 0.5),
    ("on hold for", 0.4),
    ("unhelpful", 0.7),
    ("no help", 0.5),
    ("no help at all", 0.7),
    ("ugh", 0.4),
    ("argh", 0.5),
    ("hassle", 0.4),
    ("nuisance", 0.4),
    ("a pain", 0.4),
    ("pain in the neck", 0.6),
    ("headache", 0.4),
    ("nightmare", 0.7),
    ("mess", 0.5),
    ("messed up", 0.6),
    ("screwed up", 0.7),
    ("stuck", 0.3),
    ("confusing", 0.3),
    ("confused", 0.3),
    ("slow", 0.3),
    ("i give up", 0.6),
    ("forget it", 0.4),
    ("hung up on me", 0.6),
    ("transferred again", 0.5),
    ("nobody listens", 0.6),
    ("no one listens", 0.6),
    ("not listening", 0.5),
    ("ignored", 0.5),
    ("ignoring me", 0.6),
];

const EN_COMPLAINT: &[(&str, f32)] = &[
    ("complain", 0.5),
    ("complaint", 0.5),
    ("complaining", 0.5),
    ("make a complaint", 0.65),
    ("file a complaint", 0.65),
    ("raise a complaint", 0.65),
    ("lodge a complaint", 0.65),
    ("formal complaint", 0.7),
    ("want to complain", 0.65),
    ("speak to a manager", 0.4),
    ("speak to your manager", 0.45),
    ("speak to a supervisor", 0.4),
    ("terrible", 0.7),
    ("horrible", 0.7),
    ("awful", 0.7),
    ("dreadful", 0.7),
    ("atrocious", 0.85),
    ("abysmal", 0.85),
    ("shocking", 0.6),
    ("bad", 0.5),
    ("worse", 0.6),
    ("worst", 0.8),
    ("poor", 0.4),
    ("sucks", 0.6),
    ("suck", 0.6),
    ("lousy", 0.6),
    ("crappy", 0.6),
    ("shoddy", 0.6),
    ("unprofessional", 0.7),
    ("unfair", 0.6),
    ("unreasonable", 0.6),
    ("disappoint", 0.6),
    ("disappointed", 0.6),
    ("disappointing", 0.6),
    ("disappointment", 0.6),
    ("let down", 0.5),
    ("let me down", 0.6),
    ("dissatisfied", 0.6),
    ("unhappy", 0.6),
    ("not good enough", 0.6),
    ("no good", 0.5),
    ("wrong", 0.3),
    ("mistake", 0.3),
    ("fail", 0.3),
    ("failed", 0.3),
    ("failure", 0.5),
    ("your fault", 0.6),
    ("ruin", 0.5),
    ("ruined", 0.6),
    ("misled", 0.6),
    ("misleading", 0.6),
    ("lies", 0.6),
    ("overcharged", 0.6),
    ("hidden fees", 0.5),
    ("never works", 0.6),
    ("never again", 0.6),
    ("switch banks", 0.5),
    ("switching banks", 0.5),
    ("take my business elsewhere", 0.7),
    ("close my account", 0.3),
    ("delay", 0.3),
    ("delayed", 0.3),
    ("inconvenience", 0.4),
    ("inconvenient", 0.4),
    ("unbearable", 0.8),
    ("intolerable", 0.8),
];

const EN_DISTRESS: &[(&str, f32)] = &[
    ("upset", 0.6),
    ("upsetting", 0.6),
    ("distressed", 0.7),
    ("distressing", 0.7),
    ("devastated", 0.8),
    ("heartbroken", 0.8),
    ("desperate", 0.7),
    ("helpless", 0.6),
    ("stressed", 0.5),
    ("stressful", 0.5),
    ("stress", 0.4),
    ("overwhelmed", 0.5),
    ("wits end", 0.75),
    ("crying", 0.6),
    ("cry", 0.5),
    ("in tears", 0.7),
    ("sad", 0.5),
    ("oh no", 0.4),
    ("oh my god", 0.4),
    ("oh god", 0.4),
    ("i do not know what to do", 0.6),
    ("what do i do", 0.4),
    ("what am i supposed to do", 0.5),
    ("emergency", 0.4),
    ("urgent", 0.3),
    ("lost everything", 0.85),
    ("lost all my money", 0.8),
    ("all my money", 0.4),
    ("all my savings", 0.5),
    ("life savings", 0.5),
    ("can not afford", 0.4),
    ("broke", 0.3),
    ("in trouble", 0.5),
    ("trouble", 0.2),
    ("struggling", 0.4),
];

const EN_FEAR: &[(&str, f32)] = &[
    ("scared", 0.6),
    ("scary", 0.6),
    ("afraid", 0.3),
    ("i am afraid", 0.15),
    ("frightened", 0.7),
    ("frightening", 0.7),
    ("terrified", 0.8),
    ("terrifying", 0.8),
    ("fear", 0.5),
    ("panic", 0.7),
    ("panicking", 0.7),
    ("panicked", 0.7),
    ("worry", 0.4),
    ("worried", 0.5),
    ("worrying", 0.5),
    ("anxious", 0.5),
    ("anxiety", 0.5),
    ("nervous", 0.4),
    ("freaking out", 0.7),
    ("freaked out", 0.7),
    ("alarmed", 0.5),
    ("alarming", 0.5),
    ("concerned", 0.3),
    ("unsafe", 0.5),
    ("not safe", 0.5),
    ("vulnerable", 0.4),
    ("scam", 0.4),
    ("scammed", 0.6),
    ("been scammed", 0.7),
    ("got scammed", 0.7),
    ("scammer", 0.5),
    ("fraud", 0.35),
    ("fraudulent", 0.4),
    ("fraudster", 0.5),
    ("defrauded", 0.6),
    ("conned", 0.6),
    ("tricked", 0.6),
    ("stolen", 0.45),
    ("stole", 0.45),
    ("stealing", 0.45),
    ("hacked", 0.5),
    ("identity theft", 0.6),
    ("theft", 0.4),
    ("took all my money", 0.7),
    ("someone took my money", 0.6),
    ("money is gone", 0.6),
    ("money has gone", 0.6),
    ("unauthorised", 0.4),
    ("unauthorized", 0.4),
    ("suspicious", 0.3),
    ("threatened", 0.6),
    ("threatening", 0.6),
    ("blackmail", 0.7),
];

const EN_SATISFACTION: &[(&str, f32)] = &[
    ("satisfied", 0.6),
    ("satisfying", 0.5),
    ("satisfaction", 0.5),
    ("happy", 0.55),
    ("glad", 0.5),
    ("pleased", 0.5),
    ("delighted", 0.8),
    ("thrilled", 0.8),
    ("great", 0.55),
    ("excellent", 0.8),
    ("perfect", 0.5),
    ("wonderful", 0.75),
    ("fantastic", 0.8),
    ("amazing", 0.75),
    ("awesome", 0.7),
    ("brilliant", 0.7),
    ("superb", 0.8),
    ("outstanding", 0.8),
    ("marvellous", 0.75),
    ("marvelous", 0.75),
    ("terrific", 0.75),
    ("lovely", 0.55),
    ("nice", 0.4),
    ("good", 0.4),
    ("cool", 0.25),
    ("well done", 0.6),
    ("good job", 0.6),
    ("great job", 0.7),
    ("helpful", 0.6),
    ("that was helpful", 0.7),
    ("that was really helpful", 0.85),
    ("that was very helpful", 0.85),
    ("you have been helpful", 0.7),
    ("you have been very helpful", 0.85),
    ("you have been really helpful", 0.85),
    ("you have been so helpful", 0.85),
    ("kind", 0.4),
    ("kindness", 0.5),
    ("friendly", 0.4),
    ("polite", 0.4),
    ("patient", 0.4),
    ("professional", 0.4),
    ("efficient", 0.5),
    ("easy", 0.3),
    ("sorted", 0.3),
    ("resolved", 0.4),
    ("solved", 0.4),
    ("relieved", 0.6),
    ("a relief", 0.5),
    ("what a relief", 0.7),
    ("that is better", 0.4),
    ("much better", 0.4),
    ("feel better", 0.4),
    ("feeling better", 0.4),
    ("fixed it", 0.4),
    ("all fixed", 0.4),
    ("thank god", 0.4),
    ("thank goodness", 0.4),
    ("phew", 0.3),
    ("reassured", 0.5),
    ("reassuring", 0.5),
    ("peace of mind", 0.4),
    ("love", 0.5),
    ("love it", 0.6),
    ("impressed", 0.6),
    ("impressive", 0.6),
    ("made my day", 0.8),
    ("lifesaver", 0.8),
    ("life saver", 0.8),
    ("you are a star", 0.7),
    ("you are a legend", 0.7),
    ("top notch", 0.7),
    ("spot on", 0.5),
    ("sounds good", 0.4),
    ("fair enough", 0.2),
    ("good to know", 0.3),
    ("all good", 0.3),
    ("that works", 0.3),
    ("works now", 0.4),
    ("no complaints", 0.3),
    ("can not complain", 0.3),
    ("could not be happier", 0.9),
    ("could not be better", 0.7),
    ("could not have been more helpful", 0.9),
    ("not bad at all", 0.35),
];

const EN_GRATITUDE: &[(&str, f32)] = &[
    ("thank", 0.4),
    ("thanks", 0.4),
    ("thank you", 0.45),
    ("thanks a lot", 0.5),
    ("thanks so much", 0.7),
    ("thank you so much", 0.75),
    ("thank you very much", 0.7),
    ("thanks very much", 0.65),
    ("many thanks", 0.55),
    ("much appreciated", 0.65),
    ("thank you kindly", 0.6),
    ("thanks again", 0.5),
    ("thank you again", 0.55),
    ("thanks for your help", 0.55),
    ("thank you for your help", 0.6),
    ("thanks for helping", 0.55),
    ("thank you for helping", 0.6),
    ("can not thank you enough", 0.9),
    ("appreciate", 0.5),
    ("i appreciate it", 0.55),
    ("grateful", 0.6),
    ("thankful", 0.6),
    ("cheers", 0.3),
    ("bless you", 0.4),
    ("god bless", 0.4),
    ("you are welcome", 0.2),
    ("my pleasure", 0.3),
    ("have a nice day", 0.3),
    ("have a good day", 0.3),
    ("no problem", 0.25),
    ("not a problem", 0.25),
    ("no worries", 0.25),
];

const EN_INTENSIFIERS: &[(&str, f32)] = &[
    ("very", 1.3),
    ("really", 1.3),
    ("so", 1.3),
    ("extremely", 1.6),
    ("absolutely", 1.5),
    ("totally", 1.4),
    ("completely", 1.4),
    ("utterly", 1.5),
    ("incredibly", 1.5),
    ("unbelievably", 1.4),
    ("insanely", 1.4),
    ("terribly", 1.4),
    ("awfully", 1.3),
    ("highly", 1.3),
    ("truly", 1.3),
    ("deeply", 1.4),
    ("super", 1.3),
    ("too", 1.2),
    ("way too", 1.4),
    ("most", 1.2),
    ("such", 1.2),
    ("so very", 1.5),
    ("very very", 1.5),
    ("really really", 1.5),
    ("quite", 1.1),
    ("pretty", 1.15),
    ("rather", 1.1),
    ("seriously", 1.3),
    ("especially", 1.2),
    ("particularly", 1.2),
    ("exceptionally", 1.4),
    ("genuinely", 1.2),
    ("beyond", 1.3),
    ("never been so", 1.5),
    ("never been this", 1.5),
    // Diminishers.
    ("a bit", 0.6),
    ("bit", 0.7),
    ("a little", 0.6),
    ("a little bit", 0.5),
    ("a tiny bit", 0.4),
    ("slightly", 0.5),
    ("somewhat", 0.7),
    ("kind of", 0.7),
    ("kinda", 0.7),
    ("sort of", 0.7),
    ("sorta", 0.7),
    ("fairly", 0.85),
    ("mildly", 0.6),
    ("partly", 0.7),
];

const EN_NEGATORS: &[(&str, u8)] = &[
    ("not", 3),
    ("never", 3),
    ("no", 2),
    ("without", 2),
    ("hardly", 2),
    ("barely", 2),
    ("nor", 2),
    ("not at all", 3),
];

const EN_CONTRAST: &[&str] = &["but", "however"];

const EN_NEUTRAL: &[&str] = &[
    "good morning",
    "good afternoon",
    "good evening",
    "good night",
    "good day",
    "good bye",
    "good luck",
    "good question",
    "kind regards",
    "best regards",
    "pretty much",
    "never mind",
    "hate to",
    "hate to bother",
    "no thanks",
    "no thank you",
    "not sure",
    "what kind",
    "slowly",
    "bad credit",
    "bad debt",
    "poor credit",
    "far as i am concerned",
    "satisfaction survey",
];

/// Words a negator's scope and an intensifier pass over: "not a problem", "I'm not", "so very the best".
fn is_transparent(word: &str) -> bool {
    matches!(
        word,
        "a" | "an" | "the" | "am" | "is" | "are" | "was" | "were" | "be" | "been" | "being"
    )
}

const ZH_ANGER: &[(&str, f32)] = &[
    ("生气", 0.7),
    ("气死我了", 1.0),
    ("气死了", 0.9),
    ("气死", 0.85),
    ("气人", 0.7),
    ("愤怒", 0.8),
    ("气愤", 0.8),
    ("火大", 0.7),
    ("恼火", 0.7),
    ("发火", 0.6),
    ("讨厌", 0.6),
    ("可恶", 0.8),
    ("混蛋", 0.9),
    ("王八蛋", 0.95),
    ("妈的", 0.8),
    ("我操", 0.8),
    ("垃圾", 0.8),
    ("骗子", 0.7),
    ("骗人", 0.6),
    ("坑人", 0.7),
    ("坑钱", 0.7),
    ("黑心", 0.8),
    ("无耻", 0.9),
    ("不要脸", 0.9),
    ("有病", 0.7),
    ("神经病", 0.8),
    ("闭嘴", 0.8),
    ("滚", 0.7),
    ("岂有此理", 0.9),
    ("欺人太甚", 0.9),
    ("过分", 0.7),
    ("太过分了", 0.9),
    ("离谱", 0.7),
    ("太离谱了", 0.9),
    ("荒唐", 0.7),
    ("荒谬", 0.7),
    ("可笑", 0.6),
    ("莫名其妙", 0.6),
    ("搞什么", 0.6),
    ("搞什么鬼", 0.8),
    ("什么玩意", 0.7),
    ("什么鬼", 0.6),
    ("忍无可忍", 0.9),
    ("受够了", 0.85),
    ("受不了", 0.7),
    ("忍不了", 0.7),
    ("不可理喻", 0.85),
    ("不像话", 0.8),
    ("有没有搞错", 0.8),
    ("怎么搞的", 0.6),
    ("你们怎么搞的", 0.7),
    ("凭什么", 0.6),
    ("耍我", 0.7),
    ("骗我", 0.6),
    ("糊弄", 0.6),
    ("敷衍", 0.6),
    ("强盗", 0.7),
];

const ZH_FRUSTRATION: &[(&str, f32)] = &[
    ("烦", 0.5),
    ("烦死了", 0.8),
    ("烦人", 0.6),
    ("心烦", 0.5),
    ("郁闷", 0.5),
    ("无语", 0.5),
    ("无奈", 0.4),
    ("麻烦", 0.35),
    ("浪费时间", 0.7),
    ("浪费我的时间", 0.8),
    ("白等", 0.6),
    ("等了半天", 0.6),
    ("等半天", 0.6),
    ("等了很久", 0.5),
    ("等这么久", 0.6),
    ("等了这么久", 0.6),
    ("半天了", 0.4),
    ("说了多少遍", 0.6),
    ("说了好几遍", 0.5),
    ("说了几遍", 0.5),
    ("又是这样", 0.5),
    ("没完没了", 0.6),
    ("没用", 0.5),
    ("没有用", 0.5),
    ("没什么用", 0.5),
    ("一点用都没有", 0.8),
    ("一点用也没有", 0.8),
    ("折腾", 0.5),
    ("绕来绕去", 0.6),
    ("踢皮球", 0.7),
    ("推来推去", 0.6),
    ("推卸责任", 0.7),
    ("怎么回事", 0.35),
];

const ZH_COMPLAINT: &[(&str, f32)] = &[
    ("投诉", 0.7),
    ("要投诉", 0.8),
    ("我要投诉", 0.9),
    ("投诉你们", 0.9),
    ("举报你们", 0.8),
    ("曝光", 0.6),
    ("找领导", 0.5),
    ("找你们领导", 0.6),
    ("找经理", 0.5),
    ("叫你们经理", 0.5),
    ("差劲", 0.7),
    ("太差", 0.7),
    ("很差", 0.6),
    ("真差", 0.6),
    ("服务差", 0.6),
    ("服务太差", 0.8),
    ("态度差", 0.7),
    ("恶劣", 0.7),
    ("态度恶劣", 0.8),
    ("糟糕", 0.6),
    ("糟透了", 0.8),
    ("不满", 0.6),
    ("不满意", 0.6),
    ("失望", 0.6),
    ("不合理", 0.5),
    ("不公平", 0.6),
    ("不专业", 0.6),
    ("不负责", 0.6),
    ("不负责任", 0.7),
    ("不靠谱", 0.6),
    ("差评", 0.6),
    ("不好", 0.4),
    ("不太好", 0.35),
    ("不怎么样", 0.4),
    ("不行", 0.3),
    ("不高兴", 0.5),
    ("不开心", 0.5),
    ("不舒服", 0.4),
    ("不能接受", 0.7),
    ("无法接受", 0.7),
    ("接受不了", 0.7),
    ("太慢", 0.5),
    ("出错", 0.3),
    ("搞错", 0.4),
    ("弄错", 0.4),
    ("乱扣", 0.6),
    ("乱收费", 0.7),
    ("欺骗", 0.7),
    ("后悔", 0.5),
    ("销户", 0.4),
];

const ZH_DISTRESS: &[(&str, f32)] = &[
    ("难过", 0.6),
    ("伤心", 0.6),
    ("哭", 0.5),
    ("崩溃", 0.8),
    ("绝望", 0.8),
    ("完蛋了", 0.7),
    ("我完了", 0.6),
    ("怎么办", 0.4),
    ("该怎么办", 0.45),
    ("不知道怎么办", 0.6),
    ("紧急", 0.4),
    ("着急", 0.5),
    ("焦急", 0.6),
    ("急死了", 0.8),
    ("急死我了", 0.85),
    ("焦虑", 0.6),
    ("紧张", 0.4),
    ("救命", 0.7),
    ("求求你", 0.5),
    ("求你了", 0.5),
    ("怎么会这样", 0.5),
    ("倒霉", 0.5),
    ("惨", 0.5),
    ("糟了", 0.5),
    ("天哪", 0.4),
    ("天啊", 0.4),
    ("我的天", 0.4),
    ("没办法", 0.3),
];

const ZH_FEAR: &[(&str, f32)] = &[
    ("害怕", 0.6),
    ("怕", 0.3),
    ("担心", 0.5),
    ("担忧", 0.5),
    ("不放心", 0.4),
    ("慌", 0.5),
    ("恐慌", 0.7),
    ("心慌", 0.6),
    ("吓人", 0.6),
    ("吓死了", 0.8),
    ("吓死我了", 0.8),
    ("可怕", 0.6),
    ("被骗", 0.7),
    ("被骗了", 0.75),
    ("上当", 0.6),
    ("上当受骗", 0.8),
    ("诈骗", 0.45),
    ("骗局", 0.5),
    ("被盗", 0.5),
    ("盗刷", 0.5),
    ("被盗刷", 0.6),
    ("钱没了", 0.6),
    ("钱不见了", 0.6),
    ("被转走", 0.5),
    ("不见了", 0.3),
    ("盗号", 0.5),
    ("被黑", 0.5),
    ("泄露", 0.4),
    ("威胁", 0.6),
    ("勒索", 0.7),
    ("可疑", 0.3),
    ("不安全", 0.5),
];

const ZH_SATISFACTION: &[(&str, f32)] = &[
    ("满意", 0.6),
    ("高兴", 0.5),
    ("开心", 0.5),
    ("很好", 0.5),
    ("太好了", 0.7),
    ("真好", 0.5),
    ("挺好", 0.45),
    ("好极了", 0.8),
    ("不错", 0.5),
    ("棒", 0.6),
    ("很棒", 0.65),
    ("真棒", 0.65),
    ("太棒了", 0.8),
    ("优秀", 0.6),
    ("专业", 0.4),
    ("耐心", 0.4),
    ("热情", 0.45),
    ("周到", 0.5),
    ("贴心", 0.55),
    ("细心", 0.45),
    ("高效", 0.5),
    ("给力", 0.6),
    ("靠谱", 0.5),
    ("完美", 0.6),
    ("厉害", 0.5),
    ("赞", 0.45),
    ("点赞", 0.5),
    ("好评", 0.6),
    ("五星好评", 0.8),
    ("放心", 0.4),
    ("放心了", 0.5),
    ("安心", 0.4),
    ("解决了", 0.4),
    ("问题解决了", 0.6),
    ("搞定", 0.35),
    ("帮了大忙", 0.75),
    ("帮大忙", 0.7),
    ("喜欢", 0.5),
    ("很方便", 0.45),
    ("挺方便", 0.4),
    ("真方便", 0.45),
    ("很及时", 0.45),
    ("太及时了", 0.6),
    ("幸好", 0.4),
    ("还好", 0.2),
    ("谢天谢地", 0.6),
    ("没问题", 0.25),
    ("没有问题", 0.25),
];

const ZH_GRATITUDE: &[(&str, f32)] = &[
    ("谢谢", 0.5),
    ("谢谢你", 0.55),
    ("谢谢您", 0.6),
    ("谢了", 0.4),
    ("多谢", 0.5),
    ("感谢", 0.55),
    ("感谢你", 0.6),
    ("感谢您", 0.6),
    ("太感谢了", 0.85),
    ("万分感谢", 0.85),
    ("感激", 0.6),
    ("感激不尽", 0.9),
    ("辛苦了", 0.45),
    ("辛苦你了", 0.5),
    ("辛苦您了", 0.5),
    ("麻烦你了", 0.35),
    ("麻烦您了", 0.4),
    ("不客气", 0.2),
    ("不用谢", 0.2),
    ("没关系", 0.2),
];

const ZH_INTENSIFIERS: &[(&str, f32)] = &[
    ("非常", 1.5),
    ("十分", 1.4),
    ("特别", 1.4),
    ("极其", 1.6),
    ("超", 1.3),
    ("太", 1.4),
    ("真", 1.3),
    ("真的", 1.3),
    ("真是", 1.3),
    ("很", 1.2),
    ("好", 1.3),
    ("挺", 1.15),
    ("蛮", 1.15),
    ("相当", 1.3),
    ("实在", 1.3),
    ("简直", 1.4),
    ("到底", 1.2),
    ("越来越", 1.3),
    // Diminishers.
    ("有点", 0.6),
    ("有点儿", 0.6),
    ("有一点", 0.6),
    ("有一点儿", 0.6),
    ("有些", 0.7),
    ("稍微", 0.5),
    ("比较", 0.85),
];

const ZH_NEGATORS: &[(&str, u8)] = &[
    ("不", 2),
    ("没", 2),
    ("没有", 3),
    ("别", 2),
    ("未", 2),
    ("并不", 3),
    ("并没有", 3),
    ("从不", 3),
    ("从没", 3),
    ("从来不", 3),
    ("从来没有", 3),
    ("毫不", 2),
    ("绝不", 2),
    ("不是", 3),
    ("一点都不", 3),
    ("一点也不", 3),
    ("根本不", 3),
    ("根本没有", 3),
];

const ZH_CONTRAST: &[&str] = &["但是", "可是", "不过", "但", "然而"];

/// Words that start with a negator or contain a lexicon character without its meaning.
const ZH_NEUTRAL: &[&str] = &[
    "不好意思",
    "不然",
    "不管",
    "不仅",
    "不断",
    "不久",
    "不少",
    "不同",
    "不得不",
    "不用",
    "差不多",
    "别的",
    "别人",
    "区别",
    "分别",
    "识别",
    "级别",
    "类别",
    "个别",
    "告别",
    "差别",
    "未来",
    "未成年",
    "滚动",
    "棒球",
    "恐怕",
    "哪怕",
    "操作",
    "没事",
    "麻烦你",
    "麻烦您",
    "赞成",
    "好像",
    "好的",
    "满意度",
    "垃圾短信",
    "垃圾邮件",
    // A-not-A questions ("是不是" = "is it?") negate nothing.
    "是不是",
    "好不好",
    "对不对",
    "要不要",
    "能不能",
    "会不会",
    "有没有",
    "行不行",
    "可不可以",
];

/// Traditional → simplified for the characters of the Mandarin entries above (whisper writes either); only
/// lexicon matching needs it, so characters outside the lexicon are not listed.
const TRADITIONAL: &[(char, char)] = &[
    ('萬', '万'),
    ('專', '专'),
    ('業', '业'),
    ('個', '个'),
    ('舉', '举'),
    ('麼', '么'),
    ('麽', '么'),
    ('亂', '乱'),
    ('僅', '仅'),
    ('從', '从'),
    ('們', '们'),
    ('優', '优'),
    ('會', '会'),
    ('傷', '伤'),
    ('兒', '儿'),
    ('關', '关'),
    ('興', '兴'),
    ('決', '决'),
    ('幾', '几'),
    ('憑', '凭'),
    ('別', '别'),
    ('辦', '办'),
    ('務', '务'),
    ('動', '动'),
    ('勁', '劲'),
    ('區', '区'),
    ('厲', '厉'),
    ('厭', '厌'),
    ('發', '发'),
    ('號', '号'),
    ('後', '后'),
    ('嚇', '吓'),
    ('週', '周'),
    ('媽', '妈'),
    ('實', '实'),
    ('對', '对'),
    ('導', '导'),
    ('盡', '尽'),
    ('豈', '岂'),
    ('幫', '帮'),
    ('並', '并'),
    ('開', '开'),
    ('張', '张'),
    ('強', '强'),
    ('當', '当'),
    ('憂', '忧'),
    ('態', '态'),
    ('惡', '恶'),
    ('惱', '恼'),
    ('慘', '惨'),
    ('憤', '愤'),
    ('戶', '户'),
    ('報', '报'),
    ('擔', '担'),
    ('斷', '断'),
    ('無', '无'),
    ('時', '时'),
    ('來', '来'),
    ('極', '极'),
    ('樣', '样'),
    ('歡', '欢'),
    ('氣', '气'),
    ('沒', '没'),
    ('洩', '泄'),
    ('潰', '溃'),
    ('滾', '滚'),
    ('滿', '满'),
    ('點', '点'),
    ('煩', '烦'),
    ('熱', '热'),
    ('盜', '盗'),
    ('著', '着'),
    ('離', '离'),
    ('簡', '简'),
    ('類', '类'),
    ('係', '系'),
    ('繫', '系'),
    ('緊', '紧'),
    ('級', '级'),
    ('細', '细'),
    ('經', '经'),
    ('繞', '绕'),
    ('給', '给'),
    ('絕', '绝'),
    ('恥', '耻'),
    ('脅', '胁'),
    ('臉', '脸'),
    ('騰', '腾'),
    ('慮', '虑'),
    ('蠻', '蛮'),
    ('見', '见'),
    ('討', '讨'),
    ('評', '评'),
    ('識', '识'),
    ('詐', '诈'),
    ('訴', '诉'),
    ('話', '话'),
    ('該', '该'),
    ('語', '语'),
    ('說', '说'),
    ('謝', '谢'),
    ('謬', '谬'),
    ('譜', '谱'),
    ('負', '负'),
    ('責', '责'),
    ('貼', '贴'),
    ('費', '费'),
    ('讚', '赞'),
    ('贊', '赞'),
    ('轉', '转'),
    ('較', '较'),
    ('過', '过'),
    ('還', '还'),
    ('這', '这'),
    ('郵', '邮'),
    ('鬱', '郁'),
    ('錢', '钱'),
    ('銷', '销'),
    ('錯', '错'),
    ('閉', '闭'),
    ('問', '问'),
    ('間', '间'),
    ('悶', '闷'),
    ('難', '难'),
    ('黴', '霉'),
    ('領', '领'),
    ('題', '题'),
    ('騙', '骗'),
    ('嗎', '吗'),
];

/// Suffix rules for inflected single words ("angrily", "angrier", "frustrates", "scammed"); the stem is
/// only accepted when it is itself an emotion word of the lexicon.
const SUFFIXES: &[(&str, &str)] = &[
    ("ily", "y"),
    ("iest", "y"),
    ("ier", "y"),
    ("ied", "y"),
    ("ies", "y"),
    ("bly", "ble"),
    ("ly", ""),
    ("ation", "ate"),
    ("ment", ""),
    ("ing", ""),
    ("ing", "e"),
    ("ed", ""),
    ("ed", "e"),
    ("est", ""),
    ("est", "e"),
    ("er", ""),
    ("er", "e"),
    ("es", ""),
    ("s", ""),
];

struct Lexicon {
    entries: HashMap<&'static str, Entry>,
    fold: HashMap<char, char>,
    /// Longest English key in words, longest Mandarin key in characters.
    max_words: usize,
    max_han: usize,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(build_lexicon)
}

/// Every key with its entry, in table order (a later duplicate would overwrite an earlier one; a test
/// checks there is none).
fn all_entries() -> impl Iterator<Item = (&'static str, Entry)> {
    let moods: [(Class, &'static [(&'static str, f32)]); 14] = [
        (Class::Anger, EN_ANGER),
        (Class::Frustration, EN_FRUSTRATION),
        (Class::Complaint, EN_COMPLAINT),
        (Class::Distress, EN_DISTRESS),
        (Class::Fear, EN_FEAR),
        (Class::Satisfaction, EN_SATISFACTION),
        (Class::Gratitude, EN_GRATITUDE),
        (Class::Anger, ZH_ANGER),
        (Class::Frustration, ZH_FRUSTRATION),
        (Class::Complaint, ZH_COMPLAINT),
        (Class::Distress, ZH_DISTRESS),
        (Class::Fear, ZH_FEAR),
        (Class::Satisfaction, ZH_SATISFACTION),
        (Class::Gratitude, ZH_GRATITUDE),
    ];
    let moods = moods
        .into_iter()
        .flat_map(|(class, list)| list.iter().map(move |&(k, w)| (k, Entry::Mood(class, w))));
    let intens = EN_INTENSIFIERS
        .iter()
        .chain(ZH_INTENSIFIERS)
        .map(|&(k, m)| (k, Entry::Intensifier(m)));
    let negators = EN_NEGATORS
        .iter()
        .chain(ZH_NEGATORS)
        .map(|&(k, s)| (k, Entry::Negator(s)));
    let contrast = EN_CONTRAST
        .iter()
        .chain(ZH_CONTRAST)
        .map(|&k| (k, Entry::Contrast));
    let neutral = EN_NEUTRAL
        .iter()
        .chain(ZH_NEUTRAL)
        .map(|&k| (k, Entry::Neutral));
    moods
        .chain(intens)
        .chain(negators)
        .chain(contrast)
        .chain(neutral)
}

fn build_lexicon() -> Lexicon {
    let mut entries = HashMap::new();
    let (mut max_words, mut max_han) = (1, 1);
    for (key, entry) in all_entries() {
        if key.chars().any(is_han) {
            max_han = max_han.max(key.chars().count());
        } else {
            max_words = max_words.max(key.split(' ').count());
        }
        entries.insert(key, entry);
    }
    Lexicon {
        entries,
        fold: TRADITIONAL.iter().copied().collect(),
        max_words,
        max_han,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tokens.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A Latin word (or one half of an expanded contraction), lowercased.
    Word,
    /// One Han character, folded to simplified.
    Han,
    /// Punctuation that ends a clause: negation and intensifiers stop here, phrases do not cross it.
    Punct,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    /// Byte range in the original text.
    start: usize,
    end: usize,
    /// Byte range of the normalised form in the arena.
    norm_start: usize,
    norm_end: usize,
}

impl Tok {
    fn norm<'a>(&self, arena: &'a str) -> &'a str {
        &arena[self.norm_start..self.norm_end]
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | '‘' | 'ʼ' | '`')
}

fn is_clause_punct(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | '…'
            | '。'
            | '，'
            | '；'
            | '：'
            | '！'
            | '？'
            | '、'
            | '('
            | ')'
            | '（'
            | '）'
            | '"'
            | '“'
            | '”'
            | '「'
            | '」'
    )
}

fn tokenize(text: &str, fold: &HashMap<char, char>, arena: &mut String, toks: &mut Vec<Tok>) {
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() && !is_han(c) {
            word_start.get_or_insert(i);
            continue;
        }
        if is_apostrophe(c) && word_start.is_some() {
            continue;
        }
        if let Some(s) = word_start.take() {
            push_word(text, s, i, arena, toks);
        }
        if is_han(c) {
            let norm_start = arena.len();
            arena.push(*fold.get(&c).unwrap_or(&c));
            toks.push(Tok {
                kind: Kind::Han,
                start: i,
                end: i + c.len_utf8(),
                norm_start,
                norm_end: arena.len(),
            });
        } else if is_clause_punct(c) {
            toks.push(Tok {
                kind: Kind::Punct,
                start: i,
                end: i + c.len_utf8(),
                norm_start: arena.len(),
                norm_end: arena.len(),
            });
        }
    }
    if let Some(s) = word_start {
        push_word(text, s, text.len(), arena, toks);
    }
}

/// Pushes the word `text[start..end]` lowercased, as one or two tokens (contractions expanded: "don't" →
/// "do not", "I'm" → "i am"; a possessive "'s" dropped), each spanning the whole word in the text.
fn push_word(text: &str, start: usize, mut end: usize, arena: &mut String, toks: &mut Vec<Tok>) {
    // A trailing apostrophe ("customers'") is not part of the word.
    while let Some(c) = text[start..end]
        .chars()
        .next_back()
        .filter(|c| is_apostrophe(*c))
    {
        end -= c.len_utf8();
    }
    let word_at = arena.len();
    for c in text[start..end].chars() {
        if is_apostrophe(c) {
            arena.push('\'');
        } else {
            arena.extend(c.to_lowercase());
        }
    }
    let (first, second) = expand_contraction(&arena[word_at..]);
    match first {
        Piece::Prefix(len) => arena.truncate(word_at + len),
        Piece::Word(w) => {
            arena.truncate(word_at);
            arena.push_str(w);
        }
    }
    let mut push = |norm_start: usize, norm_end: usize| {
        toks.push(Tok {
            kind: Kind::Word,
            start,
            end,
            norm_start,
            norm_end,
        });
    };
    if arena.len() > word_at {
        push(word_at, arena.len());
    }
    if !second.is_empty() {
        let at = arena.len();
        arena.push_str(second);
        push(at, arena.len());
    }
}

/// The first word of an expanded contraction: the lowercased word's first `len` bytes, or another word.
enum Piece {
    Prefix(usize),
    Word(&'static str),
}

/// The words a contraction stands for (the second may be empty); whisper writes some without the
/// apostrophe ("dont", "im").
fn expand_contraction(w: &str) -> (Piece, &'static str) {
    let whole = match w {
        "can't" | "cant" | "cannot" => Some(("can", "not")),
        "won't" | "wont" => Some(("will", "not")),
        "shan't" => Some(("shall", "not")),
        "ain't" | "aint" => Some(("is", "not")),
        "i'm" | "im" => Some(("i", "am")),
        "let's" => Some(("let", "us")),
        "ive" => Some(("i", "have")),
        "youre" => Some(("you", "are")),
        "youve" => Some(("you", "have")),
        "theyre" => Some(("they", "are")),
        "thats" => Some(("that", "is")),
        "whats" => Some(("what", "is")),
        _ => None,
    };
    if let Some((first, second)) = whole {
        return (Piece::Word(first), second);
    }
    if let Some(stem) = w.strip_suffix("nt") {
        if matches!(
            stem,
            "do" | "does"
                | "did"
                | "is"
                | "was"
                | "are"
                | "were"
                | "have"
                | "has"
                | "had"
                | "could"
                | "would"
                | "should"
                | "must"
                | "need"
        ) {
            return (Piece::Prefix(stem.len()), "not");
        }
    }
    let suffixes: [(&str, &'static str); 7] = [
        ("n't", "not"),
        ("'re", "are"),
        ("'ve", "have"),
        ("'ll", "will"),
        ("'d", "would"),
        ("'m", "am"),
        ("'s", "is"),
    ];
    for (suffix, expansion) in suffixes {
        if let Some(stem) = w.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            let is_verb = suffix != "'s"
                || matches!(
                    stem,
                    "it" | "that"
                        | "what"
                        | "there"
                        | "here"
                        | "he"
                        | "she"
                        | "who"
                        | "where"
                        | "how"
                );
            // "'s" after a noun is a possessive ("bank's"), not "is".
            return (
                Piece::Prefix(stem.len()),
                if is_verb { expansion } else { "" },
            );
        }
    }
    // Other apostrophes ("o'clock") stay inside the word.
    (Piece::Prefix(w.len()), "")
}

/// The longest lexicon entry starting at token `i`: (tokens it spans, entry), or (1, None).
fn longest_match(
    lex: &Lexicon,
    toks: &[Tok],
    arena: &str,
    i: usize,
    key: &mut String,
    prefix_ends: &mut Vec<usize>,
) -> (usize, Option<Entry>) {
    let kind = toks[i].kind;
    let max = if kind == Kind::Han {
        lex.max_han
    } else {
        lex.max_words
    };
    key.clear();
    prefix_ends.clear();
    for t in toks[i..].iter().take(max) {
        if t.kind != kind {
            break;
        }
        if kind == Kind::Word && !key.is_empty() {
            key.push(' ');
        }
        key.push_str(t.norm(arena));
        prefix_ends.push(key.len());
    }
    for (n, &end) in prefix_ends.iter().enumerate().rev() {
        if let Some(e) = lex.entries.get(&key[..end]) {
            return (n + 1, Some(*e));
        }
    }
    if kind == Kind::Word {
        let word = toks[i].norm(arena);
        if let Some(e) = inflected(lex, word, key) {
            return (1, Some(e));
        }
    }
    (1, None)
}

/// An emotion entry for an inflected form of `word` ("angrily" → "angry"), trying suffix rules in order
/// and undoubling a final consonant ("scammed" → "scamm" → "scam").
fn inflected(lex: &Lexicon, word: &str, buf: &mut String) -> Option<Entry> {
    let mood = |k: &str| match lex.entries.get(k) {
        Some(e @ Entry::Mood(..)) => Some(*e),
        _ => None,
    };
    for &(suffix, replacement) in SUFFIXES {
        let Some(stem) = word.strip_suffix(suffix) else {
            continue;
        };
        if stem.len() < 3 {
            continue;
        }
        buf.clear();
        buf.push_str(stem);
        buf.push_str(replacement);
        if let Some(e) = mood(buf) {
            return Some(e);
        }
        let b = stem.as_bytes();
        let doubled = replacement.is_empty()
            && b.len() >= 4
            && b[b.len() - 1] == b[b.len() - 2]
            && !matches!(
                b[b.len() - 1],
                b'a' | b'e' | b'i' | b'o' | b'u' | b'l' | b's'
            );
        if doubled {
            if let Some(e) = mood(&stem[..stem.len() - 1]) {
                return Some(e);
            }
        }
    }
    None
}

/// Holds a word in capitals of at least two letters ("ANGRY", not "I").
fn is_shouted(s: &str) -> bool {
    s.split(|c: char| !c.is_alphabetic())
        .any(|w| w.chars().count() >= 2 && w.chars().all(char::is_uppercase))
}

/// '!' marks (up to three) ending the sentence that `rest` continues.
fn trailing_exclamations(rest: &str) -> usize {
    let Some(at) = rest.find(['.', '!', '?', '。', '！', '？', '…']) else {
        return 0;
    };
    rest[at..]
        .chars()
        .take_while(|c| matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '…'))
        .filter(|c| matches!(c, '!' | '！'))
        .count()
        .min(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str) -> f32 {
        lexical(text).score
    }

    #[test]
    fn target_sentences() {
        // (text, lowest allowed, highest allowed)
        let cases = [
            (
                "This is ridiculous, I am very angry. Put me through to an agent.",
                -1.0,
                -0.5,
            ),
            ("Thank you, that was really helpful.", 0.5, 1.0),
            ("I am not angry, just checking my balance.", -0.199, 1.0),
            ("I want to check my balance.", 0.0, 0.0),
            ("我要投诉，太离谱了", -1.0, -0.5),
            ("没有生气", -0.199, 1.0),
            ("谢谢你，非常满意", 0.5, 1.0),
            ("I'm fed up with waiting", -1.0, -0.4),
            ("not bad", 0.001, 1.0),
        ];
        for (text, lo, hi) in cases {
            let s = score(text);
            assert!(
                (lo..=hi).contains(&s),
                "{text:?} scored {s}, want {lo}..={hi}"
            );
        }
    }

    #[test]
    fn no_evidence_is_exactly_neutral_with_no_hits() {
        for text in [
            "I want to check my balance.",
            "",
            "   ",
            "My account number is ending four five six.",
            "我想查一下余额",
            "Good morning, how are you?",
        ] {
            let s = lexical(text);
            assert_eq!(s.score, 0.0, "{text:?}: {:?}", s.hits);
            assert!(s.hits.is_empty(), "{text:?}: {:?}", s.hits);
        }
    }

    #[test]
    fn hits_carry_byte_ranges_into_the_original_text() {
        let text = "Well, THIS is Ridiculous… 我要投訴！";
        let s = lexical(text);
        assert!(s.hits.len() >= 2, "{:?}", s.hits);
        for h in &s.hits {
            assert_eq!(&text[h.start..h.end], h.text);
        }
        assert_eq!(s.hits[0].text, "THIS is Ridiculous");
        assert!(s
            .hits
            .iter()
            .any(|h| h.text == "我要投訴" && h.weight < 0.0));
    }

    #[test]
    fn contractions_map_to_the_same_hit_span() {
        let s = lexical("I don't like this, I can't believe it");
        let h = s
            .hits
            .iter()
            .find(|h| h.text.contains("believe"))
            .expect("hit");
        assert_eq!(h.text, "can't believe");
        // Without the apostrophe, as whisper sometimes writes it.
        assert!(score("i cant believe this") < -0.3);
    }

    #[test]
    fn inflections_match() {
        for w in [
            "angry",
            "angrier",
            "angriest",
            "angrily",
            "frustrate",
            "frustrates",
            "frustrated",
            "frustrating",
            "frustration",
            "scammed",
            "annoys",
            "worried",
            "worries",
            "disappointed",
            "terribly upsetting",
        ] {
            let s = score(&format!("I was {w}"));
            assert!(s < -0.2, "{w}: {s}");
        }
        assert!(score("they happily helped") > 0.2);
        // Stems only count when the stem itself is an emotion word.
        for w in [
            "checking",
            "balanced",
            "transfers",
            "cards",
            "later",
            "hello",
        ] {
            assert_eq!(score(w), 0.0, "{w}");
        }
    }

    #[test]
    fn negation_flips_within_scope_only() {
        let happy = score("I am happy with the service");
        let not_happy = score("I am not happy with the service");
        assert!(happy > 0.3 && not_happy < -0.3, "{happy} {not_happy}");
        assert!(score("I'm not happy") < -0.3);
        assert!(score("I am not very happy") < -0.3);
        assert!(score("Im not angry") > -0.05);
        assert!(score("don't worry about it") >= 0.0);
        let s = lexical("I'm not angry");
        assert!(s.hits[0].negated && s.hits[0].weight > 0.0);
        // Punctuation ends the scope.
        assert!(score("No. This is terrible.") < -0.4);
        // Far from the negator the word keeps its sign.
        assert!(score("I am not sure why this is so terrible") < -0.4);
        // Idioms holding a negator.
        assert!(score("I can't thank you enough") > 0.5);
        assert!(score("I have never been so angry") < -0.5);
        assert!(score("could not be happier") > 0.5);
        assert!(score("that's not good enough") < -0.4);
    }

    #[test]
    fn mandarin_negation() {
        assert!(score("没有生气") > -0.2);
        assert!(score("我一点都不生气") > -0.2);
        assert!(score("别生气") > -0.2);
        assert!(score("不满意") < -0.4);
        assert!(score("我不是很满意") < -0.3);
        assert!(score("不错") > 0.3);
        assert!(score("没问题") > 0.0);
        // "不好意思" is "excuse me", not "not good".
        assert_eq!(score("不好意思，我想查余额"), 0.0);
        // 别 inside 别的 / 特别 is no negator: 特别满意 is very satisfied.
        assert!(score("特别满意") > 0.5);
    }

    #[test]
    fn intensifiers_and_diminishers_scale() {
        let plain = score("I am angry");
        let very = score("I am very angry");
        let extremely = score("I am extremely angry");
        let bit = score("I am a bit angry");
        assert!(
            extremely < very && very < plain && plain < bit && bit < 0.0,
            "{extremely} {very} {plain} {bit}"
        );
        assert!(score("非常满意") > score("满意"));
        assert!(score("有点烦") > score("烦"));
        assert!(score("I'm terribly sorry for the wait") >= 0.0);
    }

    #[test]
    fn exclamations_and_capitals_strengthen() {
        let calm = score("This is ridiculous.");
        let bang = score("This is ridiculous!!!");
        let caps = score("This is RIDICULOUS.");
        assert!(bang < calm && caps < calm, "{calm} {bang} {caps}");
        // A transcript all in capitals shouts nothing.
        assert_eq!(score("THIS IS RIDICULOUS."), score("this is ridiculous."));
    }

    #[test]
    fn one_strong_complaint_in_a_long_polite_turn_is_clearly_negative() {
        let text =
            "Hello, good morning. I would like to ask about a payment on my account from last \
                    Tuesday, please, and also about my address, and please could you tell me the \
                    opening hours of the branch. Honestly this is ridiculous.";
        assert!(score(text) <= -0.5, "{}", score(text));
        let polite =
            "Thank you for taking my call, but I have been waiting for forty minutes and this \
                      is ridiculous.";
        assert!(score(polite) <= -0.5, "{}", score(polite));
    }

    #[test]
    fn contrast_weighs_what_follows() {
        assert!(score("You were helpful but I am still very angry") < -0.3);
        assert!(score("I was angry at first but you have been really helpful") > 0.3);
    }

    #[test]
    fn traditional_folds_to_simplified() {
        for (trad, simp) in [
            ("我要投訴，太離譜了", "我要投诉，太离谱了"),
            ("氣死我了", "气死我了"),
            ("謝謝你，非常滿意", "谢谢你，非常满意"),
            ("沒有生氣", "没有生气"),
            ("等了半天，煩死了", "等了半天，烦死了"),
        ] {
            let (t, s) = (score(trad), score(simp));
            assert!(
                s != 0.0 && (t - s).abs() < 1e-6,
                "{trad}: {t} vs {simp}: {s}"
            );
        }
    }

    #[test]
    fn mandarin_phrases() {
        assert!(score("气死我了") <= -0.5);
        assert!(score("我要投诉") <= -0.5);
        assert!(score("我的卡被盗刷了，怎么办") < -0.4);
        assert!(score("太感谢了，帮了大忙") >= 0.5);
        assert!(score("你们这服务太差了，浪费我的时间") <= -0.6);
        // Whisper sometimes spaces Mandarin words apart.
        assert!(score("我要 投诉") <= -0.5);
    }

    #[test]
    fn mixed_languages() {
        let s = lexical("我的card被盗刷了, this is terrible");
        assert!(s.score < -0.5 && s.hits.len() == 2, "{s:?}");
    }

    #[test]
    fn lexicon_is_well_formed() {
        let mut seen = HashMap::new();
        let mut en = 0;
        let mut zh = 0;
        for (key, entry) in all_entries() {
            assert!(seen.insert(key, entry).is_none(), "duplicate key {key:?}");
            if let Entry::Mood(_, w) = entry {
                assert!(w > 0.0 && w <= 1.0, "{key}: {w}");
            }
            if key.chars().any(is_han) {
                zh += usize::from(matches!(entry, Entry::Mood(..)));
                assert!(key.chars().all(is_han), "{key:?} mixes scripts");
                for c in key.chars() {
                    assert!(
                        !TRADITIONAL.iter().any(|(t, _)| *t == c),
                        "{key:?} holds traditional {c}"
                    );
                }
            } else {
                en += usize::from(matches!(entry, Entry::Mood(..)));
                // Keys are in the tokenizer's form, so they can match.
                let mut arena = String::new();
                let mut toks = Vec::new();
                tokenize(key, &HashMap::new(), &mut arena, &mut toks);
                let words: Vec<&str> = toks.iter().map(|t| t.norm(&arena)).collect();
                assert_eq!(words.join(" "), key, "key not in normalised form");
            }
        }
        assert!(en >= 300, "{en} English entries");
        assert!(zh >= 100, "{zh} Mandarin entries");
    }

    #[test]
    fn every_mandarin_key_matches_in_traditional_form_too() {
        // Each key written with the traditional variants the fold table knows scores like the key itself.
        let lex = lexicon();
        let to_trad: HashMap<char, char> = TRADITIONAL.iter().map(|(t, s)| (*s, *t)).collect();
        assert_eq!(
            lex.fold.len(),
            TRADITIONAL.len(),
            "a traditional character listed twice"
        );
        assert!(TRADITIONAL.iter().all(|(t, s)| t != s));
        for (key, entry) in all_entries() {
            if !key.chars().any(is_han) || !matches!(entry, Entry::Mood(..)) {
                continue;
            }
            let trad: String = key
                .chars()
                .map(|c| *to_trad.get(&c).unwrap_or(&c))
                .collect();
            let folded: String = trad
                .chars()
                .map(|c| *lex.fold.get(&c).unwrap_or(&c))
                .collect();
            assert_eq!(folded, key);
        }
    }
}
