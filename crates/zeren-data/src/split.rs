//! Seeded stratified splitting.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Splits rows into kept and held-out rows, stratified by key.
///
/// Each stratum (rows with the same key) gives `round(n * fraction)` rows to the held-out part,
/// but at least one and at most `n - 1` when it has two rows or more and `fraction > 0`, so
/// every label and group with two rows appears on both sides. Both parts come back in row order.
/// The same keys, fraction and seed give the same split on every platform.
pub fn stratified_split<K: Ord>(rows: &[usize], keys: &[K], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut strata: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
    for &row in rows {
        strata.entry(&keys[row]).or_default().push(row);
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kept = Vec::with_capacity(rows.len());
    let mut held_out = Vec::new();
    for (_, mut members) in strata {
        members.shuffle(&mut rng);
        let n = members.len();
        let mut take = (n as f64 * fraction).round() as usize;
        if fraction > 0.0 && n >= 2 {
            take = take.clamp(1, n - 1);
        }
        held_out.extend_from_slice(&members[..take]);
        kept.extend_from_slice(&members[take..]);
    }
    kept.sort_unstable();
    held_out.sort_unstable();
    (kept, held_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_class_shares_and_is_seeded() {
        let keys: Vec<u8> = (0..100).map(|i| (i % 4 == 0) as u8).collect();
        let rows: Vec<usize> = (0..100).collect();
        let (kept, held) = stratified_split(&rows, &keys, 0.2, 1);
        assert_eq!(held.len(), 20);
        assert_eq!(kept.len(), 80);
        assert_eq!(held.iter().filter(|&&r| keys[r] == 1).count(), 5);
        assert_eq!(stratified_split(&rows, &keys, 0.2, 1), (kept.clone(), held.clone()));
        assert_ne!(stratified_split(&rows, &keys, 0.2, 2).1, held);
    }

    #[test]
    fn small_strata_appear_on_both_sides() {
        let keys = ["a", "a", "b", "b", "b", "b", "b", "b", "b", "b"];
        let rows: Vec<usize> = (0..10).collect();
        let (kept, held) = stratified_split(&rows, &keys, 0.1, 0);
        assert!(held.iter().any(|&r| keys[r] == "a"));
        assert!(kept.iter().any(|&r| keys[r] == "a"));
    }

    #[test]
    fn zero_fraction_holds_nothing_out() {
        let keys = [0, 1, 0, 1];
        let (kept, held) = stratified_split(&[0, 1, 2, 3], &keys, 0.0, 0);
        assert_eq!(kept, vec![0, 1, 2, 3]);
        assert!(held.is_empty());
    }
}
