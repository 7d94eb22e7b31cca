//! A split behind Burn's `Dataset` trait, read through Burn's own `DataLoader`.

mod common;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use common::{write_split, WORDS};
use rcar_data::dataset::SplitDataset;
use rcar_data::npy::{read_f32, write_f32};
use rcar_data::{Split, Vocab};
use std::sync::Arc;

/// 60 captions of 1–6 words over 12 images (five per image); feature values encode the row.
fn split(dir: &std::path::Path) -> Arc<Split> {
    let caps: Vec<String> = (0..60)
        .map(|k| {
            (0..1 + k % 6)
                .map(|j| WORDS[(k + j) % 7])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
    write_split(dir, "train", 12, &refs);
    Arc::new(Split::open(dir, "train", &Vocab::from_words(&WORDS)).unwrap())
}

#[test]
fn items_are_captions_with_their_images_features() {
    let dir = tempfile::tempdir().unwrap();
    let split = split(dir.path());
    let dataset = SplitDataset::new(split.clone());
    assert_eq!(Dataset::len(&dataset), 60);
    for k in [0, 7, 59] {
        let item = dataset.get(k).unwrap();
        assert_eq!(item.caption, k);
        assert_eq!(item.tokens, split.tokens[k]);
        assert_eq!(item.features.len(), 3 * 4);
        assert!(item.features.iter().all(|&v| v == (k / 5) as f32));
    }
    let err = dataset.get(60).unwrap_err().to_string();
    assert!(
        err.contains("train_caps.txt") && err.contains("caption 60"),
        "{err}"
    );
}

#[test]
fn burns_data_loader_gives_every_caption_once_paired_with_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = SplitDataset::new(split(dir.path()));
    let loader = DataLoaderBuilder::new(dataset.batcher())
        .batch_size(16)
        .shuffle(5)
        .num_workers(2)
        .set_device(Device::flex())
        .build(dataset);
    let mut seen = Vec::new();
    for batch in loader.iter() {
        let batch = batch.unwrap();
        let n = batch.indices.len();
        assert_eq!(batch.images.dims(), [n, 3, 4]);
        assert!(batch.captions.lengths.windows(2).all(|w| w[0] >= w[1]));
        let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
        for (i, &k) in batch.indices.iter().enumerate() {
            assert_eq!(values[i * 12], (k / 5) as f32, "pair {i} is not a positive");
        }
        seen.extend(batch.indices);
    }
    seen.sort();
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
}

#[test]
fn a_row_with_nan_is_an_error_of_the_loader_naming_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let split_dir = dir.path();
    split(split_dir);
    let ims = split_dir.join("train_ims.npy");
    let (shape, mut values) = read_f32(&ims).unwrap();
    values[4 * 12 + 1] = f32::NAN;
    write_f32(&ims, &shape, &values).unwrap();
    let split = Arc::new(Split::open(split_dir, "train", &Vocab::from_words(&WORDS)).unwrap());
    let dataset = SplitDataset::new(split);
    // Captions 20–24 show image row 4.
    let err = dataset.get(22).unwrap_err().to_string();
    assert!(
        err.contains("train_ims.npy") && err.contains("row 4 (1 of 12)"),
        "{err}"
    );
    let loader = DataLoaderBuilder::new(dataset.batcher())
        .batch_size(8)
        .set_device(Device::flex())
        .build(dataset);
    // Burn's loader hands the error over in place of the batch (and would repeat it if asked on).
    let mut iter = loader.iter();
    assert!(iter.next().unwrap().is_ok(), "captions 0–7");
    assert!(iter.next().unwrap().is_ok(), "captions 8–15");
    let err = iter.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("row 4 (1 of 12)"), "{err}");
}
