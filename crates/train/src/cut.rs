//! The pair-sparse step's graph, cut at the encodings.
//!
//! Each block of recomputed pairs reads its rows of the batch's encodings. Selected from the
//! encodings themselves, every block's backward would return a gradient the size of the whole
//! batch, zero but for its rows, and add it to the others: at batch 128 that is 128 blocks, each
//! zeroing and adding 25 MB, which took longer than computing the pairs. So each block reads leaves
//! cut from detached encodings instead; after the pairs' backward, the leaves' gradients are added
//! into their rows on the host, and one more backward, of Σ encodings ⊙ their gradient, carries
//! them through the encoders. The gradients are the same sums, in another order.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Gradients, Tensor, TensorData};
use rcar_backbones::matcher::Globals;
use rcar_backbones::pairs::{row_index, select_pairs, PairBatch};
use rcar_backbones::Direction;

/// A batch's encodings (with the encoders' graph), which the blocks' leaves are cut from.
pub struct Cut {
    direction: Direction,
    images: Tensor<3>,
    captions: Tensor<3>,
    globals: Option<Globals>,
}

/// One block's pairs and global vectors, each tensor a leaf, and the encoding rows they came from.
pub struct Block {
    pub pairs: PairBatch,
    pub globals: Option<Globals>,
    image_rows: Vec<usize>,
    caption_rows: Vec<usize>,
}

impl Block {
    fn globals(&self) -> &Globals {
        self.globals
            .as_ref()
            .expect("blocks cut from encodings with globals")
    }
}

impl Cut {
    pub fn new(
        direction: Direction,
        images: &Tensor<3>,
        captions: &Tensor<3>,
        globals: Option<&Globals>,
    ) -> Self {
        Self {
            direction,
            images: images.clone(),
            captions: captions.clone(),
            globals: globals.cloned(),
        }
    }

    /// The pairs of context item `group` (an image in t2i, a caption in i2t) with query items
    /// `items`, in that order ([`select_pairs`]), as leaves.
    pub fn block(&self, lengths: &[usize], group: usize, items: &[usize]) -> Block {
        let (image_rows, caption_rows) = match self.direction {
            Direction::T2i => (vec![group], items.to_vec()),
            Direction::I2t => (items.to_vec(), vec![group]),
        };
        let (images, captions) = (self.images.clone().detach(), self.captions.clone().detach());
        let mut pairs = select_pairs(
            self.direction,
            &images,
            &captions,
            lengths,
            &image_rows,
            &caption_rows,
        );
        pairs.query = leaf(pairs.query);
        pairs.context = leaf(pairs.context);
        let device = self.images.device();
        let globals = self.globals.as_ref().map(|g| Globals {
            images: leaf(
                g.images
                    .clone()
                    .detach()
                    .select(0, row_index(&image_rows, &device)),
            ),
            captions: leaf(
                g.captions
                    .clone()
                    .detach()
                    .select(0, row_index(&caption_rows, &device)),
            ),
        });
        Block {
            pairs,
            globals,
            image_rows,
            caption_rows,
        }
    }

    /// Σ encodings ⊙ dL/d(encodings), the latter gathered from the blocks' leaves in `grads`: its
    /// backward is the encoders' share of the step's gradients.
    pub fn surrogate(&self, blocks: &[Block], grads: &Gradients) -> Tensor<1> {
        type Leaf = fn(&Block) -> &Tensor<3>;
        let (regions_of, words_of): (Leaf, Leaf) = match self.direction {
            Direction::T2i => (|b| &b.pairs.context, |b| &b.pairs.query),
            Direction::I2t => (|b| &b.pairs.query, |b| &b.pairs.context),
        };
        let mut total = weighted(&self.images, blocks, grads, |b| {
            (regions_of(b), &b.image_rows)
        }) + weighted(&self.captions, blocks, grads, |b| {
            (words_of(b), &b.caption_rows)
        });
        if let Some(g) = &self.globals {
            total = total
                + weighted(&g.images, blocks, grads, |b| {
                    (&b.globals().images, &b.image_rows)
                })
                + weighted(&g.captions, blocks, grads, |b| {
                    (&b.globals().captions, &b.caption_rows)
                });
        }
        total
    }
}

/// `t` as a leaf of its own graph.
fn leaf<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    t.detach().require_grad()
}

/// Σ encoding ⊙ G, where G adds each block's leaf gradient into the rows the leaf was cut from. A
/// leaf may be shorter than its rows (captions cut to the block's longest): its values fill each
/// row's start.
fn weighted<'b, const D: usize>(
    encoding: &Tensor<D>,
    blocks: &'b [Block],
    grads: &Gradients,
    leaf: impl Fn(&'b Block) -> (&'b Tensor<D>, &'b Vec<usize>),
) -> Tensor<1> {
    let dims = encoding.dims();
    let row = dims[1..].iter().product::<usize>();
    let mut sum = vec![0f32; dims[0] * row];
    for block in blocks {
        let (leaf, rows) = leaf(block);
        let Some(g) = leaf.grad(grads) else { continue };
        let values = g
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("float32 gradients");
        let width = values.len() / rows.len().max(1);
        for (&r, part) in rows.iter().zip(values.chunks_exact(width.max(1))) {
            let at = &mut sum[r * row..][..width];
            at.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        }
    }
    let gradient = Tensor::<D>::from_data(TensorData::new(sum, dims), &encoding.device());
    (encoding.clone() * gradient).sum()
}

/// Adds the gradients of `more` into `into`, parameter by parameter.
pub fn merge<M: Module>(module: &M, into: &mut GradientsParams, more: GradientsParams) {
    module.visit(&mut Merge { into, more });
}

struct Merge<'a> {
    into: &'a mut GradientsParams,
    more: GradientsParams,
}

impl ModuleVisitor for Merge<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.more.remove::<D>(param.id) {
            let sum = match self.into.remove::<D>(param.id) {
                Some(h) => h + g,
                None => g,
            };
            self.into.register(param.id, sum);
        }
    }
}
