//! Upper convex hulls of per-group ROC curves.
//!
//! Coordinates are weighted counts, not rates: a vertex contains the weight of the false positives
//! and true positives that its threshold selects within the group. Scaling the axes by the
//! group's negatives and positives gives the usual ROC curve, and leaves the hull the same.

/// The threshold classifier `score >= threshold` of one hull vertex and what it selects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Vertex {
    /// Scores at or above this value are selected; `+inf` selects nobody, `-inf` everybody.
    pub threshold: f64,
    /// Weight of the selected actual negatives.
    pub false_positives: f64,
    /// Weight of the selected actual positives.
    pub true_positives: f64,
}

/// A point on a hull: vertex `index`, mixed with vertex `index + 1` with probability `mix`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HullPoint {
    pub index: usize,
    pub mix: f64,
}

/// The rows of one group, summarised by the upper hull of their ROC curve.
#[derive(Debug, Clone)]
pub(crate) struct GroupCurve {
    /// Total weight of the group's rows.
    pub weight: f64,
    /// Weight of the actual positives.
    pub positives: f64,
    /// Weight of the actual negatives.
    pub negatives: f64,
    /// Vertices from "select nobody" to "select everybody", with slopes that never increase.
    pub hull: Vec<Vertex>,
}

impl GroupCurve {
    /// Builds the hull of one group's rows (scores, labels and weights of that group only).
    pub fn new(rows: &[(f64, bool, f64)]) -> Self {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| rows[b].0.total_cmp(&rows[a].0));

        // One ROC point per distinct score, lowering the threshold from the top score down.
        let mut points = vec![Vertex { threshold: f64::INFINITY, false_positives: 0.0, true_positives: 0.0 }];
        let (mut false_positives, mut true_positives) = (0.0, 0.0);
        let mut start = 0;
        while start < order.len() {
            let score = rows[order[start]].0;
            let mut end = start;
            while end < order.len() && rows[order[end]].0 == score {
                let (_, label, weight) = rows[order[end]];
                if label {
                    true_positives += weight;
                } else {
                    false_positives += weight;
                }
                end += 1;
            }
            points.push(Vertex { threshold: score, false_positives, true_positives });
            start = end;
        }
        // The last point selects every row; -inf keeps it so for scores below any seen here.
        if points.len() > 1
            && let Some(last) = points.last_mut()
        {
            last.threshold = f64::NEG_INFINITY;
        }

        Self {
            weight: false_positives + true_positives,
            positives: true_positives,
            negatives: false_positives,
            hull: upper_hull(&points),
        }
    }

    /// Returns the weights of the false and true positives at a hull point.
    pub fn at(&self, point: HullPoint) -> (f64, f64) {
        let low = self.hull[point.index];
        let Some(high) = self.hull.get(point.index + 1) else {
            return (low.false_positives, low.true_positives);
        };
        (
            low.false_positives + point.mix * (high.false_positives - low.false_positives),
            low.true_positives + point.mix * (high.true_positives - low.true_positives),
        )
    }

    /// Returns the highest hull point with false positive rate `target` in `[0, 1]`.
    ///
    /// A concave hull can rise vertically only at its first segment, so the last vertex at or
    /// left of the target, mixed towards the next one, is the highest point there.
    pub fn at_false_positive_rate(&self, target: f64) -> HullPoint {
        let rates: Vec<f64> = self.hull.iter().map(|v| v.false_positives / self.negatives).collect();
        let index = rates.partition_point(|&r| r <= target).max(1) - 1;
        match rates.get(index + 1) {
            Some(&next) if next > rates[index] => {
                HullPoint { index, mix: ((target - rates[index]) / (next - rates[index])).clamp(0.0, 1.0) }
            }
            _ => HullPoint { index, mix: 0.0 },
        }
    }
}

/// Returns the first hull point whose rate reaches `target`, given the rates of the hull's
/// vertices (a rate that never decreases along the hull), or the last vertex when no point
/// reaches it.
///
/// Taking the first point matters where the rate stays flat along a segment, as the true
/// positive rate does at 1 on a final, horizontal segment. There the first point selects fewer
/// false positives for the same rate.
pub(crate) fn first_reaching(rates: &[f64], target: f64) -> HullPoint {
    let index = rates.partition_point(|&r| r < target);
    if index == 0 {
        return HullPoint { index: 0, mix: 0.0 };
    }
    if index == rates.len() {
        return HullPoint { index: rates.len() - 1, mix: 0.0 };
    }
    let mix = (target - rates[index - 1]) / (rates[index] - rates[index - 1]);
    HullPoint { index: index - 1, mix: mix.clamp(0.0, 1.0) }
}

