//! Triangulation of tracks into 3D points, robust to wrong observations in a track, and
//! the completion of existing points with observations that fit them.

use nalgebra::{Vector2, Vector3};

use super::model::Model;
use crate::recon::geometry::{
    triangulate_multi_view, triangulate_two_view, triangulation_angle_deg,
};
use crate::recon::pose::Pose;
use crate::recon::reconstruction::TrackElement;

/// Most view pairs tried as two-view hypotheses for one track; longer tracks use an
/// evenly spread subset of their pairs.
const MAX_PAIR_HYPOTHESES: usize = 45;

/// Acceptance rules of a triangulated point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TriangulationRules {
    /// Minimum triangulation angle over the point's observations, in degrees.
    pub min_angle_deg: f64,
    /// Maximum reprojection error of every kept observation, in pixels.
    pub max_error_px: f64,
}

/// Triangulates a point from `elements` (registered observations of one track).
/// Returns the position and the observations that agree with it, or `None` when fewer
/// than two agree or their triangulation angle is too small.
///
/// All observations are tried together first. When one of them disagrees, every view
/// pair (up to [`MAX_PAIR_HYPOTHESES`]) with enough angle proposes a point, the one most
/// observations agree with wins, and it is re-triangulated from those observations.
pub(crate) fn triangulate_elements(
    model: &Model,
    elements: &[TrackElement],
    rules: &TriangulationRules,
) -> Option<(Vector3<f64>, Vec<TrackElement>)> {
    if elements.len() < 2 {
        return None;
    }
    let poses: Vec<Pose> = elements
        .iter()
        .map(|e| model.rec.images[e.image].pose)
        .collect();
    let observations: Vec<Vector2<f64>> = elements
        .iter()
        .map(|e| model.normalized(e.image, e.keypoint))
        .collect();

    if let Some(position) = triangulate_multi_view(&poses, &observations) {
        let agreeing = agreeing_elements(model, &position, elements, rules);
        if agreeing.len() == elements.len()
            && model.max_angle_deg(&position, elements) >= rules.min_angle_deg
        {
            return Some((position, agreeing));
        }
        if elements.len() == 2 {
            return None;
        }
    }

    let pairs = view_pairs(elements.len());
    let mut best: Option<(Vector3<f64>, usize)> = None;
    for (i, j) in pairs {
        let Some(position) =
            triangulate_two_view(&poses[i], &poses[j], &observations[i], &observations[j])
        else {
            continue;
        };
        if triangulation_angle_deg(&poses[i].center(), &poses[j].center(), &position)
            < rules.min_angle_deg
        {
            continue;
        }
        let count = agreeing_elements(model, &position, elements, rules).len();
        if count >= 2 && best.is_none_or(|(_, best_count)| count > best_count) {
            best = Some((position, count));
        }
    }
    let (hypothesis, _) = best?;
    let agreeing = agreeing_elements(model, &hypothesis, elements, rules);
    let refined = refit(model, &agreeing).and_then(|position| {
        let kept = agreeing_elements(model, &position, &agreeing, rules);
        (kept.len() == agreeing.len()).then_some(position)
    });
    let position = refined.unwrap_or(hypothesis);
    if model.max_angle_deg(&position, &agreeing) < rules.min_angle_deg {
        return None;
    }
    Some((position, agreeing))
}

/// Triangulates `elements` together with the linear multi-view method.
fn refit(model: &Model, elements: &[TrackElement]) -> Option<Vector3<f64>> {
    let poses: Vec<Pose> = elements
        .iter()
        .map(|e| model.rec.images[e.image].pose)
        .collect();
    let observations: Vec<Vector2<f64>> = elements
        .iter()
        .map(|e| model.normalized(e.image, e.keypoint))
        .collect();
    triangulate_multi_view(&poses, &observations)
}

/// Returns the elements whose observation of `position` is in front of the camera and
/// within the reprojection error limit.
fn agreeing_elements(
    model: &Model,
    position: &Vector3<f64>,
    elements: &[TrackElement],
    rules: &TriangulationRules,
) -> Vec<TrackElement> {
    elements
        .iter()
        .copied()
        .filter(|&e| {
            model
                .error_px(position, e)
                .is_some_and(|error| error <= rules.max_error_px)
        })
        .collect()
}

/// View pairs `(i, j)`, `i < j < n`, at most [`MAX_PAIR_HYPOTHESES`] spread evenly over
/// all of them.
fn view_pairs(n: usize) -> Vec<(usize, usize)> {
    let all: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    if all.len() <= MAX_PAIR_HYPOTHESES {
        return all;
    }
    let step = all.len() as f64 / MAX_PAIR_HYPOTHESES as f64;
    (0..MAX_PAIR_HYPOTHESES)
        .map(|k| all[(k as f64 * step) as usize])
        .collect()
}

/// Triangulates every track of registered image `image` that has no point yet; returns
/// the number of points added.
pub(crate) fn triangulate_image(
    model: &mut Model,
    image: usize,
    rules: &TriangulationRules,
) -> usize {
    let photo = model.source[image];
    let mut added = 0;
    for keypoint in 0..model.rec.images[image].keypoints.len() {
        let Some(track) = model.tracks.track_of[photo][keypoint] else {
            continue;
        };
        let track = track as usize;
        if model.track_point[track].is_some() {
            continue;
        }
        let elements = model.registered_elements(track);
        if let Some((position, agreeing)) = triangulate_elements(model, &elements, rules) {
            model.add_point(track, position, agreeing);
            added += 1;
        }
    }
    added
}

/// Triangulates every track with two or more registered observations and no point, and
/// adds to existing points the registered observations of their track that fit them.
/// Returns `(points added, observations added)`.
pub(crate) fn retriangulate(model: &mut Model, rules: &TriangulationRules) -> (usize, usize) {
    let mut added_points = 0;
    let mut added_observations = 0;
    for track in 0..model.tracks.len() {
        let elements = model.registered_elements(track);
        if elements.len() < 2 {
            continue;
        }
        match model.track_point[track] {
            None => {
                if let Some((position, agreeing)) = triangulate_elements(model, &elements, rules) {
                    model.add_point(track, position, agreeing);
                    added_points += 1;
                }
            }
            Some(point) => {
                if model.rec.points[point].track.len() == elements.len() {
                    continue;
                }
                let position = model.rec.points[point].position;
                for element in elements {
                    let present =
                        model.rec.images[element.image].point_ids[element.keypoint] == Some(point);
                    if present {
                        continue;
                    }
                    if model
                        .error_px(&position, element)
                        .is_some_and(|error| error <= rules.max_error_px)
                    {
                        model.add_observation(point, element);
                        added_observations += 1;
                    }
                }
            }
        }
    }
    (added_points, added_observations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_pairs_cap_and_cover() {
        assert_eq!(view_pairs(3), vec![(0, 1), (0, 2), (1, 2)]);
        let many = view_pairs(30);
        assert_eq!(many.len(), MAX_PAIR_HYPOTHESES);
        assert!(many.iter().all(|&(i, j)| i < j));
        assert!(many.iter().all(|&(_, j)| j < 30));
    }
}
