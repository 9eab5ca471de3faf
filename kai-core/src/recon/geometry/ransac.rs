//! Generic seeded RANSAC with MSAC scoring, adaptive stopping and local optimisation.
//!
//! Scoring is MSAC: each datum costs its squared error, truncated at the squared threshold,
//! and the model with the lowest total cost wins. Whenever a sample produces a new best
//! model, local optimisation (LO-RANSAC) re-estimates it from its inliers with the
//! non-minimal solver. It does so a few times, with a threshold that shrinks from a multiple
//! of the inlier threshold down to the threshold itself. A sequential probability ratio test
//! stops scoring a model early once it is very likely worse than the best so far.
//!
//! The iteration count adapts to the best inlier ratio seen so far. With inlier ratio `w`,
//! sample size `s` and confidence `p`, `log(1 - p) / log(1 - w^s)` samples contain at least
//! one all-inlier sample with probability `p`.
//! NOTE: the count ignores the small chance that the sequential test rejects a good model.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A model family that RANSAC can fit: a minimal solver, a non-minimal (least-squares)
/// solver and a per-datum squared error.
pub trait Estimator {
    /// The fitted model.
    type Model: Clone;

    /// Number of data the minimal solver needs.
    const MIN_SAMPLE_SIZE: usize;

    /// Number of data the non-minimal solver needs at least.
    const MIN_NONMINIMAL_SIZE: usize;

    /// Number of data (correspondences).
    fn num_data(&self) -> usize;

    /// Appends to `models` every model the minimal solver finds from the data at `sample`
    /// (`MIN_SAMPLE_SIZE` indices). A degenerate sample appends nothing.
    fn estimate_minimal(&self, sample: &[usize], models: &mut Vec<Self::Model>);

    /// Appends to `models` the least-squares fits to the data at `indices`
    /// (`MIN_NONMINIMAL_SIZE` or more). Degenerate data appends nothing.
    fn estimate_nonminimal(&self, indices: &[usize], models: &mut Vec<Self::Model>);

    /// Returns the squared error of datum `index` under `model`, in the squared units of
    /// [`RansacOptions::max_error`].
    fn squared_error(&self, model: &Self::Model, index: usize) -> f64;
}

/// Settings of [`ransac`].
#[derive(Debug, Clone, PartialEq)]
pub struct RansacOptions {
    /// Inlier threshold on the (unsquared) error, in the units of the estimator's error.
    pub max_error: f64,
    /// Probability that at least one sample was free of outliers when sampling stops.
    pub confidence: f64,
    /// Samples drawn at least, even when the adaptive count is lower.
    pub min_iterations: usize,
    /// Samples drawn at most.
    pub max_iterations: usize,
    /// Seed of the ChaCha8 generator that draws the samples.
    pub seed: u64,
    /// Runs local optimisation on every new best model.
    pub local_optimization: bool,
    /// Re-estimation rounds per local optimisation.
    pub lo_iterations: usize,
    /// Threshold multiple used in the first local optimisation round; later rounds shrink
    /// it linearly to 1.
    pub lo_threshold_multiplier: f64,
}

impl Default for RansacOptions {
    fn default() -> Self {
        Self {
            max_error: 1.0,
            confidence: 0.999,
            min_iterations: 0,
            max_iterations: 10_000,
            seed: 0,
            local_optimization: true,
            lo_iterations: 4,
            lo_threshold_multiplier: 3.0,
        }
    }
}

/// The result of [`ransac`].
#[derive(Debug, Clone)]
pub struct RansacResult<M> {
    /// The best model after local optimisation and the final refit.
    pub model: M,
    /// Per datum: whether its error is at most [`RansacOptions::max_error`].
    pub inliers: Vec<bool>,
    /// Number of `true` entries in `inliers`.
    pub num_inliers: usize,
    /// Samples drawn.
    pub num_iterations: usize,
    /// The MSAC cost of `model` (sum of squared errors truncated at the squared threshold).
    pub score: f64,
}

