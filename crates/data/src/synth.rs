//! The embedded default dataset: synthetic scenes whose captions can only be matched by aligning
//! words with regions (recipe and rationale: `datasets/synthetic.md`).
//!
//! An image is a scene of 2–4 objects (category, colour, size, sometimes a texture) and one spatial
//! relation. Its regions are sums of fixed random non-negative concept prototypes, and each object's
//! attributes live only in that object's regions. Half the scenes are followed by a *twin* in the
//! same split with the same categories and attributes bound differently ("a red dog and a blue
//! car" / "a blue dog and a red car"): both have the same bag of concepts, so a model that pools
//! regions and words before comparing them cannot separate the pair, one whose words attend to
//! regions can.

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::npy::NpyWriter;
use crate::split::CAPTIONS_PER_IMAGE;
use crate::vocab::Vocab;
use rand::seq::{index, IndexedRandom, IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

/// Sizes and seed of a synthetic dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    pub train_images: usize,
    pub dev_images: usize,
    pub test_images: usize,
    pub regions: usize,
    pub dim: usize,
}

impl Default for SynthConfig {
    /// The real features' shape (36 × 2048) and enough images for a small model to learn binding
    /// on a CPU: ≈ 0.94 GB on disk, a few seconds to generate.
    fn default() -> Self {
        Self {
            seed: 0,
            train_images: 2000,
            dev_images: 200,
            test_images: 200,
            regions: 36,
            dim: 2048,
        }
    }
}

impl SynthConfig {
    fn images(&self) -> [usize; 3] {
        [self.train_images, self.dev_images, self.test_images]
    }
}

/// What [`generate`] wrote for one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub name: &'static str,
    pub images: usize,
    pub captions: usize,
    /// Feature rows: one per image (COCO layout) or one per caption (Flickr30K layout).
    pub rows: usize,
    /// Size of the split's three files.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    pub splits: Vec<SplitSummary>,
    /// The model's vocabulary size, `<mask>` included.
    pub vocab_size: usize,
    /// All files, `vocab.json` included.
    pub bytes: u64,
}

/// Splits in generation order with their feature rows per image: dev uses Flickr30K's layout (one
/// row per caption), train and test COCO's (one per image), so both loader paths get exercised.
const SPLITS: [(&str, usize); 3] = [("train", 1), ("dev", CAPTIONS_PER_IMAGE), ("test", 1)];

// Concept inventories; each concept is a list of synonyms that captions pick from.
const CATEGORIES: &[&[&str]] = &[
    &["dog", "puppy"],
    &["cat", "kitten"],
    &["car", "automobile"],
    &["ball"],
    &["bicycle", "bike"],
    &["tree"],
    &["horse", "pony"],
    &["bird"],
    &["boat"],
    &["chair"],
    &["table"],
    &["cup", "mug"],
    &["bottle"],
    &["umbrella"],
    &["kite"],
    &["truck", "lorry"],
    &["bench"],
    &["book"],
    &["lamp"],
    &["flower"],
];
const COLOURS: &[&[&str]] = &[
    &["red"],
    &["blue"],
    &["green"],
    &["yellow"],
    &["black"],
    &["white"],
    &["orange"],
    &["purple"],
    &["brown"],
    &["grey", "gray"],
];
const SIZES: &[&[&str]] = &[&["small", "little", "tiny"], &["big", "large", "huge"]];
const TEXTURES: &[&[&str]] = &[
    &["striped"],
    &["spotted"],
    &["wooden"],
    &["metal"],
    &["plastic"],
    &["shiny"],
];

/// A spatial relation, phrased as "subject `forward` object" or "object `inverse` subject".
struct Relation {
    forward: &'static [&'static str],
    inverse: &'static [&'static str],
}

impl Relation {
    fn symmetric(&self) -> bool {
        self.forward == self.inverse
    }
}

