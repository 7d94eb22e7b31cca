//! The caption tokeniser: a rule-for-rule port of NLTK 3.6.2's `NLTKWordTokenizer`
//! (`nltk/tokenize/destructive.py`), the word splitter behind `nltk.word_tokenize`, which the
//! official RCAR code applies to lower-cased captions. `tests/tokenizer_golden.rs` checks it
//! against real NLTK output (`datasets/tokenizer/make_golden.py`).
//!
//! Python's `re` and the `regex` crate disagree in a few places, handled here:
//! - `regex` has no look-around; the rules that use it (`\b`, `(?!...)`) match their consuming
//!   part with a regex and check the assertions by hand ([`Rule::Checked`]).
//! - Python's `\w` is `[\p{L}\p{N}_]` (`str.isalnum()` or `_`), narrower than `regex`'s, and
//!   Python's `\s` (`str.isspace()`) also holds U+001C..U+001F; both are spelt out below.
//! - Python's case-insensitive `i` also matches `ı` and `İ`; the patterns list them.
//! - Python's `$` also matches before a final `\n`; `\z` plus an optional `\n` covers it.
//!
//! Not handled: characters assigned after Unicode 14.0 (Python 3.11's tables) may be
//! classified or lower-cased differently; `regex` and `std` follow newer Unicode versions.
//! Python's `str.lower()` and Rust's `to_lowercase()` agree on every other character, including
//! the final-sigma rule.
//!
//! Only `nltk.word_tokenize`'s word step is ported: its first step, Punkt sentence splitting,
//! needs a trained model and is not reproduced.

use regex::{Captures, Regex};
use std::sync::LazyLock;

