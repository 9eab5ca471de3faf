//! Robust losses applied to the squared reprojection error of one observation.

/// The robust loss `ρ(s)` on the squared residual norm `s` (pixels squared), with scale `δ`
/// in pixels. Residuals below `δ` count about quadratically in every loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossFunction {
    /// Least squares: `ρ(s) = s`.
    #[default]
    Trivial,
    /// Huber: `ρ(s) = s` for `s ≤ δ²`, else `2 δ √s - δ²` (linear growth).
    Huber,
    /// Cauchy: `ρ(s) = δ² ln(1 + s / δ²)` (logarithmic growth, so gross outliers barely
    /// pull).
    Cauchy,
}

impl LossFunction {
    /// `ρ(s)` and its derivative `ρ'(s)`, the weight of the residual in the normal
    /// equations (iteratively reweighted least squares).
    pub(super) fn evaluate(self, squared: f64, scale: f64) -> (f64, f64) {
        let scale2 = scale * scale;
        match self {
            Self::Trivial => (squared, 1.0),
            Self::Huber if squared <= scale2 => (squared, 1.0),
            Self::Huber => {
                let norm = squared.sqrt();
                (2.0 * scale * norm - scale2, scale / norm)
            }
            Self::Cauchy => {
                let ratio = squared / scale2;
                (scale2 * ratio.ln_1p(), 1.0 / (1.0 + ratio))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LossFunction;

    #[test]
    fn weights_match_loss_derivative() {
        for loss in [
            LossFunction::Trivial,
            LossFunction::Huber,
            LossFunction::Cauchy,
        ] {
            for s in [0.25, 4.0, 100.0] {
                let h = 1e-6;
                let numeric =
                    (loss.evaluate(s + h, 1.5).0 - loss.evaluate(s - h, 1.5).0) / (2.0 * h);
                let (_, weight) = loss.evaluate(s, 1.5);
                assert!(
                    (numeric - weight).abs() < 1e-6,
                    "{loss:?} at {s}: {numeric} vs {weight}"
                );
            }
        }
    }
}