const RELATIONS: &[Relation] = &[
    Relation {
        forward: &["to the left of", "left of"],
        inverse: &["to the right of", "right of"],
    },
    Relation {
        forward: &["on", "on top of"],
        inverse: &["under", "below", "beneath"],
    },
    Relation {
        forward: &["next to", "beside", "near"],
        inverse: &["next to", "beside", "near"],
    },
    Relation {
        forward: &["behind"],
        inverse: &["in front of"],
    },
];

/// Caption templates. Slots: `{s}`/`{o}` the relation's subject/object as noun phrases, `{rel}`
/// the relation from the subject, `{inv}` from the object, `{all}`/`{some}` all / a random subset
/// of the objects in random order, `{n}` the number of objects, `{sn}`/`{on}` bare nouns and
/// `{sc}`/`{oc}` colours. The literal words are part of the vocabulary.
const TEMPLATES: &[&str] = &[
    "{s} {rel} {o}.",
    "There is {s} {rel} {o}.",
    "{o} {inv} {s}.",
    "{o} is {inv} {s}.",
    "{rel} {o}, there is {s}.",
    "{s} can be seen {rel} {o}.",
    "The {sn} that is {sc} is {rel} the {on} that is {oc}.",
    "{n} objects: {all}.",
    "A picture of {some}.",
    "This image shows {some}.",
    "{some}.",
];
const COUNTS: [&str; 3] = ["two", "three", "four"];
const PUNCTUATION: [char; 3] = ['.', ',', ':'];

/// Adjectives outside the vocabulary (they become `<unk>`), ≈ 5% of caption words, like the long
/// tail of real captions. They say nothing about the image.
const RARE_WORDS: &str = "fluffy rusty shabby gleaming vintage muddy sleek weathered tattered \
    ornate speckled dainty gnarled glossy dented faded frayed mottled scruffy polished";
const RARE_PROB: f64 = 0.33;

/// Fraction of scenes followed by their attribute- or relation-swapped twin.
const TWIN_PROB: f64 = 0.5;
/// For an asymmetric relation, the fraction of twins that swap subject and object instead.
const RELATION_SWAP_PROB: f64 = 0.3;
const TEXTURE_PROB: f64 = 0.4;

/// Prototype rows: categories, colours, sizes, textures, relations, then background "stuff"
/// (sky, grass, wall...) that fills distractor regions and that no caption mentions.
const COLOUR0: usize = CATEGORIES.len();
const SIZE0: usize = COLOUR0 + COLOURS.len();
const TEXTURE0: usize = SIZE0 + SIZES.len();
const RELATION0: usize = TEXTURE0 + TEXTURES.len();
const STUFF0: usize = RELATION0 + RELATIONS.len();
const STUFF: usize = 12;
const STUFF_PER_IMAGE: usize = 3;
const CONCEPTS: usize = STUFF0 + STUFF;

/// Prototypes are ~30% dense and noise sparser and weaker, so concepts stay recognisable in every
/// region while no region is clean.
const PROTO_DENSITY: f32 = 0.3;
const NOISE_DENSITY: f32 = 0.5;
const NOISE_SCALE: f32 = 0.25;

