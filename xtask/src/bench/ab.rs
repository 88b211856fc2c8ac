//! A/B interleaving: two configurations measured alternately, pair after pair, in one run, so
//! the machine's drift (it is shared, and its no-filter baselines spread by tens of percent
//! over a run) falls on both sides of every pair; the result is the median of the per-pair
//! ratios with a 95% confidence interval. The per-connection pairs are bursts of two probes
//! that stay in their cgroups ([`turns`]), tens of milliseconds apart.

/// One A/B comparison: the median of the per-pair ratios B/A of ns per operation, with a 95%
/// confidence interval from resampling the pairs (the median and the bootstrap, not the mean
/// and Student's t: one preempted run would otherwise widen the interval for all).
#[derive(Clone, Copy, Debug)]
pub(super) struct Ratio {
    pub(super) a_ns: f64,
    pub(super) b_ns: f64,
    pub(super) median: f64,
    pub(super) low: f64,
    pub(super) high: f64,
    pub(super) pairs: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Ratio {
    pub(super) fn of(pairs: &[(f64, f64)]) -> Self {
        let ratios: Vec<f64> = pairs.iter().map(|(a, b)| b / a).collect();
        // A fixed-seed xorshift: the interval is reproducible from the samples.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut medians: Vec<f64> = (0..2000)
            .map(|_| {
                median(
                    (0..ratios.len())
                        .map(|_| ratios[(next() % ratios.len() as u64) as usize])
                        .collect(),
                )
            })
            .collect();
        medians.sort_by(f64::total_cmp);
        Self {
            a_ns: median(pairs.iter().map(|p| p.0).collect()),
            b_ns: median(pairs.iter().map(|p| p.1).collect()),
            median: median(ratios.clone()),
            low: medians[50],
            high: medians[1949],
            pairs: ratios.len(),
        }
    }
}

impl Ratio {
    /// `+1.23% (95% CI -0.40% to +2.90%, 14 pairs)`: B/A − 1 and its interval.
    pub(super) fn percent(&self) -> String {
        format!(
            "{:+.2}% (95% CI {:+.2}% to {:+.2}%, {} pairs)",
            (self.median - 1.0) * 100.0,
            (self.low - 1.0) * 100.0,
            (self.high - 1.0) * 100.0,
            self.pairs
        )
    }
}

/// `pairs` pairs of `a` and `b`, alternating which goes first so neither always runs on a
/// warmer machine.
pub(super) fn interleaved(
    pairs: usize,
    mut a: impl FnMut() -> anyhow::Result<f64>,
    mut b: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<Ratio> {
    let mut samples = Vec::with_capacity(pairs);
    for round in 0..pairs {
        let pair = if round % 2 == 0 {
            let a = a()?;
            (a, b()?)
        } else {
            let b = b()?;
            (a()?, b)
        };
        samples.push(pair);
    }
    Ok(Ratio::of(&samples))
}

/// Pairs of bursts from two [`Turns`](super::probe::Turns) probes (A and B, each staying in its
/// cgroup), A and B alternating which goes first: neighbours tens of milliseconds apart, where
/// separate runs are a second apart and the shared machine drifts between them. The first
/// pairs warm both up and are not counted.
pub(super) fn turns(
    pairs: usize,
    a: &mut super::probe::Turns,
    b: &mut super::probe::Turns,
) -> anyhow::Result<Ratio> {
    const WARM_UP: usize = 4;
    for _ in 0..WARM_UP {
        a.turn()?;
        b.turn()?;
    }
    interleaved(pairs, || a.turn(), || b.turn())
}

/// What a confidence interval shows about "at most `limit` slower" (a ratio of 1 + limit).
pub(super) fn verdict(r: &Ratio, limit: f64) -> &'static str {
    if r.high <= 1.0 + limit {
        "yes"
    } else if r.low > 1.0 + limit {
        "**no**"
    } else {
        "not shown (the interval spans the target)"
    }
}
