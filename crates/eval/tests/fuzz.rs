//! Mutated inputs: every reader of a file a user hands the project — native checkpoints, official
//! `.pth` checkpoints in both torch formats, `.npy` features, captions, image ids, vocabularies,
//! gallery indexes —
//! either reads a mutated copy of a valid file or refuses it with an error naming the file; none
//! panics. Mutations (seeded, so a failure repeats): bit flips, bytes set to edge values,
//! truncation, inserted and deleted runs, a duplicated run.
//!
//! Kept out of the default test run (it reads ten thousand files):
//!
//! ```text
//! cargo test --release -p rcar-eval --test fuzz -- --ignored --nocapture
//! ```
//!
//! `FUZZ_CASES` sets the number of mutated inputs (default 10,000, spread over the readers).

use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::checkpoint::native::{load_model, save_model};
use rcar_backbones::checkpoint::official::load_official;
use rcar_backbones::Matcher;
use rcar_data::captions::{read_captions, read_ids};
use rcar_data::npy::{read_f32, write_f32, Features};
use rcar_data::vocab::Vocab;
use rcar_data::DataError;
use rcar_eval::encode::Encoded;
use rcar_eval::index::{self, Index, Source, CAPTIONS, CAPTION_VECTORS, IMAGES, IMAGE_VECTORS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A reader under test: the valid file (or directory) and which file of it is mutated.
struct Target {
    name: &'static str,
    /// The input handed to the reader: a file, or a checkpoint directory.
    input: PathBuf,
    /// The file mutated (the input itself, or one file of the directory).
    mutated: PathBuf,
    read: fn(&Path) -> Result<(), DataError>,
}

/// xorshift64*: enough randomness to choose mutations, and repeatable from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to three mutations of `bytes`, described for the failure message.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let mut done = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(bytes.len());
        let what = match rng.below(6) {
            0 if !bytes.is_empty() => {
                bytes[at] ^= 1 << rng.below(8);
                "flip"
            }
            1 if !bytes.is_empty() => {
                let edges = [0x00, 0xff, 0x7f, 0x80, b'0', b'9', b'{', b'"'];
                bytes[at] = edges[rng.below(edges.len())];
                "edge"
            }
            2 => {
                bytes.truncate(at);
                "truncate"
            }
            3 => {
                let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, run);
                "insert"
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
                "delete"
            }
            _ => {
                let end = (at + 1 + rng.below(64)).min(bytes.len());
                let run = bytes[at..end].to_vec();
                bytes.splice(at..at, run);
                "duplicate"
            }
        };
        done.push(format!("{what}@{at}"));
    }
    done.join(",")
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures")
        .join(path)
}

/// Valid inputs of every reader, written into `dir`.
fn targets(dir: &Path) -> Vec<Target> {
    let device = Device::flex();
    let official = fixture("parity/t2i_rcar2/checkpoint.pth");
    let legacy = fixture("parity/t2i_rcar2/checkpoint_legacy.pth");
    let copy = |from: &Path, name: &str| {
        let to = dir.join(name);
        std::fs::copy(from, &to).unwrap();
        to
    };
    // A native checkpoint without its checksum record (as written before there was one), so that
    // mutations reach the weights' and the configuration's parsers rather than the checksum.
    let native = dir.join("native");
    let (model, _) = load_official(&official, &device).unwrap();
    save_model(&Matcher::Rcar(model), &native).unwrap();
    let features = dir.join("features.npy");
    let values: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
    write_f32(&features, &[3, 4, 5], &values).unwrap();
    let captions = dir.join("caps.txt");
    std::fs::write(
        &captions,
        "a red dog to the left of a blue car\ntwo cats on a mat .\n",
    )
    .unwrap();
    let ids = dir.join("ids.txt");
    std::fs::write(&ids, "2000\n2001\n2002\n").unwrap();
    let vocab = dir.join("vocab.json");
    Vocab::from_words(&["a", "red", "dog", "cat", "car"])
        .save(&vocab)
        .unwrap();
    let gallery = dir.join("gallery.idx");
    write_index(&gallery, &official, &vocab, &device);
    let file = |name, input: PathBuf, read| Target {
        name,
        mutated: input.clone(),
        input,
        read,
    };
    vec![
        Target {
            name: "native weights",
            input: native.clone(),
            mutated: native.join(rcar_backbones::checkpoint::native::WEIGHTS_FILE),
            read: |p| load_model(p, &Device::flex()).map(drop),
        },
        Target {
            name: "native config",
            input: native.clone(),
            mutated: native.join(rcar_backbones::checkpoint::native::CONFIG_FILE),
            read: |p| load_any(p, &Device::flex()).map(drop),
        },
        file("official .pth (zip)", copy(&official, "zip.pth"), |p| {
            load_official(p, &Device::flex()).map(drop)
        }),
        file("official .pth (legacy)", copy(&legacy, "legacy.pth"), |p| {
            load_official(p, &Device::flex()).map(drop)
        }),
        file("features .npy", features, |p| {
            let mapped = Features::open(p)?;
            let mut out = Vec::new();
            mapped.gather(&(0..mapped.rows()).collect::<Vec<_>>(), &mut out)?;
            read_f32(p).map(drop)
        }),
        file("captions", captions, |p| read_captions(p).map(drop)),
        file("image ids", ids, |p| read_ids(p).map(drop)),
        file("vocabulary", vocab, |p| Vocab::load(p).map(drop)),
        file("gallery index", gallery, |p| {
            // Everything a query reads once the index is open.
            let index = Index::open(p)?;
            let device = Device::flex();
            for section in [IMAGES, CAPTIONS] {
                index.rows::<3>(section, None, &device);
            }
            for section in [IMAGE_VECTORS, CAPTION_VECTORS] {
                index.rows::<2>(section, Some(&[0]), &device);
            }
            index.vocab();
            Ok(())
        }),
    ]
}