/// Runs RANSAC and returns the best model, or `None` when the data are fewer than the
/// minimal sample or no sample produced a model with at least `MIN_SAMPLE_SIZE` inliers.
pub fn ransac<E: Estimator>(
    estimator: &E,
    options: &RansacOptions,
) -> Option<RansacResult<E::Model>> {
    let num_data = estimator.num_data();
    let sample_size = E::MIN_SAMPLE_SIZE;
    if num_data < sample_size || !options.max_error.is_finite() || options.max_error <= 0.0 {
        return None;
    }
    let threshold_sq = options.max_error * options.max_error;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);

    // Models are scored over the data in a random order, so the sequential test below
    // examines a random subset first.
    let mut order: Vec<usize> = (0..num_data).collect();
    for i in (1..num_data).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut sprt = SprtState::new(num_data);
    let mut sample = vec![0usize; sample_size];
    let mut models: Vec<E::Model> = Vec::with_capacity(16);
    let mut scratch_models: Vec<E::Model> = Vec::with_capacity(16);
    let mut scratch_indices: Vec<usize> = Vec::with_capacity(num_data);

    let mut best: Option<(E::Model, f64)> = None;
    let mut best_inlier_count = 0usize;
    let max_iterations = options.max_iterations.max(1);
    let mut required_iterations = max_iterations;
    let mut iteration = 0usize;

    while iteration
        < required_iterations
            .max(options.min_iterations)
            .min(max_iterations)
    {
        iteration += 1;
        draw_sample(&mut rng, num_data, &mut sample);
        models.clear();
        estimator.estimate_minimal(&sample, &mut models);
        let test = best.as_ref().and_then(|_| sprt.test(best_inlier_count));
        for model in models.drain(..) {
            let bound = best.as_ref().map_or(f64::INFINITY, |(_, score)| *score);
            let evaluation = evaluate(
                estimator,
                &model,
                threshold_sq,
                bound,
                &order,
                test.as_ref(),
            );
            let Some(score) = evaluation.score else {
                sprt.record_rejection(&evaluation);
                continue;
            };
            let (model, score) = if options.local_optimization {
                local_optimize(
                    estimator,
                    model,
                    score,
                    options,
                    &mut scratch_indices,
                    &mut scratch_models,
                )
            } else {
                (model, score)
            };
            let count = count_inliers(estimator, &model, threshold_sq);
            if count < sample_size {
                continue;
            }
            best = Some((model, score));
            best_inlier_count = count;
            required_iterations = adaptive_iterations(
                best_inlier_count as f64 / num_data as f64,
                sample_size,
                options.confidence,
                max_iterations,
            );
        }
    }

    let (mut model, mut score) = best?;

    // Final refit on every inlier of the best model; kept only when it lowers the cost.
    collect_inliers(estimator, &model, threshold_sq, &mut scratch_indices);
    if scratch_indices.len() >= E::MIN_NONMINIMAL_SIZE {
        scratch_models.clear();
        estimator.estimate_nonminimal(&scratch_indices, &mut scratch_models);
        for candidate in scratch_models.drain(..) {
            if let Some(candidate_score) = msac_score(estimator, &candidate, threshold_sq, score) {
                model = candidate;
                score = candidate_score;
            }
        }
    }

    let inliers: Vec<bool> = (0..num_data)
        .map(|i| estimator.squared_error(&model, i) <= threshold_sq)
        .collect();
    let num_inliers = inliers.iter().filter(|&&inlier| inlier).count();
    Some(RansacResult {
        model,
        inliers,
        num_inliers,
        num_iterations: iteration,
        score,
    })
}

/// Fills `sample` with distinct indices in `0..num_data`, drawn uniformly.
fn draw_sample(rng: &mut ChaCha8Rng, num_data: usize, sample: &mut [usize]) {
    for k in 0..sample.len() {
        // Rejection sampling is cheap because samples are far smaller than the data.
        loop {
            let candidate = rng.random_range(0..num_data);
            if !sample[..k].contains(&candidate) {
                sample[k] = candidate;
                break;
            }
        }
    }
}

