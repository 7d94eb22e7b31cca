//! Metrics on hand-checkable matrices, the 5-fold protocol, ensembles, saved matrices, bad input.

use rcar_eval::protocol::metrics_of;
use rcar_eval::{sims, Metrics, SimMatrix};

/// n images × 5n captions with `f(image, caption)` as scores.
fn matrix(n: usize, f: impl Fn(usize, usize) -> f32) -> SimMatrix {
    let data = (0..n)
        .flat_map(|i| (0..5 * n).map(move |k| (i, k)))
        .map(|(i, k)| f(i, k))
        .collect();
    SimMatrix::new(n, 5 * n, data)
}

#[test]
fn a_perfect_matrix_scores_600() {
    let m = Metrics::of(&matrix(20, |i, k| if k / 5 == i { 1.0 } else { 0.0 }));
    for r in [m.i2t, m.t2i] {
        assert_eq!(
            (r.r1, r.r5, r.r10, r.medr, r.meanr),
            (100.0, 100.0, 100.0, 1.0, 1.0)
        );
    }
    assert_eq!(m.rsum, 600.0);
}

#[test]
fn a_reversed_matrix_ranks_the_truth_last() {
    let n = 20;
    // Scores fall with the distance from the true image: the truth is ranked last... reversed.
    let m = Metrics::of(&matrix(n, |i, k| if k / 5 == i { -1.0 } else { 0.0 }));
    // i2t: 95 other captions above → rank 95; t2i: 19 other images above → rank 19.
    assert_eq!((m.i2t.r10, m.i2t.medr, m.i2t.meanr), (0.0, 96.0, 96.0));
    assert_eq!((m.t2i.r10, m.t2i.medr, m.t2i.meanr), (0.0, 20.0, 20.0));
    assert_eq!(m.rsum, 0.0);
}

#[test]
fn ranks_count_strictly_higher_scores_and_ties_favour_the_query() {
    // Image 1's own captions tie with image 0's; image 0 scores its captions 0.5, image 1's 0.9.
    let m = matrix(2, |i, k| match (i, k / 5) {
        (0, 0) => 0.5,
        (0, _) => 0.9,
        _ => 0.7,
    });
    let i2t = rcar_eval::metrics::ranks_i2t(&m);
    let t2i = rcar_eval::metrics::ranks_t2i(&m);
    assert_eq!(i2t, vec![5, 0]);
    assert_eq!(t2i, vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    let r = Metrics::of(&m);
    assert_eq!((r.i2t.r1, r.i2t.r5, r.i2t.r10), (50.0, 50.0, 100.0));
    assert_eq!((r.i2t.medr, r.i2t.meanr), (3.0, 3.5));
    assert_eq!((r.t2i.r1, r.t2i.r5), (0.0, 100.0));
}

#[test]
fn five_fold_averages_each_fold_of_the_diagonal() {
    // 10 images: folds of 2. Folds 0,2,4 perfect; folds 1,3 reversed (inside the fold).
    let m = matrix(10, |i, k| {
        let (fi, fk) = (i / 2, k / 10);
        if fi != fk {
            return 5.0; // off-diagonal blocks would ruin everything if they were used
        }
        let own = k / 5 == i;
        match (fi % 2 == 0, own) {
            (true, true) | (false, false) => 1.0,
            _ => 0.0,
        }
    });
    let (mean, folds) = metrics_of(&m, true);
    let folds = folds.unwrap();
    assert_eq!(folds.len(), 5);
    assert_eq!(folds[0].rsum, 600.0);
    assert_eq!(folds[1].i2t.r1, 0.0);
    let expected = folds.iter().map(|f| f.rsum).sum::<f64>() / 5.0;
    assert_eq!(mean.rsum, expected);
    assert_eq!(mean.t2i.r1, (3.0 * 100.0 + 2.0 * folds[1].t2i.r1) / 5.0);
    // The whole 10×50 matrix is a different protocol: the 5.0 blocks dominate.
    assert!(metrics_of(&m, false).0.rsum < mean.rsum);
}

#[test]
fn the_ensemble_is_the_elementwise_mean_and_survives_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a = matrix(4, |i, k| (i * 31 + k * 7) as f32 % 11.0);
    let b = matrix(4, |i, k| (i * 13 + k * 3) as f32 % 5.0);
    let (pa, pb) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    sims::save(&pa, &a).unwrap();
    sims::save(&pb, &b).unwrap();
    assert_eq!(sims::load(&pa).unwrap(), a);
    let both = sims::load_all(&[&pa, &pb]).unwrap();
    for k in 0..a.data.len() {
        assert_eq!(both.data[k], (a.data[k] + b.data[k]) / 2.0);
    }
    assert_eq!(
        Metrics::of(&both),
        Metrics::of(&SimMatrix::average(&[a, b]))
    );
}

#[test]
fn a_matrix_of_the_wrong_shape_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npy");
    rcar_data::npy::write_f32(&path, &[4, 19], &vec![0.0; 4 * 19]).unwrap();
    let err = sims::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("bad.npy") && err.contains("5 captions per image"),
        "{err}"
    );
    let other = dir.path().join("other.npy");
    rcar_data::npy::write_f32(&other, &[2, 10], &[0.0; 20]).unwrap();
    let good = dir.path().join("good.npy");
    rcar_data::npy::write_f32(&good, &[4, 20], &vec![0.0; 80]).unwrap();
    let err = sims::load_all(&[&good, &other]).unwrap_err().to_string();
    assert!(
        err.contains("other.npy") && err.contains("differs"),
        "{err}"
    );
}