#[derive(Debug, Clone, PartialEq)]
struct Object {
    category: usize,
    colour: usize,
    size: usize,
    texture: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Scene {
    /// Distinct categories and distinct colours, so every caption phrase picks out one object.
    objects: Vec<Object>,
    /// `objects[subject]` is `RELATIONS[relation]` `objects[object]`.
    subject: usize,
    relation: usize,
    object: usize,
}

/// Writes a synthetic dataset in the SCAN layout to `out` (created if missing): `vocab.json` and
/// `{train,dev,test}_{ims.npy,caps.txt,ids.txt}`, each file atomically. The same seed and sizes
/// give byte-identical files; each split has its own random stream, so the dev and test sets do
/// not change with `train_images`. `progress(split, rows_done, rows_total)` follows the rows.
pub fn generate(
    out: &Path,
    cfg: &SynthConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SynthSummary> {
    if cfg.regions == 0 || cfg.dim == 0 || cfg.images().contains(&0) {
        return Err(DataError::invalid(
            out,
            format!("regions, dim and image counts must be positive: {cfg:?}"),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let protos = prototypes(&mut ChaCha8Rng::seed_from_u64(cfg.seed), cfg.dim);

    let words = vocabulary();
    let vocab = Vocab::from_words(&words.iter().map(String::as_str).collect::<Vec<_>>());
    let vocab_path = out.join("vocab.json");
    vocab.save(&vocab_path)?;
    let mut bytes = file_len(&vocab_path)?;

    let mut splits = Vec::new();
    let mut first_id = 0;
    for split in 0..SPLITS.len() {
        let summary = write_split(out, cfg, split, first_id, &protos, progress)?;
        bytes += summary.bytes;
        first_id += summary.images;
        splits.push(summary);
    }
    Ok(SynthSummary {
        splits,
        vocab_size: vocab.len(),
        bytes,
    })
}

/// Writes `SPLITS[split]` with image ids from `first_id`, from its own random stream.
fn write_split(
    out: &Path,
    cfg: &SynthConfig,
    split: usize,
    first_id: usize,
    protos: &[Vec<f32>],
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SplitSummary> {
    let (name, rows_per_image) = SPLITS[split];
    let images = cfg.images()[split];
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(split as u64 + 1);
    let ims = out.join(format!("{name}_ims.npy"));
    let rows = images * rows_per_image;
    let mut npy = NpyWriter::create(&ims, rows, cfg.regions, cfg.dim)?;
    let (mut caps, mut ids) = (String::new(), String::new());
    let mut pending_twin = None;
    for image in 0..images {
        let scene = match pending_twin.take() {
            Some(base) => twin(&base, &mut rng),
            None => {
                let scene = sample_scene(&mut rng);
                if rng.random_bool(TWIN_PROB) {
                    pending_twin = Some(scene.clone());
                }
                scene
            }
        };
        let row = features(&scene, protos, cfg.regions, &mut rng);
        for r in 0..rows_per_image {
            npy.write_row(&row)?;
            progress(name, image * rows_per_image + r + 1, rows);
        }
        for caption in captions(&scene, &mut rng) {
            caps.push_str(&caption);
            caps.push('\n');
        }
        writeln!(ids, "{}", first_id + image).expect("writing to a String");
    }
    npy.finish()?;
    let caps_path = out.join(format!("{name}_caps.txt"));
    let ids_path = out.join(format!("{name}_ids.txt"));
    write_atomic(&caps_path, caps.as_bytes())?;
    write_atomic(&ids_path, ids.as_bytes())?;
    Ok(SplitSummary {
        name,
        images,
        captions: images * CAPTIONS_PER_IMAGE,
        rows,
        bytes: file_len(&ims)? + file_len(&caps_path)? + file_len(&ids_path)?,
    })
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len())
}

/// Every word a caption can contain except the rare words, sorted: the inventories, the relation
/// phrases, the number words, the articles and "and" of lists, the templates' literal words and
/// the punctuation.
fn vocabulary() -> Vec<String> {
    let inventories = [CATEGORIES, COLOURS, SIZES, TEXTURES]
        .into_iter()
        .flatten()
        .copied()
        .flatten();
    let relations = RELATIONS
        .iter()
        .flat_map(|r| r.forward.iter().chain(r.inverse));
    let literals = TEMPLATES
        .iter()
        .flat_map(|t| t.split(' '))
        .filter(|w| !w.starts_with('{'));
    let phrases = inventories
        .chain(relations)
        .chain(&COUNTS)
        .chain(&["a", "an", "and"])
        .copied()
        .chain(literals);
    let mut words: BTreeSet<String> = phrases
        .flat_map(|p| p.split(' '))
        .map(|w| w.trim_end_matches(PUNCTUATION).to_lowercase())
        .collect();
    words.extend(PUNCTUATION.map(String::from));
    words.into_iter().collect()
}

/// A sparse non-negative activation, like a pooled ReLU output: 0 with probability `1 - density`,
/// else exponential with mean `scale` (heavy-tailed). One uniform draw decides both.
fn activation(rng: &mut impl Rng, density: f32, scale: f32) -> f32 {
    let u: f32 = rng.random();
    if u < density {
        // `1 - u / density` is in (0, 1]; the clamp only guards against rounding to 0.
        -scale * (1.0 - u / density).ln().max(-20.0)
    } else {
        0.0
    }
}

/// One fixed random prototype per concept (see [`CONCEPTS`]).
fn prototypes(rng: &mut impl Rng, dim: usize) -> Vec<Vec<f32>> {
    (0..CONCEPTS)
        .map(|_| {
            (0..dim)
                .map(|_| activation(rng, PROTO_DENSITY, 1.0))
                .collect()
        })
        .collect()
}

/// 2–4 objects with distinct categories and colours, and a relation between two of them.
fn sample_scene(rng: &mut impl Rng) -> Scene {
    let n = rng.random_range(2..=4);
    let categories = index::sample(rng, CATEGORIES.len(), n);
    let colours = index::sample(rng, COLOURS.len(), n);
    let objects = categories
        .iter()
        .zip(colours.iter())
        .map(|(category, colour)| Object {
            category,
            colour,
            size: rng.random_range(0..SIZES.len()),
            texture: rng
                .random_bool(TEXTURE_PROB)
                .then(|| rng.random_range(0..TEXTURES.len())),
        })
        .collect();
    let pair = index::sample(rng, n, 2);
    Scene {
        objects,
        subject: pair.index(0),
        relation: rng.random_range(0..RELATIONS.len()),
        object: pair.index(1),
    }
}

/// The hard negative of `scene`: the same categories and attributes, bound differently. Either
/// every object takes the next object's attributes (colours are distinct, so every binding
/// changes) or, for an asymmetric relation, subject and object swap.
fn twin(scene: &Scene, rng: &mut impl Rng) -> Scene {
    let mut twin = scene.clone();
    if !RELATIONS[scene.relation].symmetric() && rng.random_bool(RELATION_SWAP_PROB) {
        std::mem::swap(&mut twin.subject, &mut twin.object);
    } else {
        let n = scene.objects.len();
        for (i, object) in twin.objects.iter_mut().enumerate() {
            let donor = &scene.objects[(i + 1) % n];
            (object.colour, object.size, object.texture) =
                (donor.colour, donor.size, donor.texture);
        }
    }
    twin
}

/// One image's `regions × dim` features. Each region is a weighted sum of prototypes, times a
/// random gain, plus noise. Region contents are listed by priority (one region per object, the
/// relation, the objects' further regions, then distractors) and cut at `regions`, so a small
/// `regions` keeps what captions mention; the order is then shuffled.
fn features(scene: &Scene, protos: &[Vec<f32>], regions: usize, rng: &mut impl Rng) -> Vec<f32> {
    // An object's regions carry its category and its own attributes: the binding to resolve.
    let object_mix = |o: &Object| {
        let mut mix = vec![
            (o.category, 1.0),
            (COLOUR0 + o.colour, 1.0),
            (SIZE0 + o.size, 1.0),
        ];
        mix.extend(o.texture.map(|t| (TEXTURE0 + t, 1.0)));
        mix
    };
    let mut mixes: Vec<Vec<(usize, f32)>> = scene.objects.iter().map(object_mix).collect();
    // Relation regions weigh the subject above the object, so the direction is visible.
    let (subject, object) = (&scene.objects[scene.subject], &scene.objects[scene.object]);
    for _ in 0..rng.random_range(1..=2) {
        mixes.push(vec![
            (RELATION0 + scene.relation, 1.0),
            (subject.category, 1.0),
            (object.category, 0.5),
        ]);
    }
    for object in &scene.objects {
        for _ in 1..rng.random_range(2..=4) {
            mixes.push(object_mix(object));
        }
    }
    let stuff = index::sample(rng, STUFF, STUFF_PER_IMAGE).into_vec();
    while mixes.len() < regions {
        let background = rng
            .random_bool(0.75)
            .then(|| (STUFF0 + stuff[rng.random_range(0..STUFF_PER_IMAGE)], 1.0));
        mixes.push(background.into_iter().collect());
    }
    mixes.truncate(regions);
    mixes.shuffle(rng);

    let dim = protos[0].len();
    let mut row = Vec::with_capacity(regions * dim);
    for mix in &mixes {
        let gain: f32 = rng.random_range(0.5..1.5);
        let start = row.len();
        row.extend((0..dim).map(|_| activation(rng, NOISE_DENSITY, NOISE_SCALE)));
        for &(concept, weight) in mix {
            for (value, p) in row[start..].iter_mut().zip(&protos[concept]) {
                *value += gain * weight * p;
            }
        }
    }
    row
}

/// Five captions from five different templates.
fn captions(scene: &Scene, rng: &mut impl Rng) -> Vec<String> {
    index::sample(rng, TEMPLATES.len(), CAPTIONS_PER_IMAGE)
        .iter()
        .map(|t| caption(TEMPLATES[t], scene, rng))
        .collect()
}

fn pick<'a>(synonyms: &[&'a str], rng: &mut impl Rng) -> &'a str {
    synonyms.choose(rng).expect("inventories are not empty")
}

/// Fills `template`'s slots (see [`TEMPLATES`]) and capitalises the first letter.
fn caption(template: &str, scene: &Scene, rng: &mut impl Rng) -> String {
    let (subject, object) = (&scene.objects[scene.subject], &scene.objects[scene.object]);
    let relation = &RELATIONS[scene.relation];
    let text = template
        .split(' ')
        .map(|piece| {
            let slot = piece.trim_end_matches(PUNCTUATION);
            let filled = match slot {
                "{s}" => noun_phrase(subject, rng),
                "{o}" => noun_phrase(object, rng),
                "{rel}" => pick(relation.forward, rng).to_string(),
                "{inv}" => pick(relation.inverse, rng).to_string(),
                "{all}" | "{some}" => {
                    let mut objects: Vec<&Object> = scene.objects.iter().collect();
                    objects.shuffle(rng);
                    if slot == "{some}" {
                        objects.truncate(rng.random_range(1..=objects.len()));
                    }
                    list(&objects, rng)
                }
                "{n}" => COUNTS[scene.objects.len() - 2].to_string(),
                "{sn}" => pick(CATEGORIES[subject.category], rng).to_string(),
                "{on}" => pick(CATEGORIES[object.category], rng).to_string(),
                "{sc}" => pick(COLOURS[subject.colour], rng).to_string(),
                "{oc}" => pick(COLOURS[object.colour], rng).to_string(),
                word => word.to_string(),
            };
            filled + &piece[slot.len()..]
        })
        .collect::<Vec<_>>()
        .join(" ");
    text[..1].to_uppercase() + &text[1..]
}

/// "a dog", "a red dog, a big blue car and an orange striped ball".
fn list(objects: &[&Object], rng: &mut impl Rng) -> String {
    let mut phrases: Vec<String> = objects.iter().map(|o| noun_phrase(o, rng)).collect();
    let last = phrases.pop().expect("at least one object");
    if phrases.is_empty() {
        last
    } else {
        format!("{} and {last}", phrases.join(", "))
    }
}

/// "a big red striped dog": the article, the attributes this mention includes (colour usually,
/// size and texture less often), sometimes a rare word, and a synonym of the category.
fn noun_phrase(object: &Object, rng: &mut impl Rng) -> String {
    let mut words = Vec::new();
    if rng.random_bool(0.5) {
        words.push(pick(SIZES[object.size], rng));
    }
    if rng.random_bool(0.85) {
        words.push(pick(COLOURS[object.colour], rng));
    }
    if let Some(texture) = object.texture.filter(|_| rng.random_bool(0.6)) {
        words.push(pick(TEXTURES[texture], rng));
    }
    if rng.random_bool(RARE_PROB) {
        let at = rng.random_range(0..=words.len());
        let rare = RARE_WORDS.split_whitespace().choose(rng);
        words.insert(at, rare.expect("rare words exist"));
    }
    words.push(pick(CATEGORIES[object.category], rng));
    let article = if words[0].starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use std::collections::BTreeMap;

    fn small(seed: u64) -> SynthConfig {
        SynthConfig {
            seed,
            train_images: 40,
            dev_images: 8,
            test_images: 12,
            regions: 12,
            dim: 64,
        }
    }

    fn generate_into(dir: &Path, cfg: &SynthConfig) -> SynthSummary {
        generate(dir, cfg, &mut |_, _, _| {}).unwrap()
    }

    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&path).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn synth_is_deterministic_per_seed() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let out = dirs[0].path().join("nested/synthetic");
        generate_into(&out, &small(7));
        generate_into(dirs[1].path(), &small(7));
        generate_into(dirs[2].path(), &small(8));
        let (a, b, c) = (files(&out), files(dirs[1].path()), files(dirs[2].path()));
        let names: Vec<&String> = a.keys().collect();
        assert_eq!(names.len(), 10, "{names:?}");
        assert_eq!(names, b.keys().collect::<Vec<_>>());
        for (name, bytes) in &a {
            assert!(bytes == &b[name], "{name} differs between two runs");
        }
        for name in ["train_ims.npy", "dev_caps.txt", "test_ims.npy"] {
            assert!(a[name] != c[name], "{name} is the same for two seeds");
        }
    }

