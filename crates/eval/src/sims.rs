//! Similarity matrices on disk: float32 `.npy`, rows images, columns captions.

use crate::metrics::SimMatrix;
use rcar_data::npy::{read_f32, write_f32};
use rcar_data::split::CAPTIONS_PER_IMAGE;
use rcar_data::DataError;
use std::path::Path;

/// Writes `sims` atomically.
pub fn save(path: &Path, sims: &SimMatrix) -> Result<(), DataError> {
    write_f32(path, &[sims.images, sims.captions], &sims.data)
}

/// Reads a matrix and checks that it is images × 5·images.
pub fn load(path: &Path) -> Result<SimMatrix, DataError> {
    let (shape, data) = read_f32(path)?;
    let [images, captions] = shape[..] else {
        return Err(DataError::invalid(
            path,
            format!(
                "a similarity matrix has 2 axes (images, captions), this one has shape {shape:?}"
            ),
        ));
    };
    if images == 0 || captions != CAPTIONS_PER_IMAGE * images {
        return Err(DataError::invalid(
            path,
            format!(
                "shape {images}×{captions}: the protocol needs {CAPTIONS_PER_IMAGE} captions per image (images × {})",
                CAPTIONS_PER_IMAGE * images.max(1)
            ),
        ));
    }
    let matrix = SimMatrix::new(images, captions, data);
    matrix.check_finite(path, "refusing to rank them; recompute the matrix")?;
    Ok(matrix)
}

/// The ensemble of matrices read from files; all must have one shape.
pub fn load_all(paths: &[&Path]) -> Result<SimMatrix, DataError> {
    let matrices = paths
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (m, p) in matrices.iter().zip(paths).skip(1) {
        if (m.images, m.captions) != (matrices[0].images, matrices[0].captions) {
            return Err(DataError::invalid(
                p,
                format!(
                    "shape {}×{} differs from {}×{} of {}",
                    m.images,
                    m.captions,
                    matrices[0].images,
                    matrices[0].captions,
                    paths[0].display()
                ),
            ));
        }
    }
    Ok(SimMatrix::average(&matrices))
}
