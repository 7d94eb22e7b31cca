//! The training-time token augmentation of the official pipeline (GPO): each word token is selected
//! with probability 0.2; a selected token is masked (half of them), replaced by a random id (a tenth),
//! or deleted (the rest) — 10% masked, 2% random, 8% deleted. `<start>`/`<end>` are never touched.

use crate::vocab::{END, START};
use rand::Rng;

/// Augments `<start> … <end>` ids. `vocab_size` includes `<mask>`, whose id is `vocab_size - 1`;
/// like the original, the random replacement may draw any id, specials included.
pub fn augment(ids: &[u32], vocab_size: usize, rng: &mut impl Rng) -> Vec<u32> {
    let mask = (vocab_size - 1) as u32;
    let mut out = Vec::with_capacity(ids.len());
    out.push(START);
    for &id in &ids[1..ids.len() - 1] {
        let p: f64 = rng.random();
        if p >= 0.2 {
            out.push(id);
            continue;
        }
        let p = p / 0.2;
        if p < 0.5 {
            out.push(mask);
        } else if p < 0.6 {
            out.push(rng.random_range(0..vocab_size as u32));
        }
        // else: deleted.
    }
    out.push(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rates_match_the_recipe_and_markers_survive() {
        let vocab_size = 1000;
        let ids: Vec<u32> = std::iter::once(START)
            .chain((0..200_000).map(|i| 10 + (i % 500) as u32))
            .chain(std::iter::once(END))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let out = augment(&ids, vocab_size, &mut rng);
        assert_eq!(out[0], START);
        assert_eq!(*out.last().unwrap(), END);
        let words = (ids.len() - 2) as f64;
        let masked = out.iter().filter(|&&i| i == 999).count() as f64 / words;
        let deleted = (ids.len() - out.len()) as f64 / words;
        assert!((masked - 0.10).abs() < 0.004, "masked {masked}");
        assert!((deleted - 0.08).abs() < 0.004, "deleted {deleted}");
        // Random replacements land outside the 10..510 range used by the input about half the time.
        let foreign = out[1..out.len() - 1]
            .iter()
            .filter(|&&i| !(10..510).contains(&i) && i != 999)
            .count() as f64
            / words;
        assert!((foreign - 0.02 * 0.49).abs() < 0.002, "foreign {foreign}");
    }

    #[test]
    fn same_seed_same_result() {
        let ids = [START, 5, 6, 7, 8, 9, END];
        let run = |seed| augment(&ids, 50, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(run(1), run(1));
        assert!((0..20).any(|s| run(s) != run(s + 1)));
    }
}
