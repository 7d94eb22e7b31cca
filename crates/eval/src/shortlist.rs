//! Shortlist, then re-rank: retrieval that does not score every pair.
//!
//! A first stage ranks the whole gallery cheaply from the same checkpoint's encodings, and the
//! model scores exactly the K best of each query. Ranks beyond K keep the first stage's order; with
//! K at least the gallery, every pair is scored and the ranks are the exhaustive matrix's.
//!
//! Two first stages ([`FirstStage`]): one product of global vectors (the host's own where it has
//! them, SGRAF's `VisualSA`/`TextSA`, else the mean of the token encodings), and late interaction
//! (MaxSim, as ColBERT scores): one product of the token encodings, each token keeping its best
//! match. None of these hosts is trained to put global vectors in one space, and on every
//! checkpoint measured their product ranks near chance (`docs/retrieval.md`); MaxSim ranks close
//! to the model itself, at a fraction of its cost.

use crate::encode::{
    chunk_for_budget, encode, floats, on_threads, score, Encoded, CAPTIONS_PER_BLOCK,
};
use crate::metrics::{ranks_i2t, ranks_t2i, Metrics, SimMatrix};
use crate::progress::Progress;
use crate::protocol::{checked_workers, protocol_name, EvalOptions};
use burn::tensor::{Device, Tensor};
use rcar_backbones::similarity::block_ranges;
use rcar_backbones::{Direction, Matcher};
use rcar_data::split::{Split, CAPTIONS_PER_IMAGE};
use rcar_data::DataError;
use rcar_regulators::norm::l2norm;
use serde::Serialize;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

/// The first stage's vector of each item: its global vector where the host has one, else the
/// mean of its token encodings `[B, T, E]` (zero beyond `lengths`; all tokens when `None`),
/// l2-normalised so that the product of two is a cosine.
pub fn summary(
    tokens: Tensor<3>,
    lengths: Option<&[usize]>,
    global: Option<Tensor<2>>,
) -> Tensor<2> {
    let pooled = match (global, lengths) {
        (Some(g), _) => g,
        (None, None) => tokens.mean_dim(1).squeeze_dim(1),
        (None, Some(lengths)) => {
            let [b, _, _] = tokens.dims();
            let counts: Vec<f32> = lengths.iter().map(|&l| l.max(1) as f32).collect();
            let counts = Tensor::<1>::from_floats(counts.as_slice(), &tokens.device());
            tokens.sum_dim(1).squeeze_dim::<2>(1) / counts.reshape([b, 1])
        }
    };
    l2norm(pooled)
}

/// First-stage vectors of encoded images `[n, E]` and captions `[m, E]`, rows as the encodings'.
pub fn vectors(encoded: &Encoded) -> (Tensor<2>, Tensor<2>) {
    let globals = encoded.globals.clone();
    (
        summary(
            encoded.images.clone(),
            None,
            globals.as_ref().map(|g| g.images.clone()),
        ),
        summary(
            encoded.captions.clone(),
            Some(&encoded.lengths),
            globals.map(|g| g.captions),
        ),
    )
}

/// How the first stage ranks the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstStage {
    /// Cosine of the items' global vectors ([`summary`]).
    Global,
    /// Late interaction: caption queries score an image by the mean over their words of each
    /// word's best region; image queries rank captions by that plus the mean over the regions of
    /// each region's best word, clipped at 0 (the words' side alone favours captions of generic
    /// words).
    MaxSim,
}

/// The first stage's scores (rows images, columns captions in protocol order) that shortlist the
/// images of each caption (`t2i`) and the captions of each image (`i2t`).
pub struct FirstScores {
    pub t2i: SimMatrix,
    pub i2t: SimMatrix,
}

/// Scores `[n, rows]` over encoding rows → a matrix with the captions in protocol order.
fn by_caption_id(values: &[f32], n: usize, caption_ids: &[usize]) -> SimMatrix {
    let m = caption_ids.len();
    let mut data = vec![0f32; n * m];
    for (i, row) in values.chunks(m.max(1)).enumerate() {
        for (&value, &caption) in row.iter().zip(caption_ids) {
            data[i * m + caption] = value;
        }
    }
    SimMatrix::new(n, m, data)
}

