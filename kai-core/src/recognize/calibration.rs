//! Temperature scaling of the class vote, fitted on held-out catalog images.
//!
//! The class scores are similarities, not probabilities. Dividing them by a temperature
//! before the softmax makes the confidences match observed accuracy (Guo et al., "On
//! Calibration of Modern Neural Networks", ICML 2017). The temperature is fitted by
//! minimising the negative log-likelihood of the true classes, and the expected
//! calibration error over 10 equal-width confidence bins measures how well it worked.

use serde::{Deserialize, Serialize};

/// Temperature used before any calibration has run.
pub const DEFAULT_TEMPERATURE: f32 = 0.05;

/// One held-out prediction: the class scores and the index of the true class.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// One score per class.
    pub scores: Vec<f32>,
    /// Index of the true class in `scores`.
    pub truth: usize,
}

/// A fitted temperature and how well it calibrates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// Divisor of the class scores before the softmax.
    pub temperature: f32,
    /// Expected calibration error after scaling, over 10 bins; `None` before fitting.
    pub expected_calibration_error: Option<f32>,
    /// Top-1 accuracy of the held-out predictions; `None` before fitting.
    pub accuracy: Option<f32>,
    /// Number of held-out predictions.
    pub samples: usize,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            temperature: DEFAULT_TEMPERATURE,
            expected_calibration_error: None,
            accuracy: None,
            samples: 0,
        }
    }
}

/// Returns the softmax of `scores / temperature`.
pub fn softmax(scores: &[f32], temperature: f32) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores
        .iter()
        .map(|s| ((s - max) / temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

fn negative_log_likelihood(samples: &[Sample], temperature: f32) -> f64 {
    samples
        .iter()
        .map(|s| -f64::from(softmax(&s.scores, temperature)[s.truth].max(1e-12)).ln())
        .sum::<f64>()
}

/// Returns the expected calibration error of `samples` at `temperature`, over 10 bins.
pub fn expected_calibration_error(samples: &[Sample], temperature: f32) -> f32 {
    const BINS: usize = 10;
    let mut confidence = [0f64; BINS];
    let mut correct = [0f64; BINS];
    let mut count = [0usize; BINS];
    for sample in samples {
        let probabilities = softmax(&sample.scores, temperature);
        let (best, p) = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or((0, 0.0), |(i, p)| (i, *p));
        let bin = ((p * BINS as f32) as usize).min(BINS - 1);
        confidence[bin] += f64::from(p);
        correct[bin] += f64::from(u8::from(best == sample.truth));
        count[bin] += 1;
    }
    let total = samples.len().max(1) as f64;
    (0..BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| (confidence[b] - correct[b]).abs() / total)
        .sum::<f64>() as f32
}

/// Fits the temperature that minimises the negative log-likelihood of `samples`, by
/// golden-section search over log-temperature in [1e-3, 10].
pub fn fit(samples: &[Sample]) -> Calibration {
    if samples.is_empty() {
        return Calibration::default();
    }
    let loss = |log_t: f64| negative_log_likelihood(samples, log_t.exp() as f32);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut low, mut high) = (1e-3f64.ln(), 10f64.ln());
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (loss(a), loss(b));
    for _ in 0..60 {
        if fa < fb {
            high = b;
            b = a;
            fb = fa;
            a = high - ratio * (high - low);
            fa = loss(a);
        } else {
            low = a;
            a = b;
            fa = fb;
            b = low + ratio * (high - low);
            fb = loss(b);
        }
    }
    let temperature = ((low + high) / 2.0).exp() as f32;
    let accuracy = samples
        .iter()
        .filter(|s| {
            s.scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                == Some(s.truth)
        })
        .count() as f32
        / samples.len() as f32;
    Calibration {
        temperature,
        expected_calibration_error: Some(expected_calibration_error(samples, temperature)),
        accuracy: Some(accuracy),
        samples: samples.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one() {
        let p = softmax(&[0.9, 0.5, 0.1], 0.1);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[1]);
        assert!(p[1] > p[2]);
    }

    #[test]
    fn fit_sharpens_reliable_scores_and_softens_noisy_ones() {
        // Always right with a clear margin: the fit drives the temperature down.
        let reliable = vec![
            Sample {
                scores: vec![0.8, 0.6],
                truth: 0
            };
            50
        ];
        let sharp = fit(&reliable);
        assert_eq!(sharp.accuracy, Some(1.0));
        // Right only 60 % of the time with the same margin: a higher temperature.
        let noisy: Vec<Sample> = (0..50)
            .map(|i| Sample {
                scores: vec![0.8, 0.6],
                truth: usize::from(i % 5 >= 3),
            })
            .collect();
        let soft = fit(&noisy);
        assert!(soft.temperature > sharp.temperature, "{soft:?} {sharp:?}");
        assert!((soft.accuracy.unwrap() - 0.6).abs() < 1e-6);
        // At the fitted temperature the confidence matches the 60 % accuracy.
        let p = softmax(&[0.8, 0.6], soft.temperature)[0];
        assert!((p - 0.6).abs() < 0.01, "{p}");
        assert!(soft.expected_calibration_error.unwrap() < 0.01);
    }
}
