//! The z-score and the exact binomial tail of the watermark test.
//!
//! Under the null hypothesis (text written without the key), each scored token is green with
//! probability gamma, independently, so the green count of `n` scored tokens is `Bin(n, gamma)`.
//! The p-value is the exact upper tail `P(X >= k)`, computed in log space so that it stays
//! accurate when it is far below the smallest positive `f64`.

use std::f64::consts::PI;

/// Returns the z-score of `green` green tokens among `scored` scored ones, Kirchenbauer et al.
/// (2023), section 3: `z = (green - gamma * scored) / sqrt(scored * gamma * (1 - gamma))`.
/// Returns 0 when nothing was scored.
pub fn z_score(green: usize, scored: usize, gamma: f64) -> f64 {
    if scored == 0 {
        return 0.0;
    }
    let n = scored as f64;
    (green as f64 - gamma * n) / (n * gamma * (1.0 - gamma)).sqrt()
}

/// An upper-tail probability and its natural logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tail {
    /// `P(X >= k)`, or 0 when it underflows. `ln_p_value` keeps the value then.
    pub p_value: f64,
    /// Natural logarithm of the tail; negative infinity when the tail is exactly 0.
    pub ln_p_value: f64,
}

/// Returns the exact binomial upper tail `P(X >= k)` for `X ~ Bin(n, p)`, with `p` in (0, 1).
///
/// When `k` lies above the mode the terms from `k` upwards decrease, so they are summed relative
/// to the first one and the log of that term, from Loader's saddle-point form, carries the
/// magnitude: the relative error stays near machine precision even for tails such as 1e-2000.
/// Otherwise the tail is at least about one half and is computed as one minus the lower tail,
/// whose terms decrease from `k - 1` downwards.
pub fn binomial_upper_tail(k: u64, n: u64, p: f64) -> Tail {
    debug_assert!(p > 0.0 && p < 1.0, "p = {p}");
    if k == 0 {
        return Tail { p_value: 1.0, ln_p_value: 0.0 };
    }
    if k > n {
        return Tail { p_value: 0.0, ln_p_value: f64::NEG_INFINITY };
    }

    let q = 1.0 - p;
    // Terms rise while i < mode and fall from the mode on: t(i+1) / t(i) = (n-i) p / ((i+1) q).
    let mode = ((n + 1) as f64 * p).floor() as u64;
    if k >= mode {
        let ln_first = ln_binomial_pmf(k, n, p);
        let ratio = p / q;
        let mut term = 1.0;
        let mut sum = 1.0;
        for i in k..n {
            term *= (n - i) as f64 / (i + 1) as f64 * ratio;
            sum += term;
            // The remaining terms fall geometrically, so once one is below 1e-17 of the sum their
            // total no longer changes the sum in double precision.
            if term < sum * 1e-17 {
                break;
            }
        }
        let ln_p_value = ln_first + sum.ln();
        Tail { p_value: ln_p_value.exp(), ln_p_value }
    } else {
        let lower = binomial_lower_tail_below_mode(k - 1, n, p);
        Tail { p_value: 1.0 - lower, ln_p_value: (-lower).ln_1p() }
    }
}

/// Returns `P(X <= j)` for `j` below the mode, summing the terms from `j` downwards.
fn binomial_lower_tail_below_mode(j: u64, n: u64, p: f64) -> f64 {
    let q = 1.0 - p;
    let ratio = q / p;
    let first = ln_binomial_pmf(j, n, p).exp();
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut i = j;
    while i > 0 {
        // t(i-1) / t(i) = i q / ((n-i+1) p)
        term *= i as f64 / (n - i + 1) as f64 * ratio;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
        i -= 1;
    }
    first * sum
}

/// Returns `ln P(X = x)` for `X ~ Bin(n, p)`, by Loader (2000), "Fast and Accurate Computation of
/// Binomial Probabilities": the pmf is written as
/// `exp(-stirlerr terms - bd0(x, np) - bd0(n-x, nq)) * sqrt(n / (2 pi x (n-x)))`, which avoids the
/// cancellation of `ln C(n, x) + x ln p + (n-x) ln q` for large `n`.
pub fn ln_binomial_pmf(x: u64, n: u64, p: f64) -> f64 {
    if x > n {
        return f64::NEG_INFINITY;
    }
    if x == 0 {
        return n as f64 * (-p).ln_1p();
    }
    if x == n {
        return n as f64 * p.ln();
    }
    let (xf, nf) = (x as f64, n as f64);
    let q = 1.0 - p;
    let exponent = stirling_error(nf)
        - stirling_error(xf)
        - stirling_error(nf - xf)
        - deviance_term(xf, nf * p)
        - deviance_term(nf - xf, nf * q);
    // ln(2 pi x (n-x) / n), with (n-x)/n written as 1 - x/n.
    let ln_scale = (2.0 * PI).ln() + xf.ln() + (-xf / nf).ln_1p();
    exponent - 0.5 * ln_scale
}