/// The first stage's scores of the encoded gallery, on `workers` threads.
pub fn first_stage(encoded: &Encoded, stage: FirstStage, workers: usize) -> FirstScores {
    let [n, _, _] = encoded.images.dims();
    let ids = &encoded.caption_ids;
    match stage {
        FirstStage::Global => {
            let (images, captions) = vectors(encoded);
            let matrix = by_caption_id(&floats(images.matmul(captions.transpose())), n, ids);
            FirstScores {
                t2i: matrix.clone(),
                i2t: matrix,
            }
        }
        FirstStage::MaxSim => {
            let m = ids.len();
            let (mut words, mut regions) = (vec![0f32; n * m], vec![0f32; n * m]);
            let blocks = block_ranges(Direction::T2i, n, m, MAXSIM_BLOCK, CAPTIONS_PER_BLOCK);
            on_threads(
                &blocks,
                workers,
                encoded,
                |encoded, (img, cap)| {
                    let images = encoded.images.clone().slice(img.clone());
                    let (w, r) = maxsim(images, &encoded.captions, &encoded.lengths, cap.clone());
                    (floats(w), floats(r))
                },
                |(img, cap), (w, r)| {
                    for (k, i) in img.clone().enumerate() {
                        let (at, row) = (i * m + cap.start, k * cap.len()..(k + 1) * cap.len());
                        words[at..at + cap.len()].copy_from_slice(&w[row.clone()]);
                        regions[at..at + cap.len()].copy_from_slice(&r[row]);
                    }
                },
            );
            let both: Vec<f32> = words.iter().zip(&regions).map(|(w, r)| w + r).collect();
            FirstScores {
                t2i: by_caption_id(&words, n, ids),
                i2t: by_caption_id(&both, n, ids),
            }
        }
    }
}

/// Pairs per MaxSim block: its token products are `pairs × R × T` floats (about 50 MB here).
const MAXSIM_BLOCK: usize = 16 * CAPTIONS_PER_BLOCK;

/// Late interaction of images `[ni, R, E]` with caption rows `cap` of `captions` `[M, T, E]`
/// (zero beyond `lengths`): per pair, the mean over the words of each word's best region, and the
/// mean over the regions of each region's best word clipped at 0, both `[ni, captions]`. One
/// product, and no mask: a padding word's products are 0, which adds nothing to the words' sum and
/// is what the clip makes of a region's best match below 0 anyway.
pub fn maxsim(
    images: Tensor<3>,
    captions: &Tensor<3>,
    lengths: &[usize],
    cap: Range<usize>,
) -> (Tensor<2>, Tensor<2>) {
    let [ni, r, e] = images.dims();
    let lengths = &lengths[cap.clone()];
    let (nc, t) = (cap.len(), lengths.iter().copied().max().unwrap_or(1));
    let words = captions
        .clone()
        .slice([cap, 0..t, 0..e])
        .reshape([nc * t, e]);
    let sims = images
        .reshape([ni * r, e])
        .matmul(words.transpose())
        .reshape([ni, r, nc, t]);
    let counts: Vec<f32> = lengths.iter().map(|&l| l.max(1) as f32).collect();
    let counts = Tensor::<1>::from_floats(counts.as_slice(), &sims.device()).reshape([1, nc]);
    let words_side = sims.clone().max_dim(1).sum_dim(3).reshape([ni, nc]) / counts;
    let regions_side = sims.max_dim(3).clamp_min(0.0).mean_dim(1).reshape([ni, nc]);
    (words_side, regions_side)
}

/// The `k` highest of `scores` (their indices), best first; ties in index order.
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let k = k.min(order.len());
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, better);
        order.truncate(k);
    }
    order.sort_unstable_by(better);
    order
}

/// What one shortlist length gave: the protocol's 0-based ranks in both directions (as
/// [`ranks_i2t`] and [`ranks_t2i`] count them), re-ranked by the exact score alone and by exact +
/// first-stage score (as BLIP ranks its top K), and how many pairs the model scored for both.
#[derive(Debug, Clone, PartialEq)]
pub struct Reranked {
    pub i2t: Vec<usize>,
    pub t2i: Vec<usize>,
    pub fused_i2t: Vec<usize>,
    pub fused_t2i: Vec<usize>,
    pub pairs: usize,
}

/// Most pairs of one image scored in one call: enough for large products, few enough that the
/// workers share the images evenly.
const PAIRS_PER_CALL: usize = 512;

