//! Membership-inference audit: how well a loss-threshold attack tells training records from
//! held-out records, and the ε that its success implies.
//!
//! The attack (Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine Learning", CSF 2018)
//! guesses "member" when a record's loss is below a threshold. For an (ε, δ)-DP training
//! algorithm every such test satisfies `TPR ≤ e^ε FPR + δ` and `1 - FPR ≤ e^ε (1 - TPR) + δ`
//! (Kairouz, Oh and Viswanath 2015, Theorem 2.1), so an observed pair bounds ε from below:
//! `ε ≥ max(ln((TPR - δ) / FPR), ln((1 - FPR - δ) / (1 - TPR)))`. As in Jagielski, Ullman and
//! Oprea, "Auditing Differentially Private Machine Learning" (NeurIPS 2020), the rates enter as
//! one-sided 95% confidence bounds (here Wilson score bounds), so the bound holds with about 95%
//! confidence rather than being a point estimate.

use serde::Serialize;
use zeren_fairness::classification::roc_auc;

/// One-sided 95% standard normal quantile.
const Z_95: f64 = 1.644_853_626_951_472_2;

/// Result of the membership-inference audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipInference {
    /// The attack.
    pub attack: &'static str,
    /// Training records attacked.
    pub members: usize,
    /// Held-out records attacked.
    pub non_members: usize,
    /// ROC AUC of the attack (0.5 is chance).
    pub auc: f64,
    /// Largest TPR − FPR over thresholds (0 is chance).
    pub advantage: f64,
    /// Lower bound on ε, with about 95% confidence, from the best threshold at `delta`.
    pub epsilon_lower_bound: f64,
    /// The δ used for the bound.
    pub delta: f64,
}

/// Runs the loss-threshold attack on the per-record losses of members and non-members.
///
/// Returns `None` when either set is empty.
pub fn loss_threshold_attack(
    member_losses: &[f64],
    non_member_losses: &[f64],
    delta: f64,
) -> Option<MembershipInference> {
    if member_losses.is_empty() || non_member_losses.is_empty() {
        return None;
    }

    // Score = -loss, so a higher score means "member".
    let scored: Vec<(f64, bool)> =
        member_losses.iter().map(|&l| (-l, true)).chain(non_member_losses.iter().map(|&l| (-l, false))).collect();
    let labels: Vec<bool> = scored.iter().map(|s| s.1).collect();
    let scores: Vec<f64> = scored.iter().map(|s| s.0).collect();
    let auc = roc_auc(&labels, &scores);

    // The advantage is descriptive, over all thresholds. The ε bound must not pick its threshold
    // on the data it is measured on (the maximum over thresholds of one-sided bounds is not a
    // 95% bound), so the threshold is chosen on the even-indexed half of each set and the rates
    // are measured on the odd-indexed half.
    let advantage = best_threshold(member_losses.iter(), non_member_losses.iter(), delta).1;
    let (threshold, _) = best_threshold(member_losses.iter().step_by(2), non_member_losses.iter().step_by(2), delta);
    let held_members: Vec<f64> = member_losses.iter().skip(1).step_by(2).copied().collect();
    let held_non_members: Vec<f64> = non_member_losses.iter().skip(1).step_by(2).copied().collect();
    let epsilon_lower_bound = if held_members.is_empty() || held_non_members.is_empty() {
        0.0
    } else {
        let true_positives = held_members.iter().filter(|&&l| l <= threshold).count() as f64;
        let false_positives = held_non_members.iter().filter(|&&l| l <= threshold).count() as f64;
        let tpr_low = wilson_bound(true_positives, held_members.len() as f64, false);
        let fpr_high = wilson_bound(false_positives, held_non_members.len() as f64, true);
        epsilon_from_rates(tpr_low, fpr_high, delta)
    };
    Some(MembershipInference {
        attack: "loss threshold (Yeom et al. 2018)",
        members: member_losses.len(),
        non_members: non_member_losses.len(),
        auc,
        advantage,
        epsilon_lower_bound,
        delta,
    })
}