/// `ln(n!) - ln(sqrt(2 pi n) (n/e)^n)`, the error of Stirling's formula, for an integer `n >= 1`.
fn stirling_error(n: f64) -> f64 {
    if n <= 15.0 {
        // Small n: the direct difference loses at most a few units in the last place of ~40.
        return libm::lgamma(n + 1.0) - (n + 0.5) * n.ln() + n - 0.5 * (2.0 * PI).ln();
    }
    // The Stirling series 1/(12n) - 1/(360n^3) + 1/(1260n^5) - 1/(1680n^7) + 1/(1188n^9), with
    // coefficients B_2k / (2k (2k-1)) from the Bernoulli numbers; for n > 15 the next term is
    // below 1e-15 of the sum.
    let n2 = n * n;
    (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - (1.0 / 1680.0 - 1.0 / (1188.0 * n2)) / n2) / n2) / n2) / n
}

/// `x ln(x / m) + m - x`, the deviance term of Loader's form, computed without cancellation when
/// `x` is close to `m` through the series of `ln((1+v)/(1-v))` with `v = (x-m)/(x+m)`.
fn deviance_term(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        // x ln(x/m) + m - x = (x-m) v + 2x (v^3/3 + v^5/5 + ...)
        let mut sum = (x - m) * v;
        let mut power = 2.0 * x * v;
        for j in 1..1000 {
            power *= v2;
            let next = sum + power / (2 * j + 1) as f64;
            if next == sum {
                break;
            }
            sum = next;
        }
        return sum;
    }
    x * (x / m).ln() + m - x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `P(X >= k)` by summing `C(n, i) p^i q^(n-i)` with exact integer coefficients.
    fn direct_upper_tail(k: u64, n: u64, p: f64) -> f64 {
        let mut coefficient: u128 = 1;
        let mut total = 0.0;
        for i in 0..=n {
            if i >= k {
                total += coefficient as f64 * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
            }
            coefficient = coefficient * (n - i) as u128 / (i + 1) as u128;
        }
        total
    }

    fn assert_relative(actual: f64, expected: f64, tolerance: f64, what: &str) {
        let error = ((actual - expected) / expected).abs();
        assert!(error <= tolerance, "{what}: {actual} vs {expected} (relative error {error:e})");
    }

    #[test]
    fn tail_equals_direct_summation() {
        for n in [1u64, 2, 5, 16, 40, 90] {
            for p in [0.1, 0.25, 0.5, 0.9] {
                for k in 0..=n {
                    let tail = binomial_upper_tail(k, n, p);
                    let direct = direct_upper_tail(k, n, p);
                    assert_relative(tail.p_value, direct, 1e-12, &format!("P(X >= {k}), n = {n}, p = {p}"));
                    assert_relative(tail.ln_p_value.exp(), direct, 1e-12, &format!("ln tail, k = {k}, n = {n}"));
                }
            }
        }
    }

    #[test]
    fn tail_above_n_is_zero() {
        let tail = binomial_upper_tail(11, 10, 0.25);
        assert_eq!(tail.p_value, 0.0);
        assert_eq!(tail.ln_p_value, f64::NEG_INFINITY);
    }

    #[test]
    fn tiny_tails_keep_their_logarithm() {
        // P(X >= n) = p^n and P(X >= n-1) = n p^(n-1) q + p^n, far below f64's range.
        let (n, p) = (5_000u64, 0.25f64);
        let all = binomial_upper_tail(n, n, p);
        assert_eq!(all.p_value, 0.0);
        assert_relative(all.ln_p_value, n as f64 * p.ln(), 1e-14, "ln P(X >= n)");

        let ln_expected = (n - 1) as f64 * p.ln() + ((n as f64) * (1.0 - p) + p).ln();
        assert_relative(binomial_upper_tail(n - 1, n, p).ln_p_value, ln_expected, 1e-14, "ln P(X >= n-1)");
    }

    #[test]
    fn ln_pmf_matches_reference_values() {
        // References: ln(C(n, x) p^x (1-p)^(n-x)) with mpmath 1.3.0 at 40 significant digits. The
        // textbook form through lgamma misses the last case by 2e-11 relative; Loader's does not.
        let cases = [
            (3u64, 10u64, 0.25, -1.3851658477400923),
            (250, 1_000, 0.25, -3.536189066839433),
            (700, 1_000, 0.25, -449.43917825508294),
            (51, 100_000, 0.0004, -4.277090624363857),
        ];
        for (x, n, p, reference) in cases {
            assert_relative(ln_binomial_pmf(x, n, p), reference, 1e-14, &format!("ln pmf({x}; {n}, {p})"));
        }
    }

    #[test]
    fn large_n_tails_match_reference_values() {
        // References: the tail summed term by term with mpmath 1.3.0 at 50 significant digits.
        let cases = [
            (250_000u64, 1_000_000u64, 0.5003838823292973),
            (254_330, 1_000_000, 9.353638107511344e-24),
            (3_000, 10_000, 6.1495500041021355e-30),
            (180, 200, 2.26194825487418e-84),
        ];
        for (k, n, reference) in cases {
            let tail = binomial_upper_tail(k, n, 0.25);
            assert_relative(tail.p_value, reference, 1e-10, &format!("P(X >= {k}), n = {n}"));
            assert_relative(tail.ln_p_value, reference.ln(), 1e-12, &format!("ln P(X >= {k}), n = {n}"));
        }
    }

    #[test]
    fn z_score_follows_formula() {
        assert_eq!(z_score(0, 0, 0.25), 0.0);
        // 100 scored, 40 green, gamma 0.25: (40 - 25) / sqrt(18.75)
        assert!((z_score(40, 100, 0.25) - 15.0 / 18.75f64.sqrt()).abs() < 1e-12);
    }
}