/// Shortlists of `k` by the first stage `first`, re-ranked by `model`'s exact scores on `workers`
/// threads. A query whose ground truth is not shortlisted keeps its first-stage rank (at least k).
pub fn rerank(
    model: &Matcher,
    encoded: &Encoded,
    first: &FirstScores,
    k: usize,
    workers: usize,
    progress: &mut dyn Progress,
) -> Reranked {
    let (n, m) = (first.i2t.images, first.i2t.captions);
    let by_image: Vec<Vec<usize>> = (0..n).map(|i| top_k(first.i2t.row(i), k)).collect();
    let columns: Vec<Vec<f32>> = {
        let mut columns = vec![Vec::with_capacity(n); m];
        for i in 0..n {
            for (column, &s) in columns.iter_mut().zip(first.t2i.row(i)) {
                column.push(s);
            }
        }
        columns
    };
    let by_caption: Vec<Vec<usize>> = columns.iter().map(|c| top_k(c, k)).collect();
    // Every pair either direction needs, once: caption rows of the encodings per image, sorted.
    let mut row_of = vec![0; m];
    for (row, &caption) in encoded.caption_ids.iter().enumerate() {
        row_of[caption] = row;
    }
    let mut wanted: Vec<Vec<usize>> = by_image
        .iter()
        .map(|caps| caps.iter().map(|&c| row_of[c]).collect())
        .collect();
    for (caption, images) in by_caption.iter().enumerate() {
        for &i in images {
            wanted[i].push(row_of[caption]);
        }
    }
    for rows in &mut wanted {
        rows.sort_unstable();
        rows.dedup();
    }
    let exact = score_rows(model, encoded, &wanted, workers, progress);
    let score = |i: usize, caption: usize, fused: Option<f32>| {
        let at = wanted[i]
            .binary_search(&row_of[caption])
            .expect("every shortlisted pair is scored");
        exact[i][at] + fused.unwrap_or(0.0)
    };
    let above = |scores: &[f32], truth: f32| scores.iter().filter(|&&s| s > truth).count();
    let ranks = |fuse: bool| -> (Vec<usize>, Vec<usize>) {
        let i2t = (0..n)
            .map(|i| {
                let (caps, row) = (&by_image[i], first.i2t.row(i));
                let truth = i * CAPTIONS_PER_IMAGE..(i + 1) * CAPTIONS_PER_IMAGE;
                let scored = |c: usize| score(i, c, fuse.then_some(row[c]));
                let best = caps
                    .iter()
                    .filter(|c| truth.contains(c))
                    .map(|&c| scored(c))
                    .fold(None, |b: Option<f32>, s| Some(b.map_or(s, |b| b.max(s))));
                match best {
                    Some(best) => caps.iter().filter(|&&c| scored(c) > best).count(),
                    None => {
                        let best = row[truth].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        above(row, best).max(caps.len())
                    }
                }
            })
            .collect();
        let t2i = (0..m)
            .map(|c| {
                let (images, column) = (&by_caption[c], &columns[c]);
                let own = c / CAPTIONS_PER_IMAGE;
                let scored = |i: usize| score(i, c, fuse.then_some(column[i]));
                if images.contains(&own) {
                    let truth = scored(own);
                    images.iter().filter(|&&i| scored(i) > truth).count()
                } else {
                    above(column, column[own]).max(images.len())
                }
            })
            .collect();
        (i2t, t2i)
    };
    let ((i2t, t2i), (fused_i2t, fused_t2i)) = (ranks(false), ranks(true));
    Reranked {
        i2t,
        t2i,
        fused_i2t,
        fused_t2i,
        pairs: wanted.iter().map(Vec::len).sum(),
    }
}

/// The model's scores of image `i` with each encoded caption row `wanted[i]` (ascending rows, so
/// longest captions first), `workers` calls side by side. A call holds one image's rows of
/// similar length — at most a quarter shorter than its longest — so little of it is padding.
fn score_rows(
    model: &Matcher,
    encoded: &Encoded,
    wanted: &[Vec<usize>],
    workers: usize,
    progress: &mut dyn Progress,
) -> Vec<Vec<f32>> {
    let lengths = &encoded.lengths;
    let mut calls = Vec::new();
    for (image, rows) in wanted.iter().enumerate() {
        let mut start = 0;
        while start < rows.len() {
            let longest = lengths[rows[start]];
            let end = (start..rows.len())
                .take(PAIRS_PER_CALL)
                .take_while(|&r| 4 * lengths[rows[r]] >= 3 * longest)
                .last()
                .map_or(start + 1, |r| r + 1);
            calls.push((image, start..end));
            start = end;
        }
    }
    let total: usize = wanted.iter().map(Vec::len).sum();
    progress.start("re-rank pairs", total as u64);
    let mut scores: Vec<Vec<f32>> = wanted.iter().map(|rows| vec![0.0; rows.len()]).collect();
    let handles = (model.clone(), encoded.clone());
    on_threads(
        &calls,
        workers,
        &handles,
        |(model, encoded), (image, span)| {
            floats(model.selection(
                &encoded.images,
                &encoded.captions,
                &encoded.lengths,
                encoded.globals.as_ref(),
                (&[*image], &wanted[*image][span.clone()]),
            ))
        },
        |(image, span), values| {
            progress.advance(values.len() as u64);
            scores[*image][span.clone()].copy_from_slice(&values);
        },
    );
    progress.finish();
    scores
}

/// The percentage of `ranks` below `k`: the first stage's recall at the shortlist's length.
pub fn recall_at(ranks: &[usize], k: usize) -> f64 {
    100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / ranks.len().max(1) as f64
}