/// Returns the upper convex hull of ROC points sorted by false positives and true positives,
/// both non-decreasing (Andrew's monotone chain). Points on a segment between two hull vertices
/// are dropped, because mixing the two vertices reaches them.
fn upper_hull(points: &[Vertex]) -> Vec<Vertex> {
    let mut hull: Vec<Vertex> = Vec::with_capacity(points.len());
    for &point in points {
        while hull.len() >= 2 {
            let a = hull[hull.len() - 2];
            let b = hull[hull.len() - 1];
            // b stays only if a -> b -> point turns clockwise, that is b lies above the chord.
            let cross = (b.false_positives - a.false_positives) * (point.true_positives - a.true_positives)
                - (b.true_positives - a.true_positives) * (point.false_positives - a.false_positives);
            if cross >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(point);
    }
    hull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_drops_points_below_the_chord() {
        // Scores 0.9 (+), 0.8 (-), 0.7 (+), 0.6 (-): ROC points (0,0) (0,1) (1,1) (1,2) (2,2).
        // (1,1) lies below the chord from (0,1) to (1,2), so the hull skips threshold 0.8.
        let rows = [(0.9, true, 1.0), (0.8, false, 1.0), (0.7, true, 1.0), (0.6, false, 1.0)];
        let curve = GroupCurve::new(&rows);
        let corners: Vec<(f64, f64, f64)> =
            curve.hull.iter().map(|v| (v.threshold, v.false_positives, v.true_positives)).collect();
        assert_eq!(
            corners,
            vec![(f64::INFINITY, 0.0, 0.0), (0.9, 0.0, 1.0), (0.7, 1.0, 2.0), (f64::NEG_INFINITY, 2.0, 2.0)]
        );
        assert_eq!((curve.positives, curve.negatives, curve.weight), (2.0, 2.0, 4.0));
    }

    #[test]
    fn tied_scores_form_one_point() {
        let rows = [(0.5, true, 1.0), (0.5, false, 1.0), (0.2, false, 2.0)];
        let curve = GroupCurve::new(&rows);
        // (0,0) -> (1,1) -> (3,1): the tie moves diagonally, and the last step is flat.
        assert_eq!(curve.hull.len(), 3);
        assert_eq!(curve.hull[1].threshold, 0.5);
        assert_eq!((curve.hull[1].false_positives, curve.hull[1].true_positives), (1.0, 1.0));
    }

    #[test]
    fn first_reaching_interpolates_and_prefers_fewer_false_positives() {
        let rows = [(0.9, true, 1.0), (0.8, false, 1.0), (0.7, true, 1.0), (0.6, false, 1.0)];
        let curve = GroupCurve::new(&rows);
        let true_positive_rates: Vec<f64> = curve.hull.iter().map(|v| v.true_positives / 2.0).collect();
        // True positive rate 0.75 lies halfway between (0,1) and (1,2).
        let point = first_reaching(&true_positive_rates, 0.75);
        assert_eq!(point, HullPoint { index: 1, mix: 0.5 });
        assert_eq!(curve.at(point), (0.5, 1.5));
        // A true positive rate of 1 is reached at (1,2) already, not at (2,2).
        assert_eq!(curve.at(first_reaching(&true_positive_rates, 1.0)), (1.0, 2.0));
    }

    #[test]
    fn fpr_lookup_takes_highest_point() {
        let rows = [(0.9, true, 1.0), (0.8, true, 1.0), (0.3, false, 1.0), (0.2, false, 1.0)];
        let curve = GroupCurve::new(&rows);
        // The hull rises from (0,0) to (0,2) at false positive rate 0, then runs flat.
        assert_eq!(curve.at(curve.at_false_positive_rate(0.0)), (0.0, 2.0));
        assert_eq!(curve.at(curve.at_false_positive_rate(0.25)), (0.5, 2.0));
        assert_eq!(curve.at(curve.at_false_positive_rate(1.0)), (2.0, 2.0));
    }
}