/// A gallery index of two images and ten captions encoded (arbitrarily) for the model of
/// `checkpoint`.
fn write_index(path: &Path, checkpoint: &Path, vocab: &Path, device: &Device) {
    let model: Matcher = load_official(checkpoint, device).unwrap().0.into();
    let (e, regions, words) = (model.embed_size(), 3, 4);
    let tensor = |shape: [usize; 3]| {
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| (i % 7) as f32 / 7.0 - 0.4)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    };
    let lengths = vec![4, 3, 2, 4, 1, 2, 3, 4, 4, 2];
    let encoded = Encoded::new(
        &model,
        tensor([2, regions, e]),
        tensor([10, words, e]),
        lengths,
    );
    let source = Source {
        checkpoint,
        data: path,
        split: "test",
        vocab: &Vocab::load(vocab).unwrap(),
        image_ids: vec![7, 9],
        captions: (0..10).map(|k| format!("caption {k}")).collect(),
    };
    index::write(path, &model, &encoded, source).unwrap();
}

#[test]
#[ignore = "ten thousand mutated files: run with --ignored (see the module's doc)"]
fn ten_thousand_mutated_inputs_are_read_or_refused_naming_the_file_never_a_panic() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let targets = targets(tmp.path());
    // A panic is caught and counted, not printed once per case.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = Vec::new();
    println!(
        "{:<24} {:>6} {:>6} {:>8} {:>6}",
        "reader", "cases", "read", "refused", "panic"
    );
    for (k, target) in targets.iter().enumerate() {
        let share = cases / targets.len() + usize::from(k < cases % targets.len());
        let original = std::fs::read(&target.mutated).unwrap();
        let (mut read, mut refused, mut panicked) = (0, 0, 0);
        for case in 0..share {
            let mut bytes = original.clone();
            let how = mutate(&mut bytes, &mut rng);
            std::fs::write(&target.mutated, &bytes).unwrap();
            match catch_unwind(AssertUnwindSafe(|| (target.read)(&target.input))) {
                Ok(Ok(())) => read += 1,
                Ok(Err(e)) => {
                    refused += 1;
                    let text = e.to_string();
                    if !text.contains(target.input.to_str().unwrap()) {
                        failures.push(format!(
                            "{} case {case} ({how}): the error names no file: {text}",
                            target.name
                        ));
                    }
                }
                Err(panic) => {
                    panicked += 1;
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{} case {case} ({how}): panic: {why}", target.name));
                }
            }
        }
        std::fs::write(&target.mutated, &original).unwrap();
        println!(
            "{:<24} {share:>6} {read:>6} {refused:>8} {panicked:>6}",
            target.name
        );
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "{} of {cases} mutated inputs failed; the first:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
