//! The best mixture of a finite set of classifiers under the reduction's constraints, by the
//! simplex method.
//!
//! Given classifiers with training errors `e_j` and constraint values `γ_jc`, it solves
//!
//! ```text
//! minimise   Σ_j e_j q_j + B ξ
//! subject to ±Σ_j γ_jc q_j - ξ <= ε   for every cell c and both signs
//!            Σ_j q_j = 1,  q >= 0,  ξ >= 0
//! ```
//!
//! the problem the reduction's saddle point solves, restricted to the classifiers found. The
//! slack `ξ`, charged at the multipliers' bound `B`, keeps it feasible when no mixture meets
//! every constraint. Fairlearn 0.15 solves the same program (`run_linprog_step`).

/// Pivots allowed before giving up; Bland's rule cannot cycle, so this only guards against
/// rounding trouble.
const MAX_PIVOTS: usize = 10_000;

/// Entries smaller than this count as zero.
const ZERO: f64 = 1e-12;

/// Returns the weights `q` of the best mixture, or `None` when the simplex method stops without
/// a solution. That is not expected, because the program is always feasible and bounded.
pub(crate) fn best_mixture(errors: &[f64], gammas: &[Vec<f64>], tolerance: f64, bound: f64) -> Option<Vec<f64>> {
    let models = errors.len();
    let cells = gammas.first().map_or(0, Vec::len);
    let inequalities = 2 * cells;
    let rows = inequalities + 1;
    // Columns: q_1..q_m, ξ, one slack per inequality, one artificial for Σ q = 1, then the
    // right-hand side.
    let xi = models;
    let artificial = models + 1 + inequalities;
    let width = artificial + 2;
    let rhs = width - 1;

    let mut tableau = vec![vec![0.0; width]; rows];
    for cell in 0..cells {
        for (sign, row) in [(1.0, 2 * cell), (-1.0, 2 * cell + 1)] {
            for (j, gamma) in gammas.iter().enumerate() {
                tableau[row][j] = sign * gamma[cell];
            }
            tableau[row][xi] = -1.0;
            tableau[row][models + 1 + row] = 1.0;
            tableau[row][rhs] = tolerance;
        }
    }
    let last = rows - 1;
    tableau[last][..models].fill(1.0);
    tableau[last][artificial] = 1.0;
    tableau[last][rhs] = 1.0;
    let mut basis: Vec<usize> = (0..inequalities).map(|row| models + 1 + row).chain([artificial]).collect();

    // Phase 1 drives the artificial variable to 0, which makes Σ q = 1 hold.
    let mut phase_one = vec![0.0; width - 1];
    phase_one[artificial] = 1.0;
    simplex(&mut tableau, &mut basis, &phase_one, width - 1)?;
    if let Some(row) = basis.iter().position(|&b| b == artificial) {
        if tableau[row][rhs] > 1e-9 {
            return None;
        }
        let column = (0..artificial).find(|&j| tableau[row][j].abs() > ZERO)?;
        pivot(&mut tableau, &mut basis, row, column);
    }

    // Phase 2 minimises the program's objective; the artificial column may no longer enter.
    let mut costs = vec![0.0; width - 1];
    costs[..models].copy_from_slice(errors);
    costs[xi] = bound;
    simplex(&mut tableau, &mut basis, &costs, artificial)?;

    let mut weights = vec![0.0; models];
    for (row, &column) in basis.iter().enumerate() {
        if column < models {
            weights[column] = tableau[row][rhs].max(0.0);
        }
    }
    let total: f64 = weights.iter().sum();
    (total > 0.0).then(|| weights.iter().map(|w| w / total).collect())
}

/// Runs simplex pivots with Bland's rule until no column among the first `columns` lowers the
/// cost. Returns `None` if the program is unbounded or the pivot budget runs out.
fn simplex(tableau: &mut [Vec<f64>], basis: &mut [usize], costs: &[f64], columns: usize) -> Option<()> {
    let rhs = tableau[0].len() - 1;
    for _ in 0..MAX_PIVOTS {
        // Reduced cost of column j: c_j - Σ_rows c_basis T[row][j].
        let entering = (0..columns).find(|&j| {
            let reduced = costs[j] - basis.iter().zip(tableau.iter()).map(|(&b, row)| costs[b] * row[j]).sum::<f64>();
            reduced < -1e-10 && !basis.contains(&j)
        });
        let Some(column) = entering else {
            return Some(());
        };
        let leaving = (0..tableau.len()).filter(|&row| tableau[row][column] > ZERO).min_by(|&a, &b| {
            let ratio_a = tableau[a][rhs] / tableau[a][column];
            let ratio_b = tableau[b][rhs] / tableau[b][column];
            ratio_a.total_cmp(&ratio_b).then(basis[a].cmp(&basis[b]))
        })?;
        pivot(tableau, basis, leaving, column);
    }
    None
}

