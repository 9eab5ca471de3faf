//! Progress reports from long reconstruction runs, for progress bars and job status.

use serde::{Deserialize, Serialize};

/// The stages of structure from motion, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Stage {
    /// Decoding photos and checking their quality.
    Screening,
    /// Detecting keypoints and computing descriptors.
    Features,
    /// Matching descriptors between image pairs.
    Matching,
    /// Two-view geometric verification of the matches.
    Verification,
    /// Registering images one by one, triangulating and bundle adjusting.
    Registration,
    /// The final global bundle adjustment and filtering.
    Refinement,
}

impl Stage {
    /// Returns the stage's name as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Screening => "screening",
            Self::Features => "features",
            Self::Matching => "matching",
            Self::Verification => "verification",
            Self::Registration => "registration",
            Self::Refinement => "refinement",
        }
    }

    /// Returns the share of the run taken by the stages before this one and this stage's
    /// own share, which turn per-stage counts into one overall fraction.
    fn span(self) -> (f64, f64) {
        match self {
            Self::Screening => (0.0, 0.05),
            Self::Features => (0.05, 0.25),
            Self::Matching => (0.30, 0.20),
            Self::Verification => (0.50, 0.10),
            Self::Registration => (0.60, 0.30),
            Self::Refinement => (0.90, 0.10),
        }
    }
}

/// How far a run has come: `done` of `total` units of work in `stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The running stage.
    pub stage: Stage,
    /// Units finished in this stage.
    pub done: usize,
    /// Units in this stage (images, pairs, ...).
    pub total: usize,
}

impl Progress {
    /// Overall fraction of the run in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        let (start, share) = self.stage.span();
        let within = if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
        };
        start + share * within
    }
}

/// Receives progress reports; called from worker threads, so it must be `Sync`.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_grows_through_the_stages() {
        let stages = [
            Stage::Screening,
            Stage::Features,
            Stage::Matching,
            Stage::Verification,
            Stage::Registration,
            Stage::Refinement,
        ];
        let mut last = -1.0;
        for stage in stages {
            for done in 0..=4 {
                let f = Progress {
                    stage,
                    done,
                    total: 4,
                }
                .fraction();
                assert!(f >= last, "{stage:?} {done}: {f} < {last}");
                last = f;
            }
        }
        assert!((last - 1.0).abs() < 1e-12);
    }
}
