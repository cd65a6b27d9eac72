//! The statistics the canary judge stands on: the Mann-Whitney U test (the
//! test Kayenta's judge uses, since latency is never normally distributed) and
//! a one-sided two-proportion z-test for error rates.

use serde::Serialize;

/// Outcome of a Mann-Whitney U test of a canary sample against a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of the canary sample (scipy's `mannwhitneyu(canary, baseline).statistic`).
    pub u: f64,
    /// Two-sided p-value, normal approximation with tie and continuity
    /// correction (scipy's `method="asymptotic"`).
    pub p_value: f64,
    /// Common-language effect size: the chance that a random canary value
    /// exceeds a random baseline value (ties count half). 0.5 is no effect.
    pub cles: f64,
}

/// Mann-Whitney U test; `None` when either sample is empty.
pub fn mann_whitney_u(canary: &[f64], baseline: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (canary.len(), baseline.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut pooled: Vec<(f64, bool)> = canary
        .iter()
        .map(|&v| (v, true))
        .chain(baseline.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Average ranks over ties; the tie sizes feed the variance correction.
    let n = pooled.len();
    let mut canary_rank_sum = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        let in_canary = pooled[i..j].iter().filter(|(_, c)| *c).count();
        canary_rank_sum += average_rank * in_canary as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }

    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = canary_rank_sum - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    let p_value = if variance <= 0.0 {
        1.0 // every value tied: no evidence of any difference
    } else {
        let z = ((u.max(n1f * n2f - u) - mean - 0.5) / variance.sqrt()).max(0.0);
        (2.0 * normal_sf(z)).min(1.0)
    };
    Some(MannWhitney {
        u,
        p_value,
        cles: u / (n1f * n2f),
    })
}

/// One-sided test that the canary's share of events exceeds the baseline's.
/// Returns the p-value; 1 when neither side has any event to compare.
pub fn proportion_increase_p(
    canary_hits: u64,
    canary_total: u64,
    baseline_hits: u64,
    baseline_total: u64,
) -> f64 {
    if canary_total == 0 || baseline_total == 0 {
        return 1.0;
    }
    let (c, ct, b, bt) = (
        canary_hits as f64,
        canary_total as f64,
        baseline_hits as f64,
        baseline_total as f64,
    );
    let pooled = (c + b) / (ct + bt);
    let se = (pooled * (1.0 - pooled) * (1.0 / ct + 1.0 / bt)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    normal_sf((c / ct - b / bt) / se)
}

/// Upper tail of the standard normal distribution.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Median (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// Linear-interpolated quantile (numpy's default); `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    // Reference values computed once with scipy 1.17.1:
    //   scipy.stats.mannwhitneyu(x, y, method="asymptotic")  (two-sided,
    //   use_continuity=True), statistic and pvalue printed with repr().
    #[test]
    fn matches_scipy_without_ties() {
        let x = [
            19.1, 21.4, 25.3, 22.8, 30.2, 27.7, 24.9, 26.1, 23.3, 28.8, 31.5, 29.9,
        ];
        let y = [
            18.2, 20.5, 17.9, 22.1, 19.8, 21.7, 23.9, 20.1, 18.8, 24.4, 22.6,
        ];
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.u, 115.0);
        assert!(close(r.p_value, SCIPY_NO_TIES_P, 1e-9), "{}", r.p_value);
        assert!(close(r.cles, 115.0 / 132.0, 1e-12));
    }

    #[test]
    fn matches_scipy_with_ties() {
        let x = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0];
        let y = [2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 6.0, 6.0, 7.0, 8.0, 8.0];
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.u, 29.0);
        assert!(close(r.p_value, SCIPY_TIES_P, 1e-9), "{}", r.p_value);
    }

    #[test]
    fn matches_scipy_on_larger_samples_with_many_ties() {
        // x = [((i*37) % 101)/10 for i in range(200)]
        // y = [((j*53) % 97)/10 + 1.0 for j in range(180)]
        let x: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let y: Vec<f64> = (0..180)
            .map(|j| ((j * 53) % 97) as f64 / 10.0 + 1.0)
            .collect();
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.u, 15362.5);
        assert!(
            close(r.p_value, 0.013638492803359503, 1e-9),
            "{}",
            r.p_value
        );
    }

    const SCIPY_NO_TIES_P: f64 = 0.0028360738281000496;
    const SCIPY_TIES_P: f64 = 0.06912165793359207;

    #[test]
    fn symmetric_and_degenerate_cases() {
        let a = [1.0, 2.0, 3.0];
        let r = mann_whitney_u(&a, &a).unwrap();
        assert_eq!(r.u, 4.5);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.cles, 0.5);
        let tied = mann_whitney_u(&[7.0; 5], &[7.0; 4]).unwrap();
        assert_eq!(tied.p_value, 1.0);
        assert!(mann_whitney_u(&[], &a).is_none());
    }

    #[test]
    fn proportion_test() {
        // 2% vs 1% of 10,000 each: z = 5.82, clearly an increase.
        assert!(proportion_increase_p(200, 10_000, 100, 10_000) < 1e-6);
        // A decrease is not an increase.
        assert!(proportion_increase_p(100, 10_000, 200, 10_000) > 0.99);
        assert_eq!(proportion_increase_p(0, 500, 0, 500), 1.0);
        assert_eq!(proportion_increase_p(0, 0, 3, 500), 1.0);
        assert!(close(normal_sf(1.959963984540054), 0.025, 1e-12));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), Some(4.6));
        assert_eq!(median(&[]), None);
    }
}
