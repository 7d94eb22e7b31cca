//! Retrieval metrics of a similarity matrix (spec §4.3): caption `k` belongs to image `⌊k/5⌋`.
//!
//! A rank is the number of candidates scored strictly higher than the best ground truth, found in
//! one pass over the row or column — no sort. Ties therefore count in the query's favour; the
//! official unstable argsort breaks them arbitrarily, which never matters with real scores.

use rcar_data::finite::{describe, non_finite_rows};
use rcar_data::split::CAPTIONS_PER_IMAGE;
use rcar_data::DataError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A similarity matrix, rows images, columns captions, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMatrix {
    pub images: usize,
    pub captions: usize,
    pub data: Vec<f32>,
}

impl SimMatrix {
    pub fn new(images: usize, captions: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), images * captions, "matrix size");
        Self {
            images,
            captions,
            data,
        }
    }

    /// Refuses NaN or ±Inf scores, which would be ranked silently, naming `source` (the file or the
    /// checkpoints they came from), the image rows and the counts; `why` says what to do.
    pub fn check_finite(&self, source: &Path, why: &str) -> Result<(), DataError> {
        let bad = non_finite_rows(&self.data, self.captions);
        if bad.is_empty() {
            return Ok(());
        }
        let among = format!("{} images", self.images);
        Err(DataError::invalid(
            source,
            format!(
                "{}; {why}",
                describe(&bad, self.captions, "scores", &among, &|i| format!(
                    "image {i}"
                ))
            ),
        ))
    }

    pub fn row(&self, image: usize) -> &[f32] {
        &self.data[image * self.captions..(image + 1) * self.captions]
    }

    /// Images `range` with their captions: a diagonal block (a COCO 1K fold of the 5K matrix).
    pub fn block(&self, images: std::ops::Range<usize>) -> SimMatrix {
        let cols = images.start * CAPTIONS_PER_IMAGE..images.end * CAPTIONS_PER_IMAGE;
        let data = images
            .clone()
            .flat_map(|i| self.row(i)[cols.clone()].iter().copied())
            .collect();
        SimMatrix::new(images.len(), cols.len(), data)
    }

    /// The element-wise average of matrices of one shape: the ensemble of several models.
    pub fn average(matrices: &[SimMatrix]) -> SimMatrix {
        let first = &matrices[0];
        let n = matrices.len() as f32;
        let data = (0..first.data.len())
            .map(|k| matrices.iter().map(|m| m.data[k]).sum::<f32>() / n)
            .collect();
        SimMatrix::new(first.images, first.captions, data)
    }
}

/// Recall at 1, 5, 10 (percent), median and mean rank (1-based) of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
    pub medr: f64,
    pub meanr: f64,
}

impl Recall {
    /// From 0-based ranks: R@K = % with rank < K, medr = ⌊median⌋ + 1, meanr = mean + 1.
    pub fn from_ranks(ranks: &[usize]) -> Self {
        let n = ranks.len() as f64;
        let at = |k: usize| 100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / n;
        let mut sorted = ranks.to_vec();
        sorted.sort_unstable();
        let m = sorted.len();
        let median = if m % 2 == 1 {
            sorted[m / 2] as f64
        } else {
            (sorted[m / 2 - 1] + sorted[m / 2]) as f64 / 2.0
        };
        Self {
            r1: at(1),
            r5: at(5),
            r10: at(10),
            medr: median.floor() + 1.0,
            meanr: ranks.iter().sum::<usize>() as f64 / n + 1.0,
        }
    }

    pub fn sum(&self) -> f64 {
        self.r1 + self.r5 + self.r10
    }

    fn mean(all: impl Iterator<Item = Recall> + Clone) -> Recall {
        let n = all.clone().count() as f64;
        let avg = |f: fn(&Recall) -> f64| all.clone().map(|r| f(&r)).sum::<f64>() / n;
        Recall {
            r1: avg(|r| r.r1),
            r5: avg(|r| r.r5),
            r10: avg(|r| r.r10),
            medr: avg(|r| r.medr),
            meanr: avg(|r| r.meanr),
        }
    }
}

/// Both directions and their rsum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Image queries retrieving captions.
    pub i2t: Recall,
    /// Caption queries retrieving images.
    pub t2i: Recall,
    pub rsum: f64,
}

impl Metrics {
    pub fn of(sims: &SimMatrix) -> Self {
        Self::from_ranks(&ranks_i2t(sims), &ranks_t2i(sims))
    }

    /// From the 0-based ranks of every image query and every caption query.
    pub fn from_ranks(i2t: &[usize], t2i: &[usize]) -> Self {
        let i2t = Recall::from_ranks(i2t);
        let t2i = Recall::from_ranks(t2i);
        Self {
            i2t,
            t2i,
            rsum: i2t.sum() + t2i.sum(),
        }
    }

    /// The mean of every metric over folds (COCO 1K).
    pub fn mean(folds: &[Metrics]) -> Self {
        let n = folds.len() as f64;
        Self {
            i2t: Recall::mean(folds.iter().map(|m| m.i2t)),
            t2i: Recall::mean(folds.iter().map(|m| m.t2i)),
            rsum: folds.iter().map(|m| m.rsum).sum::<f64>() / n,
        }
    }
}

/// For each image, the number of captions scored above its best ground-truth caption.
pub fn ranks_i2t(sims: &SimMatrix) -> Vec<usize> {
    (0..sims.images)
        .map(|i| {
            let row = sims.row(i);
            let gt = i * CAPTIONS_PER_IMAGE..(i + 1) * CAPTIONS_PER_IMAGE;
            let best = row[gt].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter().filter(|&&s| s > best).count()
        })
        .collect()
}

/// For each caption, the number of images scored above its own image.
pub fn ranks_t2i(sims: &SimMatrix) -> Vec<usize> {
    let mut above = vec![0usize; sims.captions];
    let own: Vec<f32> = (0..sims.captions)
        .map(|k| sims.row(k / CAPTIONS_PER_IMAGE)[k])
        .collect();
    // Row by row, so the matrix is read in memory order.
    for i in 0..sims.images {
        for ((count, &s), &o) in above.iter_mut().zip(sims.row(i)).zip(&own) {
            *count += usize::from(s > o);
        }
    }
    above
}
