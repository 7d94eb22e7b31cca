//! The tokeniser must split every golden text exactly as NLTK 3.6.2's
//! `NLTKWordTokenizer().tokenize(text.lower())` does; the fixture is written by
//! `datasets/tokenizer/make_golden.py` with real NLTK.

use rcar_data::tokenizer::tokenize;
use serde_json::Value;

#[test]
fn tokenizer_matches_nltk_on_every_golden_text() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tokenizer_golden.jsonl"
    );
    let fixture = std::fs::read_to_string(path).expect("read the golden fixture");
    let mut total = 0;
    let mut mismatches = Vec::new();
    for (n, line) in fixture.lines().enumerate() {
        let case: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n}: {e}"));
        let text = case["text"].as_str().expect("text is a string");
        let expected: Vec<&str> = case["tokens"]
            .as_array()
            .expect("tokens is an array")
            .iter()
            .map(|t| t.as_str().expect("a token is a string"))
            .collect();
        let got = tokenize(text);
        if got != expected {
            mismatches.push(format!(
                "line {}: text {text:?}\n  expected {expected:?}\n  got      {got:?}",
                n + 1
            ));
        }
        total += 1;
    }
    assert!(total >= 2500, "only {total} golden texts");
    assert!(
        mismatches.is_empty(),
        "{} of {total} golden texts differ from NLTK; the first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
}