/// Lower-cases `caption` and splits it exactly as NLTK's
/// `NLTKWordTokenizer().tokenize(caption.lower())` does.
pub fn tokenize(caption: &str) -> Vec<String> {
    let mut text = caption.to_lowercase();
    for rule in RULES.iter() {
        text = rule.apply(&text);
    }
    text.split(is_space)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One substitution step of NLTK's pipeline.
enum Rule {
    /// `re.sub(pattern, replacement, text)` where `regex` can express the pattern as is.
    Plain(Regex, &'static str),
    /// A pattern with assertions `regex` lacks: `Regex` matches the consuming part and
    /// `accept(text, caps)` checks the assertions around the match.
    Checked(Regex, &'static str, fn(&str, &Captures) -> bool),
    /// NLTK pads the text with a space on each side before the ending-quote rules.
    Pad,
}

impl Rule {
    fn apply(&self, text: &str) -> String {
        match self {
            Rule::Plain(re, rep) => re.replace_all(text, *rep).into_owned(),
            Rule::Checked(re, rep, accept) => sub_checked(text, re, rep, *accept),
            Rule::Pad => format!(" {text} "),
        }
    }
}

/// `re.sub` for a pattern whose assertions are checked by `accept`. Python's search tries each
/// start position in turn; our patterns consume a fixed shape at a given start, so a rejected
/// match means "no match here" and the search resumes one character later.
fn sub_checked(text: &str, re: &Regex, rep: &str, accept: fn(&str, &Captures) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let (mut copied, mut from) = (0, 0);
    while let Some(caps) = re.captures_at(text, from) {
        let m = caps.get(0).expect("group 0 always matches");
        if accept(text, &caps) {
            out.push_str(&text[copied..m.start()]);
            caps.expand(rep, &mut out);
            copied = m.end();
            from = m.end();
        } else {
            from = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Python's `str.isspace()`, the separator of the final `str.split()`.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1C'..='\x1F').contains(&c)
}

/// Python's `\w`: letters, numbers (any `N*` category) and `_`.
fn is_word(c: char) -> bool {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\A[\p{L}\p{N}_]\z").unwrap());
    WORD.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Python's `\b` before byte `at`, given that the character at `at` is a word character.
fn word_starts(text: &str, at: usize) -> bool {
    !text[..at].chars().next_back().is_some_and(is_word)
}

/// Python's `\b` at byte `at`, given that the character before `at` is a word character.
fn word_ends(text: &str, at: usize) -> bool {
    !text[at..].chars().next().is_some_and(is_word)
}

fn plain(pattern: &str, rep: &'static str) -> Rule {
    Rule::Plain(Regex::new(pattern).unwrap(), rep)
}

fn checked(pattern: &str, rep: &'static str, accept: fn(&str, &Captures) -> bool) -> Rule {
    Rule::Checked(Regex::new(pattern).unwrap(), rep, accept)
}

/// `\b(...)(...)\b` of the CONTRACTIONS2 rules.
fn bounded(text: &str, caps: &Captures) -> bool {
    let m = caps.get(0).unwrap();
    word_starts(text, m.start()) && word_ends(text, m.end())
}

/// NLTK's rules, in NLTK's order (`convert_parentheses` off, its default). `[\s\x1C-\x1F]` is
/// Python's `\s`, `[\p{L}\p{N}_]` Python's `\w`.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // STARTING_QUOTES
        plain(r"([«“‘„]|`+)", " ${1} "),
        plain(r#"^""#, "``"),
        plain(r"(``)", " ${1} "),
        plain(r#"([ (\[{<])("|'')"#, "${1} `` "),
        // (?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b: the word character must end a word, so
        // re/ve/ll cannot follow and the look-ahead only rules out m, t, s, d, n (any case).
        checked(r"(')([\p{L}\p{N}_])", "${1} ${2}", |text, caps| {
            let c = caps.get(2).unwrap();
            !"mtsdnMTSDNſ".contains(c.as_str()) && word_ends(text, c.end())
        }),
        // PUNCTUATION. In `...\s*$` Python's `$` may also match before a final newline, but
        // the greedy `\s*` has consumed it, so these matches always run to the end (`\z`).
        plain(
            r#"([^.])(\.)([\])}>"'»”’ ]*)[\s\x1C-\x1F]*\z"#,
            "${1} ${2} ${3} ",
        ),
        plain(r"([:,])([^\d])", " ${1} ${2}"),
        plain(r"([:,])(\n?)\z", " ${1} ${2}"),
        plain(r"\.{2,}", " ${0} "),
        plain(r"[;@#$%&]", " ${0} "),
        // The final period.
        plain(
            r#"([^.])(\.)([\])}>"']*)[\s\x1C-\x1F]*\z"#,
            "${1} ${2}${3} ",
        ),
        plain(r"[?!]", " ${0} "),
        plain(r"([^'])' ", "${1} ' "),
        plain(r"\*", " ${0} "),
        // PARENS_BRACKETS
        plain(r"[\]\[(){}<>]", " ${0} "),
        // DOUBLE_DASHES
        plain(r"--", " -- "),
        Rule::Pad,
        // ENDING_QUOTES
        plain(r"([»”’])", " ${1} "),
        plain(r#"""#, " '' "),
        plain(r"([^\s\x1C-\x1F])('')", "${1} ${2} "),
        plain(r"([^' ])('[sS]|'[mM]|'[dD]|') ", "${1} ${2} "),
        plain(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "${1} ${2} "),
        // CONTRACTIONS2: (?i)\b(can)(not)\b etc.
        checked(r"(?i)(can)(not)", " ${1} ${2} ", bounded),
        checked(r"(?i)(d)('ye)", " ${1} ${2} ", bounded),
        checked(r"(?i)(g[iıİ]m)(me)", " ${1} ${2} ", bounded),
        checked(r"(?i)(gon)(na)", " ${1} ${2} ", bounded),
        checked(r"(?i)(got)(ta)", " ${1} ${2} ", bounded),
        checked(r"(?i)(lem)(me)", " ${1} ${2} ", bounded),
        checked(r"(?i)(more)('n)", " ${1} ${2} ", bounded),
        // (?i)\b(wan)(na)\s
        checked(
            r"(?i)(wan)(na)[\s\x1C-\x1F]",
            " ${1} ${2} ",
            |text, caps| word_starts(text, caps.get(0).unwrap().start()),
        ),
        // CONTRACTIONS3: (?i) ('t)(is)\b, (?i) ('t)(was)\b
        checked(r"(?i) ('t)([iıİ]s)", " ${1} ${2} ", |text, caps| {
            word_ends(text, caps.get(0).unwrap().end())
        }),
        checked(r"(?i) ('t)(was)", " ${1} ${2} ", |text, caps| {
            word_ends(text, caps.get(0).unwrap().end())
        }),
    ]
});

#[cfg(test)]
mod tests {
    use super::tokenize;

    fn tok(s: &str) -> Vec<String> {
        tokenize(s)
    }

    #[test]
    fn tokenizer_splits_contractions() {
        assert_eq!(tok("can't"), ["ca", "n't"]);
        assert_eq!(tok("They're gonna"), ["they", "'re", "gon", "na"]);
        assert_eq!(tok("'Tis"), ["'t", "is"]);
    }

    #[test]
    fn tokenizer_rewrites_double_quotes() {
        assert_eq!(
            tok(r#"A sign says "STOP"."#),
            ["a", "sign", "says", "``", "stop", "''", "."]
        );
    }

    #[test]
    fn tokenizer_keeps_hyphenated_words() {
        assert_eq!(tok("A well-known t-shirt"), ["a", "well-known", "t-shirt"]);
    }

    #[test]
    fn tokenizer_splits_only_the_final_period() {
        assert_eq!(
            tok("Dogs on St. Mark's square."),
            ["dogs", "on", "st.", "mark", "'s", "square", "."]
        );
    }
}