/// Wald's sequential probability ratio test (SPRT) as used in randomized RANSAC. While a
/// model is scored, the log likelihood ratio of "bad model" against "model at least as good
/// as the best" grows by `ln((1 - δ) / (1 - ε))` per outlier and by `ln(δ / ε)` per inlier.
/// The model is rejected once the ratio exceeds `ln A`.
#[derive(Debug, Clone, Copy)]
struct SprtTest {
    inlier_step: f64,
    outlier_step: f64,
    log_threshold: f64,
}

/// The running estimate of `δ`, the inlier ratio of rejected (bad) models.
struct SprtState {
    num_data: usize,
    consistent: f64,
    evaluated: f64,
}

impl SprtState {
    /// Weight, in data, of the prior `δ`.
    const PRIOR_WEIGHT: f64 = 100.0;
    const PRIOR_DELTA: f64 = 0.05;
    /// Cost of one minimal solve (per model it returns) in units of one error evaluation.
    /// NOTE: a fixed estimate; the test's threshold grows only logarithmically with it.
    const SOLVE_COST: f64 = 200.0;

    fn new(num_data: usize) -> Self {
        Self {
            num_data,
            consistent: Self::PRIOR_DELTA * Self::PRIOR_WEIGHT,
            evaluated: Self::PRIOR_WEIGHT,
        }
    }

    fn record_rejection(&mut self, evaluation: &Evaluation) {
        self.consistent += evaluation.consistent as f64;
        self.evaluated += evaluation.evaluated as f64;
    }

    /// Returns the test against the best inlier count so far, or `None` when it cannot separate
    /// good from bad models (`ε ≤ δ`).
    fn test(&self, best_inlier_count: usize) -> Option<SprtTest> {
        let epsilon = best_inlier_count as f64 / self.num_data as f64;
        let delta = (self.consistent / self.evaluated).max(1e-4);
        if epsilon <= 1.5 * delta || epsilon >= 1.0 {
            return None;
        }
        // Expected log-likelihood increase per datum of a bad model (the constant C of
        // the SPRT), and the decision threshold A from A = K + 1 + ln A, K = t_M C.
        let c =
            (1.0 - delta) * ((1.0 - delta) / (1.0 - epsilon)).ln() + delta * (delta / epsilon).ln();
        let k = Self::SOLVE_COST * c;
        let mut a = k + 1.0;
        for _ in 0..10 {
            a = k + 1.0 + a.ln();
        }
        Some(SprtTest {
            inlier_step: (delta / epsilon).ln(),
            outlier_step: ((1.0 - delta) / (1.0 - epsilon)).ln(),
            log_threshold: a.max(1.0).ln(),
        })
    }
}

/// The outcome of scoring one model: its MSAC cost, or `None` when it was rejected early,
/// with the number of data looked at and how many of them were inliers.
struct Evaluation {
    score: Option<f64>,
    evaluated: usize,
    consistent: usize,
}

/// Scores `model` over the data in `order`, stopping as soon as its cost exceeds `bound`
/// or the sequential test rejects it.
fn evaluate<E: Estimator>(
    estimator: &E,
    model: &E::Model,
    threshold_sq: f64,
    bound: f64,
    order: &[usize],
    test: Option<&SprtTest>,
) -> Evaluation {
    let mut score = 0.0;
    let mut log_ratio = 0.0;
    let mut consistent = 0usize;
    for (evaluated, &i) in order.iter().enumerate() {
        let error = estimator.squared_error(model, i);
        // A NaN error counts as an outlier.
        let inlier = error <= threshold_sq;
        if inlier {
            score += error;
            consistent += 1;
        } else {
            score += threshold_sq;
        }
        let rejected = score >= bound
            || test.is_some_and(|test| {
                log_ratio += if inlier {
                    test.inlier_step
                } else {
                    test.outlier_step
                };
                log_ratio > test.log_threshold
            });
        if rejected {
            return Evaluation {
                score: None,
                evaluated: evaluated + 1,
                consistent,
            };
        }
    }
    Evaluation {
        score: score.is_finite().then_some(score),
        evaluated: order.len(),
        consistent,
    }
}

