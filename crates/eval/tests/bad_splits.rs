//! Splits the protocol cannot score are refused before any work, naming the captions file.

use rcar_data::npy::write_f32;
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_eval::protocol::check_split;
use std::path::Path;

/// `rows` feature rows of 2 regions × 3 dims and `captions` copies of one caption.
fn open_split(dir: &Path, rows: usize, captions: usize) -> Split {
    write_f32(
        &dir.join("test_ims.npy"),
        &[rows, 2, 3],
        &vec![0.5; rows * 6],
    )
    .unwrap();
    std::fs::write(dir.join("test_caps.txt"), "a dog .\n".repeat(captions)).unwrap();
    Split::open(dir, "test", &Vocab::from_words(&["a", "dog", "."])).unwrap()
}

#[test]
fn captions_that_are_not_five_per_image_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // One feature row per caption is a valid layout (Flickr30K's), but 7 captions are not 5 per image.
    let split = open_split(dir.path(), 7, 7);
    let err = check_split(&split, false).unwrap_err().to_string();
    assert!(
        err.contains("test_caps.txt") && err.contains("7 captions is not a multiple of 5"),
        "{err}"
    );
}

#[test]
fn five_folds_need_a_multiple_of_five_images() {
    let dir = tempfile::tempdir().unwrap();
    let split = open_split(dir.path(), 3, 15);
    assert!(check_split(&split, false).is_ok());
    let err = check_split(&split, true).unwrap_err().to_string();
    assert!(
        err.contains("test_caps.txt") && err.contains("there are 3"),
        "{err}"
    );
}
