//! The encoding pass (spec §4.1): every image and caption of a range of a split encoded once, in
//! eval mode, ready for the pair grid.

use crate::metrics::SimMatrix;
use crate::progress::Progress;
use crate::protocol::on_cpu;
use burn::tensor::{Device, Tensor, TensorData};
use rcar_backbones::matcher::Globals;
use rcar_backbones::similarity::block_ranges;
use rcar_backbones::{Matcher, ModelConfig};
use rcar_data::batch::{eval_captions, eval_images};
use rcar_data::split::{Split, CAPTIONS_PER_IMAGE};
use rcar_data::DataError;
use rcar_regulators::PairDropout;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Encoded images `[n, R, E]` and captions `[5n, T, E]` (zero beyond each length).
///
/// Caption rows may be in any order: row `k` is caption `caption_ids[k]` of the encoded range.
/// [`encode`] sorts them longest first, so a block of neighbouring rows is padded to nearly its
/// own length rather than to the longest caption of the split (22 tokens against a mean of 11.5
/// on the synthetic test split; Flickr30K's longest captions are several times its mean).
#[derive(Clone)]
pub struct Encoded {
    pub images: Tensor<3>,
    pub captions: Tensor<3>,
    pub lengths: Vec<usize>,
    pub caption_ids: Vec<usize>,
    /// The rows' global vectors, for hosts that score with them (SGRAF).
    pub globals: Option<Globals>,
}

impl Encoded {
    /// Encodings in row order (`caption_ids` 0, 1, …), with the model's global vectors.
    pub fn new(
        model: &Matcher,
        images: Tensor<3>,
        captions: Tensor<3>,
        lengths: Vec<usize>,
    ) -> Self {
        Self {
            globals: model.globals(&images, &captions, &lengths),
            caption_ids: (0..lengths.len()).collect(),
            images,
            captions,
            lengths,
        }
    }
}

/// Captions per block in the pair grid: few enough that a block of length-sorted neighbours is
/// little padded, enough for large products.
pub const CAPTIONS_PER_BLOCK: usize = 256;