/// Returns the MSAC cost of `model`, or `None` as soon as it exceeds `bound` (or is not finite).
fn msac_score<E: Estimator>(
    estimator: &E,
    model: &E::Model,
    threshold_sq: f64,
    bound: f64,
) -> Option<f64> {
    let mut score = 0.0;
    for i in 0..estimator.num_data() {
        let error = estimator.squared_error(model, i);
        // A NaN error counts as an outlier.
        score += if error <= threshold_sq {
            error
        } else {
            threshold_sq
        };
        if score >= bound {
            return None;
        }
    }
    score.is_finite().then_some(score)
}

fn count_inliers<E: Estimator>(estimator: &E, model: &E::Model, threshold_sq: f64) -> usize {
    (0..estimator.num_data())
        .filter(|&i| estimator.squared_error(model, i) <= threshold_sq)
        .count()
}

fn collect_inliers<E: Estimator>(
    estimator: &E,
    model: &E::Model,
    threshold_sq: f64,
    indices: &mut Vec<usize>,
) {
    indices.clear();
    indices.extend(
        (0..estimator.num_data()).filter(|&i| estimator.squared_error(model, i) <= threshold_sq),
    );
}

/// Maximum number of inliers that one local optimisation round fits to.
const LO_MAX_DATA: usize = 2000;

/// Re-estimates `model` from its inliers with a shrinking threshold and returns the
/// lowest-cost model seen, scored at the final threshold.
fn local_optimize<E: Estimator>(
    estimator: &E,
    model: E::Model,
    score: f64,
    options: &RansacOptions,
    indices: &mut Vec<usize>,
    models: &mut Vec<E::Model>,
) -> (E::Model, f64) {
    let threshold = options.max_error;
    let threshold_sq = threshold * threshold;
    let rounds = options.lo_iterations;
    let multiplier = options.lo_threshold_multiplier.max(1.0);
    let mut best_model = model;
    let mut best_score = score;
    for round in 0..rounds {
        let fraction = if rounds > 1 {
            round as f64 / (rounds - 1) as f64
        } else {
            1.0
        };
        let round_threshold = threshold * (multiplier + (1.0 - multiplier) * fraction);
        collect_inliers(
            estimator,
            &best_model,
            round_threshold * round_threshold,
            indices,
        );
        if indices.len() < E::MIN_NONMINIMAL_SIZE {
            break;
        }
        // An evenly spaced subset bounds the cost on large data. The final refit after the
        // sampling loop still uses every inlier.
        if indices.len() > LO_MAX_DATA {
            let stride = indices.len().div_ceil(LO_MAX_DATA);
            let mut kept = 0;
            for k in (0..indices.len()).step_by(stride) {
                indices[kept] = indices[k];
                kept += 1;
            }
            indices.truncate(kept);
        }
        models.clear();
        estimator.estimate_nonminimal(indices, models);
        let mut improved = false;
        for candidate in models.drain(..) {
            if let Some(candidate_score) =
                msac_score(estimator, &candidate, threshold_sq, best_score)
            {
                best_model = candidate;
                best_score = candidate_score;
                improved = true;
            }
        }
        // Later rounds only tighten the threshold, so they start from the same inlier set
        // when nothing changed; stop early only after the widest round.
        if !improved && round > 0 {
            break;
        }
    }
    (best_model, best_score)
}

