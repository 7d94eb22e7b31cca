//! Shortlist-then-rerank and the gallery index. A shortlist as long as the gallery scores every
//! pair, so it must give the exhaustive matrix's ranks, for every host and both first stages; a
//! search of the whole index must give the exhaustive scores of its query; queries and indexes that
//! cannot be answered are refused saying why.
//!
//! Ranks are compared exactly except between scores within 1e-5 of each other: the pairs are
//! batched and padded differently from the exhaustive blocks, which moves the last bits of a score
//! as the blocks' sizes do (`grid_order.rs`), and freshly initialised models (SGR's above all)
//! give many near-equal scores.

use burn::tensor::Device;
use rcar_backbones::checkpoint::native::save_model;
use rcar_backbones::{Direction, Host, Matcher, Mode, ModelConfig};
use rcar_data::split::Split;
use rcar_data::vocab::Vocab;
use rcar_eval::encode::{encode, score, Encoded};
use rcar_eval::index::{write, Index, Source, IMAGES};
use rcar_eval::metrics::ranks_t2i;
use rcar_eval::search::{search, Query, QueryError, SearchOptions};
use rcar_eval::shortlist::{first_stage, rerank, top_k, FirstStage};
use rcar_eval::{Silent, SimMatrix};
use std::path::Path;

mod common;
use common::{max_abs_diff, toy_split};

const WORDS: [&str; 8] = ["a", "dog", "runs", "on", "grass", "red", "cat", "."];
const IMAGES_N: usize = 7;
const REGIONS: usize = 4;
const DIM: usize = 6;

fn open_split(dir: &Path) -> Split {
    toy_split(dir, &WORDS, IMAGES_N, REGIONS, DIM)
}

fn vocab() -> Vocab {
    Vocab::from_words(&WORDS)
}

/// Every host, small and freshly initialised.
fn models(vocab_size: usize, device: &Device) -> Vec<Matcher> {
    let scan = |direction| {
        ModelConfig::new(vocab_size, direction, Mode::CoopRcar, 2)
            .with_img_dim(DIM)
            .with_word_dim(5)
            .with_embed_size(8)
            .with_sim_dim(3)
    };
    let sgraf = |host| {
        ModelConfig::new(vocab_size, Direction::T2i, Mode::CoopRcar, 1)
            .with_host(host)
            .with_regions(REGIONS)
            .with_img_dim(DIM)
            .with_word_dim(5)
            .with_embed_size(8)
            .with_sim_dim(3)
    };
    [
        scan(Direction::T2i),
        scan(Direction::I2t),
        sgraf(Host::Saf),
        sgraf(Host::Sgr),
    ]
    .iter()
    .map(|c| c.build(device))
    .collect()
}

fn encoded(model: &Matcher, split: &Split, device: &Device) -> Encoded {
    encode(model, split, 0..IMAGES_N, 3, device, &mut Silent).unwrap()
}

fn exhaustive(model: &Matcher, encoded: &Encoded) -> SimMatrix {
    score(model, encoded, 11, 2, None, &mut Silent)
}

#[test]
fn a_shortlist_as_long_as_the_gallery_gives_the_exhaustive_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let split = open_split(dir.path());
    let device = Device::flex();
    for model in models(split.vocab_size, &device) {
        let encoded = encoded(&model, &split, &device);
        let sims = exhaustive(&model, &encoded);
        for stage in [FirstStage::Global, FirstStage::MaxSim] {
            let first = first_stage(&encoded, stage, 2);
            let all = rerank(&model, &encoded, &first, 5 * IMAGES_N, 2, &mut Silent);
            let what = format!("{} with {stage:?}", model.describe());
            assert_eq!(all.pairs, sims.data.len(), "{what}");
            assert_ranks(&sims, &all.i2t, &all.t2i, &what);

            // Two of each: a caption's rank is the model's among its two images when the first
            // stage shortlisted its own, else the first stage's (at least 2).
            let short = rerank(&model, &encoded, &first, 2, 2, &mut Silent);
            assert!(short.pairs <= 2 * (IMAGES_N + 5 * IMAGES_N), "{what}");
            let first_t2i = ranks_t2i(&first.t2i);
            for (c, &rank) in short.t2i.iter().enumerate() {
                let column: Vec<f32> = (0..IMAGES_N).map(|i| first.t2i.row(i)[c]).collect();
                if top_k(&column, 2).contains(&(c / 5)) {
                    assert!(rank <= 1, "{what}: caption {c} in its shortlist of 2");
                } else {
                    assert_eq!(
                        rank,
                        first_t2i[c].max(2),
                        "{what}: caption {c} outside its shortlist"
                    );
                }
            }
        }
    }
}

/// Each rank is the exhaustive matrix's: the count of scores above the ground truth's, give or
/// take the scores within 1e-5 of it.
fn assert_ranks(sims: &SimMatrix, i2t: &[usize], t2i: &[usize], what: &str) {
    let within = |scores: &[f32], truth: f32, rank: usize| {
        let above = scores.iter().filter(|&&s| s > truth + 1e-5).count();
        let level = scores.iter().filter(|&&s| s >= truth - 1e-5).count();
        (above..level.max(above + 1)).contains(&rank)
    };
    for (i, &rank) in i2t.iter().enumerate() {
        let row = sims.row(i);
        let truth = row[5 * i..5 * i + 5]
            .iter()
            .copied()
            .fold(f32::MIN, f32::max);
        assert!(
            within(row, truth, rank),
            "{what}: image {i} ranked {rank}: {row:?}"
        );
    }
    for (c, &rank) in t2i.iter().enumerate() {
        let column: Vec<f32> = (0..sims.images).map(|i| sims.row(i)[c]).collect();
        let truth = column[c / 5];
        assert!(
            within(&column, truth, rank),
            "{what}: caption {c} ranked {rank}: {column:?}"
        );
    }
}