fn pivot(tableau: &mut [Vec<f64>], basis: &mut [usize], row: usize, column: usize) {
    let divisor = tableau[row][column];
    for value in tableau[row].iter_mut() {
        *value /= divisor;
    }
    let pivot_row = tableau[row].clone();
    for (other, values) in tableau.iter_mut().enumerate() {
        let factor = values[column];
        if other != row && factor != 0.0 {
            for (value, p) in values.iter_mut().zip(&pivot_row) {
                *value -= factor * p;
            }
        }
    }
    basis[row] = column;
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn objective(q: &[f64], errors: &[f64], gammas: &[Vec<f64>], tolerance: f64, bound: f64) -> f64 {
        let error: f64 = q.iter().zip(errors).map(|(w, e)| w * e).sum();
        let violation = (0..gammas[0].len())
            .map(|c| q.iter().zip(gammas).map(|(w, g)| w * g[c]).sum::<f64>().abs())
            .fold(0.0, f64::max);
        error + bound * (violation - tolerance).max(0.0)
    }

    #[test]
    fn mixes_two_classifiers_to_meet_the_constraint() {
        // Classifier 0 errs 10% with disparity 0.2; classifier 1 errs 20% with disparity 0.
        // Meeting |γ| <= 0.05 cheapest takes 1/4 of classifier 0: error 0.175.
        let errors = [0.1, 0.2];
        let gammas = vec![vec![0.2], vec![0.0]];
        let q = best_mixture(&errors, &gammas, 0.05, 100.0).unwrap();
        assert!((q[0] - 0.25).abs() < 1e-9, "{q:?}");
        assert!((objective(&q, &errors, &gammas, 0.05, 100.0) - 0.175).abs() < 1e-9);
    }

    #[test]
    fn pays_the_bound_when_no_mixture_is_feasible() {
        // Every classifier violates by 0.3 - 0.1; a small bound makes the violation worth paying.
        let errors = [0.1, 0.3];
        let gammas = vec![vec![0.3], vec![-0.3]];
        let q = best_mixture(&errors, &gammas, 0.0, 0.1).unwrap();
        assert!((q[0] - 1.0).abs() < 1e-9, "{q:?}");
    }

    #[test]
    fn beats_every_pair_on_random_programs() {
        // With one cell, an optimal mixture needs at most two classifiers, so a fine search over
        // pairs bounds the optimum from above.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let models = 6;
            let errors: Vec<f64> = (0..models).map(|_| rng.random_range(0.1..0.3)).collect();
            let gammas: Vec<Vec<f64>> = (0..models).map(|_| vec![rng.random_range(-0.2..0.2)]).collect();
            let q = best_mixture(&errors, &gammas, 0.01, 100.0).unwrap();
            assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let found = objective(&q, &errors, &gammas, 0.01, 100.0);
            for i in 0..models {
                for j in 0..models {
                    for step in 0..=200 {
                        let t = step as f64 / 200.0;
                        let mut pair = vec![0.0; models];
                        pair[i] += t;
                        pair[j] += 1.0 - t;
                        let value = objective(&pair, &errors, &gammas, 0.01, 100.0);
                        assert!(found <= value + 1e-9, "simplex {found} above pair {value}");
                    }
                }
            }
        }
    }

    #[test]
    fn handles_several_cells() {
        // Two cells pull in opposite directions. The mixture must meet both and beat any single
        // classifier.
        let errors = [0.10, 0.12, 0.15, 0.2];
        let gammas = vec![vec![0.1, -0.1], vec![-0.1, 0.05], vec![0.05, 0.1], vec![0.0, 0.0]];
        let q = best_mixture(&errors, &gammas, 0.01, 100.0).unwrap();
        let found = objective(&q, &errors, &gammas, 0.01, 100.0);
        for j in 0..errors.len() {
            let mut single = vec![0.0; errors.len()];
            single[j] = 1.0;
            assert!(found <= objective(&single, &errors, &gammas, 0.01, 100.0) + 1e-12);
        }
        for c in 0..2 {
            let gamma: f64 = q.iter().zip(&gammas).map(|(w, g)| w * g[c]).sum();
            assert!(gamma.abs() <= 0.01 + 1e-9, "cell {c}: {gamma}");
        }
    }
}