/// One shortlist length's result beside the exhaustive numbers, in the layout `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct ShortlistRow {
    pub k: usize,
    /// Re-ranked by exact + first-stage score (BLIP's `score + topk_sim`) rather than exact alone.
    pub fused: bool,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Percentage of image (caption) queries whose ground truth the first stage put in the top K.
    pub first_stage_recall_i2t: f64,
    pub first_stage_recall_t2i: f64,
    /// Pairs the model scored (each at most once for both directions).
    pub pairs: usize,
    /// Encoding, first stage and re-rank (one pass serves the plain and the fused row):
    /// comparable with the exhaustive `seconds`.
    pub seconds: f64,
}

/// The exhaustive evaluation a shortlist is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Exhaustive {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub pairs: usize,
    /// Encoding and scoring every pair.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShortlistReport {
    pub protocol: String,
    pub images: usize,
    pub captions: usize,
    pub checkpoint: String,
    pub model: String,
    pub encode_seconds: f64,
    /// Which first stage shortlisted.
    pub stage: FirstStage,
    /// The first stage alone (its product ranking everything).
    pub first_stage: Metrics,
    pub first_stage_seconds: f64,
    pub exhaustive: Option<Exhaustive>,
    pub rows: Vec<ShortlistRow>,
}

/// What to compare: the first stage, shortlist lengths, whether to add fused rows, whether to score every pair.
#[derive(Debug, Clone)]
pub struct ShortlistOptions {
    pub first_stage: FirstStage,
    pub ks: Vec<usize>,
    pub fuse: bool,
    pub exhaustive: bool,
}

/// Evaluates `model` on `split` with each shortlist length (and, if asked, exhaustively), encoding
/// once. Also returns the exhaustive matrix when it was computed.
pub fn compare(
    model: &Matcher,
    name: &str,
    split: &Split,
    opts: &EvalOptions,
    shortlist: &ShortlistOptions,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<(ShortlistReport, Option<SimMatrix>), DataError> {
    let workers = checked_workers(std::slice::from_ref(model), split, opts, device)?;
    let n = split.num_images();
    let started = Instant::now();
    let encoded = encode(model, split, 0..n, opts.batch, device, progress)?;
    let encode_seconds = started.elapsed().as_secs_f64();
    let exhaustive = if shortlist.exhaustive {
        let started = Instant::now();
        let chunk = opts
            .chunk
            .unwrap_or_else(|| chunk_for_budget(model, &encoded, opts.mem_budget / workers));
        let sims = score(model, &encoded, chunk, workers, None, progress);
        sims.check_finite(
            Path::new(name),
            "scored on finite features: the checkpoint's weights hold NaN or ±Inf",
        )?;
        let seconds = encode_seconds + started.elapsed().as_secs_f64();
        Some((sims, seconds))
    } else {
        None
    };
    let started = Instant::now();
    let first = first_stage(&encoded, shortlist.first_stage, workers);
    let first_stage_seconds = started.elapsed().as_secs_f64();
    let (first_i2t, first_t2i) = (ranks_i2t(&first.i2t), ranks_t2i(&first.t2i));
    let mut rows = Vec::new();
    for &k in &shortlist.ks {
        let started = Instant::now();
        let r = rerank(model, &encoded, &first, k, workers, progress);
        // The fused ranking re-uses the same exact scores: one pass of the model serves both rows.
        let seconds = encode_seconds + first_stage_seconds + started.elapsed().as_secs_f64();
        let plain = (false, &r.i2t, &r.t2i);
        let fused = shortlist.fuse.then_some((true, &r.fused_i2t, &r.fused_t2i));
        for (fused, i2t, t2i) in std::iter::once(plain).chain(fused) {
            rows.push(ShortlistRow {
                k,
                fused,
                metrics: Metrics::from_ranks(i2t, t2i),
                first_stage_recall_i2t: recall_at(&first_i2t, k),
                first_stage_recall_t2i: recall_at(&first_t2i, k),
                pairs: r.pairs,
                seconds,
            });
        }
    }
    let report = ShortlistReport {
        protocol: protocol_name(&split.name, n, false),
        images: n,
        captions: split.len(),
        checkpoint: name.to_string(),
        model: model.describe(),
        encode_seconds,
        first_stage: Metrics::from_ranks(&first_i2t, &first_t2i),
        stage: shortlist.first_stage,
        first_stage_seconds,
        exhaustive: exhaustive.as_ref().map(|(sims, seconds)| Exhaustive {
            metrics: Metrics::of(sims),
            pairs: sims.images * sims.captions,
            seconds: *seconds,
        }),
        rows,
    };
    Ok((report, exhaustive.map(|(sims, _)| sims)))
}
