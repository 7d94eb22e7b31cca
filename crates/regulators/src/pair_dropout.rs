//! RAR's dropout with masks keyed by pair instead of drawn from the backend's generator.
//!
//! A pair-sparse training step scores a pair twice: once among all pairs of the batch without a
//! graph, and again with the graph if the loss needs its gradient. Both passes must drop the same
//! units, whatever block the pair falls in. So each mask value is a hash of (step seed, module,
//! stream, image, caption, row, column): any pass over any subset of pairs reproduces it.

use burn::tensor::{Tensor, TensorData};

/// Which of RAR's two dropout layers a mask is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `rar_k_w`'s dropout, over `[pairs, tokens, S]`.
    Keys = 1,
    /// `rar_q_w`'s dropout, over `[pairs, S]`.
    Query = 2,
}

/// The dropout of one training step: drop probability and the step's seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairDropout {
    pub prob: f64,
    pub seed: u64,
}

/// SplitMix64's finaliser: a bijective mix with full avalanche.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The masks of one RAR module over one block of pairs.
#[derive(Debug, Clone, Copy)]
pub struct ModuleMasks<'a> {
    pub dropout: &'a PairDropout,
    /// (image, caption) of each pair of the block, in its order.
    pub pairs: &'a [(usize, usize)],
    pub module: usize,
}

impl ModuleMasks<'_> {
    /// `x` `[P, rows, cols]` with this module's `stream` dropout applied.
    pub fn apply(&self, stream: Stream, x: Tensor<3>) -> Tensor<3> {
        if self.dropout.prob == 0.0 {
            return x;
        }
        let [pairs, rows, cols] = x.dims();
        let mask = self
            .dropout
            .mask(self.module, stream, self.pairs, rows, cols);
        let mask = Tensor::from_data(TensorData::new(mask, [pairs, rows, cols]), &x.device());
        x * mask
    }
}

impl PairDropout {
    /// The scaled keep-mask (0 or 1/(1 − p)) of `pairs` (image, caption), `[P, rows, cols]` in
    /// row-major order.
    pub fn mask(
        &self,
        module: usize,
        stream: Stream,
        pairs: &[(usize, usize)],
        rows: usize,
        cols: usize,
    ) -> Vec<f32> {
        let keep = 1.0 - self.prob;
        let scale = (1.0 / keep) as f32;
        // A value below keep·2⁵³ keeps the unit: the top 53 bits of the hash are uniform.
        let threshold = (keep * (1u64 << 53) as f64) as u64;
        let stream_key = mix(self.seed ^ mix(((module as u64) << 8) | stream as u64));
        let mut values = vec![0f32; pairs.len() * rows * cols];
        let mut row_values = values.chunks_exact_mut(cols.max(1));
        for &(image, caption) in pairs {
            let pair_key = mix(stream_key ^ mix(((image as u64) << 32) | caption as u64));
            for (row, out) in (0..rows).zip(&mut row_values) {
                let row_key = mix(pair_key ^ row as u64);
                // The hashes of a row are independent: compiled for the vector unit.
                crate::cpu::vectorised(
                    #[inline(always)]
                    || {
                        for (col, v) in out.iter_mut().enumerate() {
                            let kept = mix(row_key.wrapping_add(col as u64)) >> 11 < threshold;
                            *v = if kept { scale } else { 0.0 };
                        }
                    },
                );
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_depend_on_the_pair_not_on_the_company_it_keeps() {
        let dropout = PairDropout {
            prob: 0.4,
            seed: 17,
        };
        let all = dropout.mask(1, Stream::Keys, &[(0, 0), (2, 5), (3, 1)], 4, 8);
        let one = dropout.mask(1, Stream::Keys, &[(2, 5)], 4, 8);
        assert_eq!(&all[32..64], &one[..]);
        // Other module, stream or seed: other masks.
        assert_ne!(one, dropout.mask(0, Stream::Keys, &[(2, 5)], 4, 8));
        assert_ne!(one, dropout.mask(1, Stream::Query, &[(2, 5)], 4, 8));
        let reseeded = PairDropout {
            seed: 18,
            ..dropout
        };
        assert_ne!(one, reseeded.mask(1, Stream::Keys, &[(2, 5)], 4, 8));
    }

    #[test]
    fn the_kept_share_is_one_minus_p_and_kept_units_are_scaled() {
        let dropout = PairDropout { prob: 0.4, seed: 3 };
        let pairs: Vec<(usize, usize)> = (0..50).map(|k| (k, k * 7)).collect();
        let v = dropout.mask(0, Stream::Keys, &pairs, 12, 64);
        let kept = v.iter().filter(|&&x| x != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.6).abs() < 0.01, "kept {kept}");
        assert!(v.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.6).abs() < 1e-6));
    }
}
