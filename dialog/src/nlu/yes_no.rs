//! Confirmations: "yes" / "no" in a short answer.

use super::text::normalize;

const YES: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "yup",
    "yea",
    "ya",
    "yah",
    "sure",
    "ok",
    "okay",
    "alright",
    "correct",
    "right",
    "absolutely",
    "definitely",
    "certainly",
    "affirmative",
    "exactly",
    "indeed",
    "course",
    "huh",
    "mhm",
    "hmm",
    "agreed",
    "fine",
];
const NO: &[&str] = &[
    "no",
    "nope",
    "nah",
    "naw",
    "wrong",
    "incorrect",
    "negative",
    "not",
    "never",
];

/// Answers that are neither: the caller should be asked again, not taken as a "no".
const UNSURE: &[&[&str]] = &[
    &["not", "sure"],
    &["do", "not", "know"],
    &["maybe"],
    &["perhaps"],
    &["not", "certain"],
];

/// Whether a short answer means yes (`Some(true)`) or no (`Some(false)`); `None` when it says neither,
/// both ("yes… no"), or the caller is unsure ("I'm not sure", "不知道"). A yes-word after "not"
/// ("not correct", "that's not right") is a no.
pub fn yes_no(text: &str) -> Option<bool> {
    let norm = normalize(text);
    let words = &norm.words;
    let mut yes = 0;
    let mut no = 0;
    for (i, w) in words.iter().enumerate() {
        if UNSURE.iter().any(|p| {
            words[i..]
                .iter()
                .take(p.len())
                .map(String::as_str)
                .eq(p.iter().copied())
        }) {
            return None;
        }
        let w = w.as_str();
        // "uh huh" and "mm hmm" are yes; a lone "uh" or "hmm" is a filler.
        if matches!(w, "huh" | "hmm") && i == 0 {
            continue;
        }
        if YES.contains(&w) {
            let negated = words[i.saturating_sub(2)..i]
                .iter()
                .any(|p| p == "not" || p == "never");
            if negated {
                no += 1;
            } else {
                yes += 1;
            }
        } else if NO.contains(&w) {
            no += 1;
        }
    }
    for run in &norm.han_runs {
        let (y, n, unsure) = han_yes_no(run);
        if unsure {
            return None;
        }
        yes += y;
        no += n;
    }
    match (yes > 0, no > 0) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// Counts yes and no phrases in a Mandarin run: phrases are replaced longest-first so "不是" is not also
/// read as "是", and "没错" (no mistake) is a yes although it contains "错".
fn han_yes_no(run: &[char]) -> (u32, u32, bool) {
    let mut s: String = run.iter().collect();
    for neutral in ["对不起", "不好意思", "不客气", "谢谢"] {
        s = s.replace(neutral, " ");
    }
    if ["不知道", "不确定", "不清楚", "可能", "也许", "不一定"]
        .iter()
        .any(|p| s.contains(p))
    {
        return (0, 0, true);
    }
    let mut yes = 0;
    let mut no = 0;
    let take = |s: &mut String, phrases: &[&str], counter: &mut u32| {
        for p in phrases {
            let n = s.matches(p).count() as u32;
            if n > 0 {
                *counter += n;
                *s = s.replace(p, " ");
            }
        }
    };
    take(&mut s, &["没错", "没问题", "当然"], &mut yes);
    take(
        &mut s,
        &[
            "不可以",
            "不是",
            "不对",
            "不要",
            "不用",
            "不行",
            "不好",
            "没有",
            "不",
            "错",
            "否",
        ],
        &mut no,
    );
    take(
        &mut s,
        &["可以", "确定", "是", "对", "好", "行", "嗯"],
        &mut yes,
    );
    (yes, no, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let cases: &[(&str, Option<bool>)] = &[
            ("Yes.", Some(true)),
            ("Yeah, that's right.", Some(true)),
            ("yep", Some(true)),
            ("Correct.", Some(true)),
            ("Sure, go ahead", Some(true)),
            ("OK", Some(true)),
            ("Uh huh", Some(true)),
            ("That is correct", Some(true)),
            ("Yes please", Some(true)),
            ("No.", Some(false)),
            ("Nope", Some(false)),
            ("That's wrong", Some(false)),
            ("That's not right", Some(false)),
            ("not correct", Some(false)),
            ("No, thank you", Some(false)),
            ("Not really", Some(false)),
            ("I'm not sure", None),
            ("I don't know", None),
            ("maybe", None),
            ("yes no", None),
            ("what is the weather", None),
            ("", None),
            ("hmm", None),
            ("是", Some(true)),
            ("是的", Some(true)),
            ("对", Some(true)),
            ("好的", Some(true)),
            ("没错", Some(true)),
            ("可以", Some(true)),
            ("不是", Some(false)),
            ("不对", Some(false)),
            ("不要", Some(false)),
            ("错了", Some(false)),
            ("对不起", None),
            ("我不知道", None),
            ("是不是", None),
            ("對", Some(true)),
        ];
        for (text, want) in cases {
            assert_eq!(yes_no(text), *want, "{text:?}");
        }
    }
}
