//! Pre-processing mitigation: reweighing.

use std::collections::HashMap;

/// Computes Kamiran and Calders' reweighing weights ("Data preprocessing techniques for
/// classification without discrimination", Knowledge and Information Systems 33, 2012,
/// Section 4.2): `w(a, y) = P(A = a) P(Y = y) / P(A = a, Y = y)`, estimated on the given rows.
///
/// Under these weights the label is independent of the group: every group has the overall
/// positive rate. A group without rows of one label gets no weight for that label (there is
/// nothing to weigh).
pub fn reweighing_weights(labels: &[bool], groups: &[String]) -> Vec<f64> {
    let n = labels.len() as f64;
    let mut group_counts: HashMap<&str, f64> = HashMap::new();
    let mut joint_counts: HashMap<(&str, bool), f64> = HashMap::new();
    let positives = labels.iter().filter(|&&y| y).count() as f64;
    for (group, &label) in groups.iter().zip(labels) {
        *group_counts.entry(group.as_str()).or_default() += 1.0;
        *joint_counts.entry((group.as_str(), label)).or_default() += 1.0;
    }
    groups
        .iter()
        .zip(labels)
        .map(|(group, &label)| {
            let p_group = group_counts[group.as_str()] / n;
            let p_label = if label { positives / n } else { (n - positives) / n };
            let p_joint = joint_counts[&(group.as_str(), label)] / n;
            p_group * p_label / p_joint
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_positive_rate_is_equal_across_groups() {
        // Group a: 3 of 4 positive; group b: 1 of 4 positive; overall 1/2.
        let labels = [true, true, true, false, true, false, false, false];
        let groups: Vec<String> = ["a", "a", "a", "a", "b", "b", "b", "b"].map(String::from).to_vec();
        let weights = reweighing_weights(&labels, &groups);
        // w(a, +) = (1/2)(1/2)/(3/8) = 2/3; w(a, -) = (1/2)(1/2)/(1/8) = 2.
        assert!((weights[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((weights[3] - 2.0).abs() < 1e-12);
        for group in ["a", "b"] {
            let (positive, total) = labels
                .iter()
                .zip(&groups)
                .zip(&weights)
                .filter(|((_, g), _)| *g == group)
                .fold((0.0, 0.0), |(p, t), ((&y, _), &w)| (p + if y { w } else { 0.0 }, t + w));
            assert!((positive / total - 0.5).abs() < 1e-12, "group {group}: {}", positive / total);
        }
        // Total weight is preserved: sum of weights equals the row count.
        assert!((weights.iter().sum::<f64>() - 8.0).abs() < 1e-12);
    }

    #[test]
    fn balanced_data_gets_unit_weights() {
        let labels = [true, false, true, false];
        let groups: Vec<String> = ["a", "a", "b", "b"].map(String::from).to_vec();
        assert!(reweighing_weights(&labels, &groups).iter().all(|w| (w - 1.0).abs() < 1e-12));
    }
}