/// Encodes images `images` of `split` and their captions, `batch` at a time. The model must be in
/// eval mode (`Module::valid`, or on a device without autodiff).
pub fn encode(
    model: &Matcher,
    split: &Split,
    images: Range<usize>,
    batch: usize,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Encoded, DataError> {
    let (regions, dim) = (split.features.regions(), split.features.dim());
    progress.start("encode images", images.len() as u64);
    let (mut image_blocks, mut image_globals) = (Vec::new(), Vec::new());
    for start in images.clone().step_by(batch) {
        let range = start..(start + batch).min(images.end);
        let n = range.len();
        let features = eval_images(split, range)?;
        let x = Tensor::from_data(TensorData::new(features, [n, regions, dim]), device);
        let encoded = model.encode_images(x);
        image_globals.extend(model.image_globals(encoded.clone()));
        image_blocks.push(encoded);
        progress.advance(n as u64);
    }
    progress.finish();

    let captions = images.start * CAPTIONS_PER_IMAGE..images.end * CAPTIONS_PER_IMAGE;
    progress.start("encode captions", captions.len() as u64);
    let mut caption_ids: Vec<usize> = (0..captions.len()).collect();
    caption_ids.sort_by_key(|&k| std::cmp::Reverse(split.tokens[captions.start + k].len()));
    let rows: Vec<usize> = caption_ids.iter().map(|k| captions.start + k).collect();
    let lengths: Vec<usize> = rows.iter().map(|&i| split.tokens[i].len()).collect();
    let max_len = lengths.first().copied().unwrap_or(1);
    let (mut caption_blocks, mut caption_globals) = (Vec::new(), Vec::new());
    for batch_rows in rows.chunks(batch) {
        let tokens = eval_captions(split, batch_rows);
        let (b, t) = (tokens.len(), tokens.max_len);
        let words = model.encode_tokens(&tokens, device);
        caption_globals.extend(model.caption_globals(words.clone(), &tokens.lengths));
        let e = model.embed_size();
        caption_blocks.push(if t < max_len {
            Tensor::cat(vec![words, Tensor::zeros([b, max_len - t, e], device)], 1)
        } else {
            words
        });
        progress.advance(b as u64);
    }
    progress.finish();
    Ok(Encoded {
        images: Tensor::cat(image_blocks, 0),
        captions: Tensor::cat(caption_blocks, 0),
        lengths,
        caption_ids,
        globals: (!image_globals.is_empty()).then(|| Globals {
            images: Tensor::cat(image_globals, 0),
            captions: Tensor::cat(caption_globals, 0),
        }),
    })
}

/// Bytes of a block's `[rows, E]` float32 tensors on the CPU backend, at most (rows: pairs × query
/// tokens): 1,024 rows at E = 1024. Each core scores its own block through products and
/// element-wise passes over such tensors; blocks of 512 pairs (18,432 rows in i2t) were slower.
/// Alternated with those in one process on 2 cores: i2t scoring 1.10–1.25× faster at 512–2,048
/// rows, t2i 1.00–1.14×, an i2t training step at batch 128 1.04–1.16×. In bytes rather than rows,
/// so that a small model (the demo's E = 128) keeps blocks large enough to outweigh each block's
/// fixed cost. A GPU keeps large blocks: its cost is per kernel launch.
pub const CPU_BLOCK_BYTES: usize = 4 << 20;

/// Pairs per chunk that keep the similarity pass within `budget` bytes, for the query and context
/// lengths of `encoded` ([`pairs_per_block`] on its device).
pub fn chunk_for_budget(model: &Matcher, encoded: &Encoded, budget: usize) -> usize {
    let [_, regions, _] = encoded.images.dims();
    let [_, words, _] = encoded.captions.dims();
    let tokens = model.direction().query_and_context(regions, words);
    pairs_per_block(
        model.config(),
        tokens,
        budget,
        on_cpu(&encoded.images.device()),
    )
}

/// Pairs per block of the grid for `q` query and `c` context tokens: within `budget` bytes
/// ([`ModelConfig::floats_per_pair`]), and on the CPU backend within [`CPU_BLOCK_BYTES`] per
/// `[pairs × q, E]` tensor.
pub fn pairs_per_block(
    config: &ModelConfig,
    (q, c): (usize, usize),
    budget: usize,
    cpu: bool,
) -> usize {
    let pairs = (budget / (4 * config.floats_per_pair(q, c))).max(1);
    if cpu {
        let rows = CPU_BLOCK_BYTES / (4 * config.embed_size.max(1));
        pairs.min((rows / q.max(1)).max(1))
    } else {
        pairs
    }
}

/// The similarity matrix of encoded images and captions, `chunk` pairs at a time on `workers`
/// threads, each block moved to the host as soon as it is computed. The CPU backend runs most
/// element-wise operations on one core, so blocks scored side by side keep the other cores busy;
/// each thread has its own handle on the model and the encodings (clones share their storage).
/// `dropout`: RAR's pair-keyed dropout, for a training step's scoring pass (`None` to evaluate).
pub fn score(
    model: &Matcher,
    encoded: &Encoded,
    chunk: usize,
    workers: usize,
    dropout: Option<&PairDropout>,
    progress: &mut dyn Progress,
) -> SimMatrix {
    let [n_img, _, _] = encoded.images.dims();
    let [n_cap, _, _] = encoded.captions.dims();
    let ranges = block_ranges(model.direction(), n_img, n_cap, chunk, CAPTIONS_PER_BLOCK);
    progress.start("score pairs", (n_img * n_cap) as u64);
    let mut data = vec![0f32; n_img * n_cap];
    let handles = (model.clone(), encoded.clone());
    on_threads(
        &ranges,
        workers,
        &handles,
        |(model, encoded), (img, cap)| {
            let block = model.block(
                &encoded.images,
                &encoded.captions,
                &encoded.lengths,
                encoded.globals.as_ref(),
                (img.clone(), cap.clone()),
                dropout,
            );
            floats(block.scores)
        },
        |(images, captions), values| {
            let ids = &encoded.caption_ids[captions.clone()];
            for (row, image) in values.chunks(ids.len()).zip(images.clone()) {
                for (&value, &caption) in row.iter().zip(ids) {
                    data[image * n_cap + caption] = value;
                }
            }
            progress.advance(values.len() as u64);
        },
    );
    progress.finish();
    SimMatrix::new(n_img, n_cap, data)
}

/// Runs `work` as each of `threads` scoring threads runs its blocks ([`on_threads`]): with more
/// than one, on a rayon pool of its own thread, so that the CPU backend's products stay on its
/// core; on the calling thread (the shared pool) for one, or where the thread cannot be started.
pub fn as_one_of<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    let pool = (threads > 1)
        .then(|| rayon::ThreadPoolBuilder::new().num_threads(1).build().ok())
        .flatten();
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// A tensor's values, on the host.
pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("scores are float32")
}

