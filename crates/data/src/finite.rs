//! NaN and ±Inf are refused, never ranked: one NaN region makes an image's scores NaN, and a NaN
//! score compares false with everything, so it would silently move a ground truth up or down the
//! ranking. Feature reads, saved similarity matrices and model outputs all go through here.

/// Rows of `values` (consecutive runs of `row_len`) holding values that are not finite: `(row, count)`.
pub fn non_finite_rows(values: &[f32], row_len: usize) -> Vec<(usize, usize)> {
    values
        .chunks(row_len.max(1))
        .enumerate()
        .filter_map(|(row, chunk)| {
            let bad = chunk.iter().filter(|v| !v.is_finite()).count();
            (bad > 0).then_some((row, bad))
        })
        .collect()
}

/// Rows listed by name in an error before "and N more".
const LISTED: usize = 5;

/// "4 values not finite (NaN or ±Inf) in 2 of 32 rows read: row 17 (3 of 73728), row 42 (1 of
/// 73728)", with `unit` what the values are, `among` the rows looked at, and `label` naming a row.
pub fn describe(
    bad: &[(usize, usize)],
    row_len: usize,
    unit: &str,
    among: &str,
    label: &dyn Fn(usize) -> String,
) -> String {
    let values: usize = bad.iter().map(|&(_, n)| n).sum();
    let listed: Vec<String> = bad
        .iter()
        .take(LISTED)
        .map(|&(row, n)| format!("{} ({n} of {row_len})", label(row)))
        .collect();
    let more = match bad.len().saturating_sub(LISTED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{values} {unit} not finite (NaN or ±Inf) in {} of {among}: {}{more}",
        bad.len(),
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_counts() {
        let v = [0.0, f32::NAN, 1.0, 2.0, f32::INFINITY, f32::NEG_INFINITY];
        let bad = non_finite_rows(&v, 2);
        assert_eq!(bad, vec![(0, 1), (2, 2)]);
        let text = describe(&bad, 2, "values", "3 rows", &|r| format!("row {r}"));
        assert_eq!(
            text,
            "3 values not finite (NaN or ±Inf) in 2 of 3 rows: row 0 (1 of 2), row 2 (2 of 2)"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let v = vec![f32::NAN; 8];
        let bad = non_finite_rows(&v, 1);
        let text = describe(&bad, 1, "scores", "8 images", &|r| format!("image {r}"));
        assert!(text.ends_with("image 4 (1 of 1) and 3 more"), "{text}");
    }
}
