//! The initial image pair: the two views the model starts from. It is chosen for many
//! verified matches, enough triangulation angle and a geometry that a homography does not
//! explain, because a homography means a pure rotation or a planar scene (both poor
//! starts).

use super::model::Model;
use super::options::SfmOptions;
use super::refinement::{Intrinsics, filter_points, global_adjust};
use super::triangulation::{TriangulationRules, triangulate_elements};
use super::verification::VerifiedPair;
use crate::error::{Error, Result};
use crate::recon::pose::Pose;
use crate::recon::reconstruction::TrackElement;

/// Pairs whose homography explains more than this fraction of the verified matches show
/// no usable parallax. A camera that only turned gives a homography that explains every
/// match, whatever the focal length. The relative pose from a wrong focal length prior can
/// then show a spurious triangulation angle.
/// NOTE: a scene that is one plane is rejected by this rule too, although its views may
/// have parallax.
const MAX_HOMOGRAPHY_RATIO: f64 = 0.9;

/// Homography ratio at most of the preferred initial pairs.
const PREFERRED_HOMOGRAPHY_RATIO: f64 = 0.8;

/// Median triangulation angle, as a multiple of `min_triangulation_angle`, that the
/// preferred initial pairs reach; wider baselines give better-conditioned first points.
const PREFERRED_ANGLE_FACTOR: f64 = 4.0;

/// Candidate initial pairs tried at most before giving up.
const MAX_ATTEMPTS: usize = 20;

/// Iterations of the bundle adjustment of the initial pair.
const INITIAL_BA_ITERATIONS: usize = 50;

/// Lists the candidate pairs in the order they are tried. Preferred pairs (wide angle, low
/// homography ratio) come first by decreasing essential-matrix inliers, then the other
/// pairs with at least the minimum angle and at most [`MAX_HOMOGRAPHY_RATIO`].
///
/// # Errors
///
/// [`Error::InvalidInput`] on `photos` when no pair has a relative pose, or none shows
/// enough parallax (the pure rotation case).
pub(crate) fn candidate_pairs(pairs: &[VerifiedPair], options: &SfmOptions) -> Result<Vec<usize>> {
    let min_angle = options.min_triangulation_angle;
    let mut posed = 0usize;
    let mut best_angle: Option<f64> = None;
    let mut min_ratio = f64::INFINITY;
    let mut preferred = Vec::new();
    let mut acceptable = Vec::new();
    for (index, pair) in pairs.iter().enumerate() {
        let Some(geometry) = &pair.geometry else {
            continue;
        };
        if geometry.num_inliers < options.min_pair_inliers {
            continue;
        }
        posed += 1;
        min_ratio = min_ratio.min(geometry.homography_ratio);
        if geometry.homography_ratio > MAX_HOMOGRAPHY_RATIO {
            continue;
        }
        let angle = geometry.median_angle_deg;
        best_angle = Some(best_angle.map_or(angle, |best| best.max(angle)));
        if angle < min_angle {
            continue;
        }
        if angle >= PREFERRED_ANGLE_FACTOR * min_angle
            && geometry.homography_ratio <= PREFERRED_HOMOGRAPHY_RATIO
        {
            preferred.push(index);
        } else {
            acceptable.push(index);
        }
    }

    if posed == 0 {
        return Err(Error::invalid(
            "photos",
            format!(
                "no image pair has a relative pose with {} or more inliers; the photos overlap \
                 too little or show a scene without depth",
                options.min_pair_inliers
            ),
        ));
    }
    if preferred.is_empty() && acceptable.is_empty() {
        return Err(no_parallax(best_angle, min_ratio, min_angle));
    }

    let inliers = |index: &usize| {
        pairs[*index]
            .geometry
            .as_ref()
            .map_or(0, |geometry| geometry.num_inliers)
    };
    preferred.sort_by_key(|index| (std::cmp::Reverse(inliers(index)), *index));
    acceptable.sort_by_key(|index| (std::cmp::Reverse(inliers(index)), *index));
    preferred.extend(acceptable);
    preferred.truncate(MAX_ATTEMPTS);
    Ok(preferred)
}

/// Builds the error for captures without parallax. `best_angle` is the largest median
/// triangulation angle of the pairs that no homography explains, if any, and `min_ratio`
/// the smallest homography ratio of all pairs.
fn no_parallax(best_angle: Option<f64>, min_ratio: f64, min_angle: f64) -> Error {
    let evidence = match best_angle {
        Some(best) => format!("best median triangulation angle {best:.2} deg < {min_angle} deg"),
        None => format!(
            "one homography explains at least {:.0}% of the verified matches of every pair, \
             as when the camera only turns",
            100.0 * min_ratio
        ),
    };
    Error::invalid(
        "photos",
        format!(
            "no image pair has enough parallax: {evidence}; the photos seem taken from one \
             spot, move around the object"
        ),
    )
}

/// Starts `model` (which must be empty) from verified pair `pair`: registers its two
/// images, triangulates their shared tracks and bundle adjusts. Returns the reason when
/// the pair gives fewer than `options.min_registration_inliers` points.
pub(crate) fn initialize(
    model: &mut Model,
    pair: &VerifiedPair,
    options: &SfmOptions,
) -> Result<(), String> {
    let geometry = pair
        .geometry
        .as_ref()
        .ok_or_else(|| "the pair has no relative pose".to_owned())?;
    let image_a = model.register(pair.a, Pose::identity());
    let image_b = model.register(pair.b, geometry.relative_pose);

    let rules = TriangulationRules {
        min_angle_deg: options.min_triangulation_angle,
        max_error_px: options.max_reprojection_error,
    };
    for (index, &(keypoint_a, keypoint_b)) in pair.matches.iter().enumerate() {
        if !geometry.inliers[index] {
            continue;
        }
        let Some(track) = model.tracks.track_of[pair.a][keypoint_a as usize] else {
            continue;
        };
        let track = track as usize;
        if model.track_point[track].is_some() {
            continue;
        }
        let elements = [
            TrackElement {
                image: image_a,
                keypoint: keypoint_a as usize,
            },
            TrackElement {
                image: image_b,
                keypoint: keypoint_b as usize,
            },
        ];
        // Only a match that the tracks agree with counts: a track that joins this
        // keypoint of a with a different keypoint of b contradicts the match.
        if model.tracks.track_of[pair.b][keypoint_b as usize] != Some(track as u32) {
            continue;
        }
        if let Some((position, agreeing)) = triangulate_elements(model, &elements, &rules) {
            model.add_point(track, position, agreeing);
        }
    }

    let min_points = options.min_registration_inliers;
    if model.num_points() < min_points {
        return Err(format!(
            "only {} of {} verified matches triangulate ({} needed)",
            model.num_points(),
            pair.matches.len(),
            min_points
        ));
    }
    global_adjust(model, options, INITIAL_BA_ITERATIONS, Intrinsics::Fixed)
        .map_err(|err| format!("bundle adjustment failed: {err}"))?;

    filter_points(model, options, None);
    model.compact();
    if model.num_points() < min_points {
        return Err(format!(
            "only {} points are left after bundle adjustment ({} needed)",
            model.num_points(),
            min_points
        ));
    }
    Ok(())
}