    #[test]
    fn synth_dev_and_test_do_not_depend_on_train_size() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate_into(a.path(), &small(3));
        generate_into(
            b.path(),
            &SynthConfig {
                train_images: 5,
                ..small(3)
            },
        );
        let (a, b) = (files(a.path()), files(b.path()));
        for name in [
            "dev_ims.npy",
            "dev_caps.txt",
            "test_ims.npy",
            "test_caps.txt",
        ] {
            assert_eq!(a[name], b[name], "{name}");
        }
    }

    #[test]
    fn synth_writes_a_valid_scan_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = Vec::new();
        let summary = generate(dir.path(), &small(1), &mut |split, done, total| {
            calls.push((split.to_string(), done, total))
        })
        .unwrap();
        assert_eq!(calls.len(), 40 + 8 * 5 + 12);
        assert_eq!(calls.last().unwrap(), &("test".to_string(), 12, 12));
        let on_disk: u64 = files(dir.path()).values().map(|f| f.len() as u64).sum();
        assert_eq!(summary.bytes, on_disk);

        let report = check(dir.path(), &dir.path().join("vocab.json"));
        assert!(report.ok(), "{report:#?}");
        assert_eq!(report.vocab_size, Some(summary.vocab_size));
        for (split, (name, images, im_div)) in
            report
                .splits
                .iter()
                .zip([("train", 40, 5), ("dev", 8, 1), ("test", 12, 5)])
        {
            assert_eq!(split.split, name);
            assert_eq!(
                (split.images, split.ids, split.im_div),
                (images, Some(images), im_div)
            );
            assert_eq!((split.regions, split.dim), (12, 64));
            assert!(split.min >= 0.0 && split.max > 0.0);
            // Only the rare words are unknown: about 5% of the tokens.
            assert!((0.92..0.98).contains(&split.vocab_coverage), "{split:#?}");
        }
        // Dev repeats each image's row for its five captions.
        let dev = crate::split::Split::open(
            dir.path(),
            "dev",
            &Vocab::load(&dir.path().join("vocab.json")).unwrap(),
        )
        .unwrap();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        dev.features.gather(&[5], &mut first).unwrap();
        dev.features.gather(&[9], &mut second).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn synth_vocabulary_covers_captions_but_not_rare_words() {
        let vocab = vocabulary();
        assert!(vocab.windows(2).all(|w| w[0] < w[1]));
        let rare: BTreeSet<&str> = RARE_WORDS.split_whitespace().collect();
        assert!(rare.iter().all(|w| !vocab.contains(&w.to_string())));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (mut tokens, mut unknown) = (0, 0);
        for _ in 0..1000 {
            for caption in captions(&sample_scene(&mut rng), &mut rng) {
                for token in crate::tokenizer::tokenize(&caption) {
                    let is_rare = rare.contains(token.as_str());
                    assert!(
                        is_rare || vocab.contains(&token),
                        "{token:?} in {caption:?}"
                    );
                    tokens += 1;
                    unknown += usize::from(is_rare);
                }
            }
        }
        let fraction = unknown as f64 / tokens as f64;
        eprintln!("FRAC {fraction}");
        assert!((0.04..0.06).contains(&fraction), "{fraction}");
    }

    #[test]
    fn synth_twins_rebind_the_same_concepts() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let bag = |s: &Scene| {
            let mut categories: Vec<_> = s.objects.iter().map(|o| o.category).collect();
            let mut attributes: Vec<_> = s
                .objects
                .iter()
                .map(|o| (o.colour, o.size, o.texture))
                .collect();
            categories.sort();
            attributes.sort();
            (categories, attributes, s.relation)
        };
        for _ in 0..500 {
            let scene = sample_scene(&mut rng);
            let twin = twin(&scene, &mut rng);
            assert_eq!(bag(&scene), bag(&twin));
            assert_ne!(scene, twin);
        }
    }

    /// The point of the dataset: a twin pair has the same pooled content, so scoring a caption's
    /// "colour category" pairs against the mean region is a coin toss, while matching each pair to
    /// its best region picks the right image.
    #[test]
    fn synth_twins_need_alignment_not_pooling() {
        let (regions, dim, pairs) = (36, 512, 300);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let protos = prototypes(&mut rng, dim);
        let cosine = |a: &[f32], b: &[f32]| {
            let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(x, y)| x * y).sum::<f32>();
            dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
        };
        let (mut aligned, mut pooled) = (0, 0);
        for _ in 0..pairs {
            let scene = sample_scene(&mut rng);
            let twin = std::iter::repeat_with(|| twin(&scene, &mut rng))
                .find(|t| t.objects != scene.objects)
                .unwrap();
            let phrases: Vec<Vec<f32>> = scene
                .objects
                .iter()
                .map(|o| {
                    protos[o.category]
                        .iter()
                        .zip(&protos[COLOUR0 + o.colour])
                        .map(|(c, k)| c + k)
                        .collect()
                })
                .collect();
            let score = |features: &[f32], align: bool| -> f32 {
                let mut mean = vec![0.0; dim];
                for region in features.chunks(dim) {
                    mean.iter_mut().zip(region).for_each(|(m, r)| *m += r);
                }
                let best = |p: &[f32]| {
                    features
                        .chunks(dim)
                        .map(|r| cosine(p, r))
                        .fold(f32::MIN, f32::max)
                };
                phrases
                    .iter()
                    .map(|p| if align { best(p) } else { cosine(p, &mean) })
                    .sum()
            };
            let (right, wrong) = (
                features(&scene, &protos, regions, &mut rng),
                features(&twin, &protos, regions, &mut rng),
            );
            aligned += usize::from(score(&right, true) > score(&wrong, true));
            pooled += usize::from(score(&right, false) > score(&wrong, false));
        }
        assert!(aligned > pairs * 95 / 100, "aligned {aligned}/{pairs}");
        assert!(pooled < pairs * 65 / 100, "pooled {pooled}/{pairs}");
    }
}