/// Returns the number of samples needed to draw an all-inlier sample with probability
/// `confidence`, given the inlier ratio, clamped to `max_iterations`.
pub fn adaptive_iterations(
    inlier_ratio: f64,
    sample_size: usize,
    confidence: f64,
    max_iterations: usize,
) -> usize {
    let p_good = inlier_ratio.clamp(0.0, 1.0).powi(sample_size as i32);
    if p_good <= f64::EPSILON {
        return max_iterations;
    }
    if p_good >= 1.0 {
        return 1;
    }
    let confidence = confidence.clamp(0.0, 1.0 - 1e-12);
    let count = (1.0 - confidence).ln() / (1.0 - p_good).ln();
    if !count.is_finite() || count >= max_iterations as f64 {
        max_iterations
    } else {
        (count.ceil() as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line y = a x + b fitted to 2D points; a toy estimator for the generic loop.
    struct LineEstimator<'a> {
        points: &'a [(f64, f64)],
    }

    impl Estimator for LineEstimator<'_> {
        type Model = (f64, f64);
        const MIN_SAMPLE_SIZE: usize = 2;
        const MIN_NONMINIMAL_SIZE: usize = 2;

        fn num_data(&self) -> usize {
            self.points.len()
        }

        fn estimate_minimal(&self, sample: &[usize], models: &mut Vec<Self::Model>) {
            let (x0, y0) = self.points[sample[0]];
            let (x1, y1) = self.points[sample[1]];
            if (x1 - x0).abs() < 1e-12 {
                return;
            }
            let a = (y1 - y0) / (x1 - x0);
            models.push((a, y0 - a * x0));
        }

        fn estimate_nonminimal(&self, indices: &[usize], models: &mut Vec<Self::Model>) {
            let n = indices.len() as f64;
            let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
            for &i in indices {
                let (x, y) = self.points[i];
                sx += x;
                sy += y;
                sxx += x * x;
                sxy += x * y;
            }
            let det = n * sxx - sx * sx;
            if det.abs() < 1e-12 {
                return;
            }
            let a = (n * sxy - sx * sy) / det;
            models.push((a, (sy - a * sx) / n));
        }

        fn squared_error(&self, model: &Self::Model, index: usize) -> f64 {
            let (x, y) = self.points[index];
            let r = y - (model.0 * x + model.1);
            r * r
        }
    }

    fn line_points(seed: u64) -> Vec<(f64, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..200)
            .map(|i| {
                let x = i as f64 * 0.05;
                if i % 3 == 0 {
                    (x, rng.random_range(-20.0..20.0))
                } else {
                    (x, 2.0 * x - 1.0 + rng.random_range(-0.01..0.01))
                }
            })
            .collect()
    }

    #[test]
    fn ransac_fits_line_with_outliers() {
        let points = line_points(1);
        let options = RansacOptions {
            max_error: 0.05,
            ..RansacOptions::default()
        };
        let result = ransac(&LineEstimator { points: &points }, &options).expect("line found");
        assert!(
            (result.model.0 - 2.0).abs() < 0.01,
            "slope {}",
            result.model.0
        );
        assert!(
            (result.model.1 + 1.0).abs() < 0.02,
            "intercept {}",
            result.model.1
        );
        assert!(result.num_inliers >= 133, "inliers {}", result.num_inliers);
        assert!(result.num_inliers <= 140, "inliers {}", result.num_inliers);
    }

    #[test]
    fn ransac_repeats_with_same_seed() {
        let points = line_points(2);
        let options = RansacOptions {
            max_error: 0.05,
            seed: 7,
            ..RansacOptions::default()
        };
        let a = ransac(&LineEstimator { points: &points }, &options).expect("line found");
        let b = ransac(&LineEstimator { points: &points }, &options).expect("line found");
        assert_eq!(a.model, b.model);
        assert_eq!(a.inliers, b.inliers);
        assert_eq!(a.num_iterations, b.num_iterations);
    }

    #[test]
    fn ransac_rejects_too_few_data() {
        let points = [(0.0, 1.0)];
        assert!(
            ransac(
                &LineEstimator { points: &points },
                &RansacOptions::default()
            )
            .is_none()
        );
    }

    #[test]
    fn adaptive_iterations_matches_formula() {
        // w = 0.5, s = 5, p = 0.999: log(0.001) / log(1 - 1/32) = 217.6.
        assert_eq!(adaptive_iterations(0.5, 5, 0.999, 10_000), 218);
        assert_eq!(adaptive_iterations(0.0, 5, 0.999, 500), 500);
        assert_eq!(adaptive_iterations(1.0, 5, 0.999, 500), 1);
    }
}