/// Returns the loss threshold ("member" when the loss is at most it) with the largest point
/// estimate of the ε bound, and the largest TPR − FPR over thresholds.
fn best_threshold<'a>(
    members: impl Iterator<Item = &'a f64>,
    non_members: impl Iterator<Item = &'a f64>,
    delta: f64,
) -> (f64, f64) {
    let mut scored: Vec<(f64, bool)> = members.map(|&l| (l, true)).chain(non_members.map(|&l| (l, false))).collect();
    let member_count = scored.iter().filter(|s| s.1).count().max(1) as f64;
    let non_member_count = scored.iter().filter(|s| !s.1).count().max(1) as f64;
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut true_positives, mut false_positives) = (0.0, 0.0);
    let (mut best_threshold, mut best_bound, mut advantage) = (f64::NEG_INFINITY, -1.0, 0.0f64);
    for (index, &(loss, member)) in scored.iter().enumerate() {
        if member {
            true_positives += 1.0;
        } else {
            false_positives += 1.0;
        }
        if scored.get(index + 1).is_some_and(|next| next.0 == loss) {
            continue;
        }
        let tpr = true_positives / member_count;
        let fpr = false_positives / non_member_count;
        advantage = advantage.max(tpr - fpr);
        let bound = epsilon_from_rates(tpr, fpr.max(1.0 / non_member_count), delta);
        if bound > best_bound {
            best_bound = bound;
            best_threshold = loss;
        }
    }
    (best_threshold, advantage)
}

/// Lower bound on ε implied by a test with these rates under (ε, δ)-DP; 0 when none.
pub fn epsilon_from_rates(tpr: f64, fpr: f64, delta: f64) -> f64 {
    let mut bound: f64 = 0.0;
    if fpr > 0.0 && tpr - delta > 0.0 {
        bound = bound.max(((tpr - delta) / fpr).ln());
    }
    if tpr < 1.0 && 1.0 - fpr - delta > 0.0 {
        bound = bound.max(((1.0 - fpr - delta) / (1.0 - tpr)).ln());
    }
    bound
}

/// One-sided 95% Wilson score bound of a proportion `successes / trials`: the upper bound when
/// `upper`, else the lower bound (Wilson 1927).
fn wilson_bound(successes: f64, trials: f64, upper: bool) -> f64 {
    let p = successes / trials;
    let z2 = Z_95 * Z_95;
    let centre = p + z2 / (2.0 * trials);
    let spread = Z_95 * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    let denominator = 1.0 + z2 / trials;
    let bound = if upper { (centre + spread) / denominator } else { (centre - spread) / denominator };
    bound.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_give_chance() {
        let losses: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let result = loss_threshold_attack(&losses, &losses, 1e-5).unwrap();
        assert!((result.auc - 0.5).abs() < 1e-9, "auc {}", result.auc);
        assert!(result.advantage < 0.01, "advantage {}", result.advantage);
        assert_eq!(result.epsilon_lower_bound, 0.0);
    }

    #[test]
    fn separated_losses_give_perfect_attack() {
        let members = vec![0.01; 500];
        let non_members = vec![2.0; 500];
        let result = loss_threshold_attack(&members, &non_members, 1e-5).unwrap();
        assert_eq!(result.auc, 1.0);
        assert_eq!(result.advantage, 1.0);
        // The bound is measured on the held-out 250 records of each set: TPR 1 and FPR 0 there
        // have Wilson bounds of about 0.9893 and 0.0107, so ε ≥ ln(0.9893 / 0.0107) ≈ 4.53.
        assert!(result.epsilon_lower_bound > 4.3, "bound {}", result.epsilon_lower_bound);
        assert!(result.epsilon_lower_bound < 4.8, "bound {}", result.epsilon_lower_bound);
    }

    #[test]
    fn rates_bound_epsilon() {
        // TPR 0.6 and FPR 0.3 at δ = 0: ε ≥ max(ln 2, ln(0.7 / 0.4)) = ln 2.
        assert!((epsilon_from_rates(0.6, 0.3, 0.0) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(epsilon_from_rates(0.3, 0.3, 0.0), 0.0);
    }

    #[test]
    fn wilson_bounds_bracket_the_proportion() {
        assert!(wilson_bound(30.0, 100.0, false) < 0.3);
        assert!(wilson_bound(30.0, 100.0, true) > 0.3);
        assert!(wilson_bound(0.0, 100.0, true) > 0.0);
    }

    #[test]
    fn empty_sets_give_none() {
        assert!(loss_threshold_attack(&[], &[1.0], 1e-5).is_none());
    }
}
