//! Every kind of broken input gets an error naming the file and the problem — never a panic.

mod common;

use common::{write_split, WORDS};
use rcar_data::npy::{header_bytes, Features};
use rcar_data::{DataError, Split, Vocab};
use std::path::Path;

fn err_text(e: DataError, file: &Path) -> String {
    assert_eq!(e.path(), file, "error names the wrong file: {e}");
    let text = e.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    text
}

fn npy_with_header(dir: &Path, dict: &str, payload: usize) -> std::path::PathBuf {
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let mut dict = dict.to_string();
    dict.push('\n');
    bytes.extend((dict.len() as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes.extend(vec![0u8; payload]);
    let path = dir.join("x_ims.npy");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_err(path: &Path) -> String {
    err_text(Features::open(path).unwrap_err(), path)
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train_ims.npy");
    let text = open_err(&path);
    assert!(text.contains("No such file"), "{text}");
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x_ims.npy");
    std::fs::write(&path, b"PK\x03\x04 this is a zip file, not npy").unwrap();
    assert!(open_err(&path).contains("magic"));
}

#[test]
fn unsupported_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in ["<f8", ">f4", "<f2"] {
        let dict = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': (2, 3, 4), }}");
        let path = npy_with_header(dir.path(), &dict, 2 * 3 * 4 * 8);
        let text = open_err(&path);
        assert!(text.contains(dtype) && text.contains("float32"), "{text}");
    }
}

#[test]
fn fortran_order() {
    let dir = tempfile::tempdir().unwrap();
    let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }";
    let path = npy_with_header(dir.path(), dict, 96);
    assert!(open_err(&path).contains("Fortran"));
}

#[test]
fn shape_not_rank_three() {
    let dir = tempfile::tempdir().unwrap();
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 4), }";
    let path = npy_with_header(dir.path(), dict, 96);
    assert!(open_err(&path).contains("rank-3"));
}

#[test]
fn truncated_download() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = header_bytes(&[10, 36, 2048]);
    bytes.extend(vec![0u8; 5 * 36 * 2048 * 4]);
    let path = dir.path().join("train_ims.npy");
    std::fs::write(&path, bytes).unwrap();
    let text = open_err(&path);
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn caption_count_neither_one_nor_five_per_row() {
    let dir = tempfile::tempdir().unwrap();
    write_split(
        dir.path(),
        "test",
        2,
        &["a dog .", "a cat .", "a red dog ."],
    );
    let vocab = Vocab::from_words(&WORDS);
    let caps = dir.path().join("test_caps.txt");
    let text = err_text(Split::open(dir.path(), "test", &vocab).unwrap_err(), &caps);
    assert!(text.contains("3 captions for 2 feature rows"), "{text}");
}

#[test]
fn non_utf8_caption() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "test", 3, &["a dog .", "a cat .", "a dog ."]);
    let caps = dir.path().join("test_caps.txt");
    std::fs::write(&caps, b"a dog .\na \xff cat .\na dog .\n").unwrap();
    let vocab = Vocab::from_words(&WORDS);
    let text = err_text(Split::open(dir.path(), "test", &vocab).unwrap_err(), &caps);
    assert!(text.contains("line 2 is not valid UTF-8"), "{text}");
}

#[test]
fn empty_caption_line() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "test", 3, &["a dog .", "  ", "a dog ."]);
    let vocab = Vocab::from_words(&WORDS);
    let caps = dir.path().join("test_caps.txt");
    let text = err_text(Split::open(dir.path(), "test", &vocab).unwrap_err(), &caps);
    assert!(text.contains("line 2 is an empty caption"), "{text}");
}

#[test]
fn vocabulary_not_scan_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.json");
    for (content, expect) in [
        ("[\"a\", \"dog\"]", "not a SCAN vocabulary"),
        ("{\"word2idx\": {}, \"idx\": 0}", "not a SCAN vocabulary"),
        ("not json at all", "not a SCAN vocabulary"),
        (
            r#"{"word2idx": {"<pad>": 0, "dog": 1}, "idx2word": {"0": "<pad>", "1": "dog"}, "idx": 2}"#,
            "id 1 must be the special token <start>",
        ),
        (
            r#"{"word2idx": {"<pad>": 0}, "idx2word": {"0": "<pad>"}, "idx": 5}"#,
            "idx says 5 words",
        ),
    ] {
        std::fs::write(&path, content).unwrap();
        let text = err_text(Vocab::load(&path).unwrap_err(), &path);
        assert!(text.contains(expect), "{content}: {text}");
    }
}
