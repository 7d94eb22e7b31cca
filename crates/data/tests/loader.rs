//! Loading real-layout splits: both row layouts, the dev cut, vocabularies, batches.

mod common;

use common::{shared_dir, write_split, WORDS};
use rcar_data::batch::{
    batches_per_epoch, epoch_order, eval_captions, eval_images, train_batch, train_epoch,
    LoaderConfig,
};
use rcar_data::npy::{write_f32, Features};
use rcar_data::vocab::{END, START, UNK};
use rcar_data::{Split, Vocab};
use std::sync::Arc;

#[test]
fn official_vocabularies_load_with_mask_appended() {
    for (file, size, word) in [
        ("f30k_precomp_vocab.json", 8482, "white-walled"),
        ("coco_precomp_vocab.json", 11354, "giraffe"),
    ] {
        let vocab = Vocab::load(&shared_dir().join("data/vocab").join(file)).unwrap();
        assert_eq!(vocab.len(), size, "{file}");
        assert_eq!(vocab.mask_id() as usize, size - 1);
        assert_eq!(vocab.word(vocab.mask_id()), Some("<mask>"));
        assert_ne!(vocab.id(word), UNK, "{word} in {file}");
        let ids = vocab.encode("A dog can't swim.");
        assert_eq!(ids[0], START);
        assert_eq!(*ids.last().unwrap(), END);
        assert_eq!(vocab.word(ids[3]), Some("ca"));
        assert_eq!(vocab.word(ids[4]), Some("n't"));
        assert_eq!(vocab.encode("zzqxj")[1], UNK);
    }
}

#[test]
fn vocabulary_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = Vocab::from_words(&WORDS);
    vocab.save(&dir.path().join("v.json")).unwrap();
    assert_eq!(Vocab::load(&dir.path().join("v.json")).unwrap(), vocab);
}

#[test]
fn npy_versions_one_two_three() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5).collect();
    let v1 = dir.path().join("v1.npy");
    write_f32(&v1, &[2, 3, 4], &data).unwrap();
    let bytes = std::fs::read(&v1).unwrap();
    let dict = &bytes[10..];
    for version in [2u8, 3] {
        // Same dict with the 4-byte length field of versions 2.0 and 3.0.
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as u32;
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        out.extend(header_len.to_le_bytes());
        out.extend(dict);
        let path = dir.path().join(format!("v{version}.npy"));
        std::fs::write(&path, out).unwrap();
        let f = Features::open(&path).unwrap();
        let mut got = Vec::new();
        f.gather(&[1, 0], &mut got).unwrap();
        assert_eq!(&got[..12], &data[12..]);
        assert_eq!(&got[12..], &data[..12]);
    }
}

fn captions(n: usize) -> Vec<String> {
    let nouns = ["dog", "cat"];
    (0..n)
        .map(|i| format!("a {} {} .", "red ".repeat(i % 4), nouns[i % 2]))
        .collect()
}

#[test]
fn one_row_per_caption_and_one_row_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let caps = captions(10);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    write_split(dir.path(), "test", 10, &refs);
    write_split(dir.path(), "testall", 2, &refs);
    let vocab = Vocab::from_words(&WORDS);
    let per_caption = Split::open(dir.path(), "test", &vocab).unwrap();
    let per_image = Split::open(dir.path(), "testall", &vocab).unwrap();
    assert_eq!((per_caption.im_div, per_image.im_div), (1, 5));
    for split in [&per_caption, &per_image] {
        assert_eq!(split.num_images(), 2);
        let images = eval_images(split, 0..2).unwrap();
        // Every value encodes its row: image 1 is row 5 (per caption) or row 1 (per image).
        assert_eq!(images[12], (5 / split.im_div) as f32);
    }
    assert_eq!(per_image.image_row(7), 1);
    assert_eq!(per_caption.image_row(7), 7);
    assert_eq!(per_image.tokens[1], vocab.encode("a red cat ."));
}

#[test]
fn dev_is_cut_to_its_first_5000_captions() {
    let dir = tempfile::tempdir().unwrap();
    let caps = captions(5010);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    write_split(dir.path(), "dev", 1002, &refs);
    let split = Split::open(dir.path(), "dev", &Vocab::from_words(&WORDS)).unwrap();
    assert_eq!(
        (split.len(), split.num_images(), split.im_div),
        (5000, 1000, 5)
    );
}

fn train_split(n: usize) -> Arc<Split> {
    let dir = tempfile::tempdir().unwrap();
    let caps = captions(n);
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    write_split(dir.path(), "train", n / 5, &refs);
    let split = Split::open(dir.path(), "train", &Vocab::from_words(&WORDS)).unwrap();
    // The mapping stays valid after the directory is removed (unix semantics).
    Arc::new(split)
}

#[test]
fn training_batches_pair_each_caption_with_its_image_longest_first() {
    let split = train_split(100);
    let cfg = LoaderConfig {
        batch_size: 16,
        seed: 3,
        augment: false,
        prefetch: 2,
    };
    let order = epoch_order(split.len(), cfg.seed, 0);
    let batch = train_batch(&split, &cfg, &order, 0, 1).unwrap();
    assert_eq!(batch.captions.len(), 16);
    let mut sorted = batch.indices.clone();
    let mut expected = order[16..32].to_vec();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(batch.captions.lengths.windows(2).all(|w| w[0] >= w[1]));
    let row_len = batch.regions * batch.dim;
    for (i, &k) in batch.indices.iter().enumerate() {
        assert_eq!(
            batch.images[i * row_len],
            (k / 5) as f32,
            "pair {i} is not a positive"
        );
        let len = batch.captions.lengths[i];
        let row = &batch.captions.ids[i * batch.captions.max_len..(i + 1) * batch.captions.max_len];
        assert_eq!(&row[..len], &split.tokens[k][..]);
        assert!(row[len..].iter().all(|&t| t == 0));
    }
}

#[test]
fn epochs_are_seeded_complete_and_resumable() {
    let split = train_split(100);
    let cfg = LoaderConfig {
        batch_size: 16,
        seed: 11,
        augment: true,
        prefetch: 2,
    };
    let all: Vec<_> = train_epoch(split.clone(), cfg.clone(), 2, 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), batches_per_epoch(100, 16));
    assert_eq!(all.len(), 6);
    let again: Vec<_> = train_epoch(split.clone(), cfg.clone(), 2, 0)
        .map(Result::unwrap)
        .collect();
    assert_eq!(all, again);
    let resumed: Vec<_> = train_epoch(split.clone(), cfg.clone(), 2, 4)
        .map(Result::unwrap)
        .collect();
    assert_eq!(&all[4..], &resumed[..]);
    let next: Vec<_> = train_epoch(split.clone(), cfg.clone(), 3, 0)
        .map(Result::unwrap)
        .collect();
    assert_ne!(all, next);
    // Augmentation changes some captions; without it the tokens are the originals.
    assert!(all
        .iter()
        .any(|b| b.indices.iter().enumerate().any(|(i, &k)| {
            let len = b.captions.lengths[i];
            b.captions.ids[i * b.captions.max_len..][..len] != split.tokens[k][..]
        })));
}

#[test]
fn evaluation_captions_are_unaugmented_and_in_the_order_asked() {
    let split = train_split(20);
    let rows = [8, 5, 7, 6];
    let batch = eval_captions(&split, &rows);
    assert_eq!(batch.len(), 4);
    for (i, &row) in rows.iter().enumerate() {
        assert_eq!(
            &batch.ids[i * batch.max_len..][..batch.lengths[i]],
            &split.tokens[row][..]
        );
    }
}