/// Runs `work` over `jobs` on up to `workers` threads, each taking the next job as it frees up,
/// each with its own clone of `handles` (the model and the encodings: clones share their storage).
/// Results reach `sink` on the calling thread as they arrive, so it can place them and report
/// progress while the other threads go on.
///
/// With more than one thread, each is a rayon pool of its own thread, so that the CPU backend's
/// products (`gemm` on rayon's threads) stay on the core of the block they belong to. On the
/// shared pool each thread's products were split over every core while the other threads' passes
/// ran there too: i2t scoring measured 6% slower, t2i 0-2%, side by side in one process.
pub fn on_threads<J: Sync, H: Clone + Send, R: Send>(
    jobs: &[J],
    workers: usize,
    handles: &H,
    work: impl Fn(&H, &J) -> R + Sync,
    mut sink: impl FnMut(&J, R),
) {
    let next = AtomicUsize::new(0);
    let threads = workers.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..threads {
            let (tx, handles, next, work) = (tx.clone(), handles.clone(), &next, &work);
            let run = move || {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if tx.send((job, work(&handles, job))).is_err() {
                        break;
                    }
                }
            };
            scope.spawn(move || as_one_of(threads, run));
        }
        drop(tx);
        for (job, result) in rx {
            sink(job, result);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcar_backbones::{Direction, Mode};

    #[test]
    fn a_cpu_block_is_sized_to_its_tensors_bytes_and_a_gpu_block_to_the_budget() {
        let config = |direction, e| {
            ModelConfig::new(8482, direction, Mode::CoopRcar, 2)
                .with_embed_size(e)
                .with_sim_dim(e / 4)
        };
        let budget = 1 << 29;
        // At E = 1024, 1,024 query rows: 12 words a pair in t2i, 36 regions in i2t.
        let paper_t2i = config(Direction::T2i, 1024);
        assert_eq!(pairs_per_block(&paper_t2i, (12, 36), budget, true), 85);
        let paper_i2t = config(Direction::I2t, 1024);
        assert_eq!(pairs_per_block(&paper_i2t, (36, 12), budget, true), 28);
        // At the demo's E = 128, eight times the rows.
        let demo = config(Direction::T2i, 128);
        assert_eq!(pairs_per_block(&demo, (12, 36), budget, true), 682);
        // A GPU: the budget alone (t2i at E = 1024: 155,328 floats a pair).
        assert_eq!(pairs_per_block(&paper_t2i, (12, 36), budget, false), 864);
        // A budget smaller than the cap decides on the CPU too.
        assert_eq!(pairs_per_block(&paper_i2t, (36, 12), 1 << 24, true), 11);
    }
}
