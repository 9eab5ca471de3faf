//! Progress reports from long reconstruction runs, for progress bars and job status.

use serde::{Deserialize, Serialize};

/// The stages of the reconstruction pipeline, in the order they run: structure from
/// motion (screening to refinement), then dense points, meshing, levels of detail and
/// export.
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
    /// Computing a depth map for each registered image by multi-view stereo.
    DepthMaps,
    /// Fusing the depth maps into one dense point cloud.
    Fusion,
    /// Cleaning the dense points and reconstructing a surface from them.
    Meshing,
    /// Simplifying the mesh into levels of detail.
    Simplification,
    /// Writing the model files.
    Export,
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
            Self::DepthMaps => "depth_maps",
            Self::Fusion => "fusion",
            Self::Meshing => "meshing",
            Self::Simplification => "simplification",
            Self::Export => "export",
        }
    }

    /// Every stage, in the order the pipeline runs them.
    pub const ALL: [Stage; 11] = [
        Self::Screening,
        Self::Features,
        Self::Matching,
        Self::Verification,
        Self::Registration,
        Self::Refinement,
        Self::DepthMaps,
        Self::Fusion,
        Self::Meshing,
        Self::Simplification,
        Self::Export,
    ];

    /// Returns this stage's share of a whole pipeline run, a rough measured share of the
    /// time on the generated scenes.
    fn share(self) -> f64 {
        match self {
            Self::Screening => 0.02,
            Self::Features => 0.12,
            Self::Matching => 0.12,
            Self::Verification => 0.05,
            Self::Registration => 0.15,
            Self::Refinement => 0.04,
            Self::DepthMaps => 0.25,
            Self::Fusion => 0.05,
            Self::Meshing => 0.12,
            Self::Simplification => 0.05,
            Self::Export => 0.03,
        }
    }

    /// Returns the share of a whole run taken by the stages before this one and this
    /// stage's own share. The start is summed in stage order, so one stage's end equals
    /// the next one's start exactly and the fraction never steps back.
    fn span(self) -> (f64, f64) {
        let start = Self::ALL
            .iter()
            .take_while(|&&stage| stage != self)
            .map(|stage| stage.share())
            .sum();
        (start, self.share())
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
    /// Overall fraction of a whole pipeline run in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        let (start, share) = self.stage.span();
        start + share * self.within()
    }

    /// Fraction of a run of the stages `first..=last` only, in `[0, 1]`, for commands
    /// that run part of the pipeline (structure from motion alone, for example).
    pub fn fraction_of(&self, first: Stage, last: Stage) -> f64 {
        let begin = first.span().0;
        let (last_start, last_share) = last.span();
        let end = last_start + last_share;
        ((self.fraction() - begin) / (end - begin)).clamp(0.0, 1.0)
    }

    /// Share of this stage's work that is done.
    fn within(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
        }
    }
}

/// Receives progress reports; called from worker threads, so it must be `Sync`.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_grows_through_the_stages() {
        let mut last = -1.0;
        for stage in Stage::ALL {
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

    #[test]
    fn fraction_of_spans_the_chosen_stages() {
        let at = |stage, done| Progress {
            stage,
            done,
            total: 2,
        };
        let (first, last) = (Stage::Screening, Stage::Refinement);
        assert_eq!(at(Stage::Screening, 0).fraction_of(first, last), 0.0);
        assert!((at(Stage::Refinement, 2).fraction_of(first, last) - 1.0).abs() < 1e-12);
        let middle = at(Stage::Registration, 1).fraction_of(first, last);
        assert!(middle > 0.3, "{middle}");
        assert!(middle < 1.0, "{middle}");
        assert_eq!(at(Stage::Export, 2).fraction_of(first, last), 1.0);
    }
}
