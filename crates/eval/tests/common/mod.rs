//! Shared by the evaluation tests.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

/// The largest |got − want| over two slices of the same length.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "compared slices differ in length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// A `test` split in `dir`: `images` images of `regions` × `dim` features and five captions each,
/// of 1 to 12 of `words`, in no order of length.
pub fn toy_split(
    dir: &std::path::Path,
    words: &[&str],
    images: usize,
    regions: usize,
    dim: usize,
) -> rcar_data::split::Split {
    let features: Vec<f32> = (0..images * regions * dim)
        .map(|i| (i * 37 % 23) as f32 / 23.0 - 0.5)
        .collect();
    rcar_data::npy::write_f32(
        &dir.join("test_ims.npy"),
        &[images, regions, dim],
        &features,
    )
    .unwrap();
    let captions: String = (0..5 * images)
        .map(|k| {
            let caption: Vec<&str> = (0..1 + k * 7 % 12)
                .map(|j| words[(3 * k + j) % words.len()])
                .collect();
            caption.join(" ") + "\n"
        })
        .collect();
    std::fs::write(dir.join("test_caps.txt"), captions).unwrap();
    let vocab = rcar_data::vocab::Vocab::from_words(words);
    rcar_data::split::Split::open(dir, "test", &vocab).unwrap()
}