/// The index of `model`'s encoding of the split, its checkpoint saved in `dir/ckpt`.
fn build_index(dir: &Path, model: &Matcher, split: &Split, device: &Device) -> Index {
    let ckpt = dir.join("ckpt");
    save_model(model, &ckpt).unwrap();
    let source = Source {
        checkpoint: &ckpt,
        data: dir,
        split: "test",
        vocab: &vocab(),
        image_ids: (100..100 + IMAGES_N as u64).collect(),
        captions: split.captions.clone(),
    };
    let path = dir.join("gallery.idx");
    write(&path, model, &encoded(model, split, device), source).unwrap();
    Index::open(&path).unwrap()
}

#[test]
fn a_search_of_the_whole_index_gives_the_exhaustive_scores_of_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let split = open_split(dir.path());
    let device = Device::flex();
    for model in models(split.vocab_size, &device) {
        let what = model.describe();
        let index = build_index(dir.path(), &model, &split, &device);
        index.check_model(&dir.path().join("ckpt"), &model).unwrap();
        let encoded = encoded(&model, &split, &device);
        let stored = index.rows::<3>(IMAGES, None, &device).into_data();
        assert_eq!(stored, encoded.images.clone().into_data(), "{what}");
        let sims = exhaustive(&model, &encoded);
        for stage in [FirstStage::Global, FirstStage::MaxSim] {
            let all = SearchOptions {
                top: usize::MAX,
                shortlist: None,
                stage,
            };
            let caption = 12;
            let text = &split.captions[caption];
            let answer = search(&index, &model, Query::Text(text), all, &device).unwrap();
            let mut got = vec![0f32; IMAGES_N];
            for hit in &answer.hits {
                got[hit.image] = hit.score;
                assert_eq!(hit.image_id, 100 + hit.image as u64);
            }
            let want: Vec<f32> = (0..IMAGES_N).map(|i| sims.row(i)[caption]).collect();
            assert!(
                max_abs_diff(&got, &want) <= 1e-5,
                "{what}: {got:?} vs {want:?}"
            );
            assert!(answer.hits.windows(2).all(|w| w[0].score >= w[1].score));

            let image = 3;
            let answer = search(&index, &model, Query::Image(103), all, &device).unwrap();
            let mut got = vec![0f32; 5 * IMAGES_N];
            for hit in &answer.hits {
                got[hit.caption.unwrap()] = hit.score;
                assert_eq!(hit.image, hit.caption.unwrap() / 5);
            }
            assert!(max_abs_diff(&got, sims.row(image)) <= 1e-5, "{what}");

            let short = SearchOptions {
                top: 2,
                shortlist: Some(3),
                stage,
            };
            let answer = search(&index, &model, Query::Text(text), short, &device).unwrap();
            assert_eq!((answer.hits.len(), answer.pairs), (2, 3), "{what}");
        }
    }
}

#[test]
fn bad_queries_and_indexes_that_do_not_match_are_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let split = open_split(dir.path());
    let device = Device::flex();
    let mut models = models(split.vocab_size, &device);
    let model = models.remove(0);
    let index = build_index(dir.path(), &model, &split, &device);
    let opts = SearchOptions {
        top: 3,
        shortlist: Some(4),
        stage: FirstStage::MaxSim,
    };
    let ask = |q| search(&index, &model, q, opts, &device).map(|a| a.unknown_words);
    assert_eq!(ask(Query::Text(" \t")), Err(QueryError::Empty));
    assert_eq!(
        ask(Query::Text("zebra giraffe")),
        Err(QueryError::NoKnownWord(vec![
            "zebra".into(),
            "giraffe".into()
        ]))
    );
    assert_eq!(
        ask(Query::Text("a zebra on grass")),
        Ok(vec!["zebra".into()])
    );
    assert_eq!(ask(Query::Image(7)), Err(QueryError::NoSuchImage(7)));

    // Another model, then the same configuration with other weights.
    let ckpt = dir.path().join("ckpt");
    let err = index
        .check_model(&ckpt, &models[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not the one that built"), "{err}");
    let retrained = ModelConfig::clone(model.config()).build(&device);
    save_model(&retrained, &ckpt).unwrap();
    let err = index
        .check_model(&ckpt, &retrained)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint changed since") && err.contains("ckpt"),
        "{err}"
    );

    // Damaged, cut short, not an index at all.
    let path = dir.path().join("gallery.idx");
    let bytes = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.idx");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 200;
    flipped[last] ^= 0x10;
    std::fs::write(&damaged, &flipped).unwrap();
    let err = Index::open(&damaged).err().unwrap().to_string();
    assert!(
        err.contains("damaged.idx") && err.contains("fails its CRC-32"),
        "{err}"
    );
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let err = Index::open(&damaged).err().unwrap().to_string();
    assert!(err.contains("cut short"), "{err}");
    std::fs::write(&damaged, b"RCARIDX1").unwrap();
    let err = Index::open(&damaged).err().unwrap().to_string();
    assert!(err.contains("not an RCAR gallery index"), "{err}");
}
