//! Source-image selection and depth ranges for each reference image, both taken from the
//! sparse points of the reconstruction.

use nalgebra::Vector3;

use crate::recon::reconstruction::Reconstruction;

/// Pairs whose median triangulation angle over shared points is below this (degrees) have
/// too short a baseline to measure depth.
const MIN_TRIANGULATION_DEGREES: f64 = 1.0;
/// Triangulation angle (degrees) from which a shared point counts fully; smaller angles
/// count less, since depth precision grows with the angle.
const GOOD_TRIANGULATION_DEGREES: f64 = 5.0;
/// Pairs whose median angle exceeds this (degrees) look too differently at the surface
/// for window matching to work.
const MAX_TRIANGULATION_DEGREES: f64 = 60.0;
/// Minimum number of sparse points an image observes for a depth range.
const MIN_POINTS_FOR_RANGE: usize = 8;
/// Percentiles of the sparse depths that bound the search, before widening.
const RANGE_PERCENTILES: (f64, f64) = (0.02, 0.98);
/// The depth range is widened by this share of each bound, since the sparse points
/// sample the surface only thinly.
const RANGE_MARGIN: f64 = 0.2;

/// Lists the sparse points each image observes, from the point tracks.
pub(super) fn visible_points(reconstruction: &Reconstruction) -> Vec<Vec<usize>> {
    let mut visible = vec![Vec::new(); reconstruction.images.len()];
    for (index, point) in reconstruction.points.iter().enumerate() {
        for element in &point.track {
            if let Some(list) = visible.get_mut(element.image)
                && list.last() != Some(&index)
            {
                list.push(index);
            }
        }
    }
    visible
}

/// Picks up to `count` source images for `reference`, best first. Each candidate scores the
/// sum over shared points of a weight that grows with the triangulation angle up to
/// [`GOOD_TRIANGULATION_DEGREES`]; candidates with a median angle outside
/// [`MIN_TRIANGULATION_DEGREES`]..[`MAX_TRIANGULATION_DEGREES`] are skipped.
pub(super) fn select_sources(
    reconstruction: &Reconstruction,
    visible: &[Vec<usize>],
    reference: usize,
    count: usize,
) -> Vec<usize> {
    let centers: Vec<Vector3<f64>> = reconstruction
        .images
        .iter()
        .map(|image| image.pose.center())
        .collect();
    let mut shared: Vec<Vec<f64>> = vec![Vec::new(); centers.len()];
    for &point_index in &visible[reference] {
        let point = &reconstruction.points[point_index];
        let to_reference = (centers[reference] - point.position).normalize();
        let mut seen_by = point
            .track
            .iter()
            .map(|element| element.image)
            .collect::<Vec<_>>();
        seen_by.sort_unstable();
        seen_by.dedup();
        for other in seen_by {
            if other == reference || other >= centers.len() {
                continue;
            }
            let to_other = (centers[other] - point.position).normalize();
            let angle = to_reference.dot(&to_other).clamp(-1.0, 1.0).acos();
            shared[other].push(angle.to_degrees());
        }
    }

    let mut scored: Vec<(usize, f64)> = shared
        .into_iter()
        .enumerate()
        .filter_map(|(other, mut angles)| {
            if angles.is_empty() {
                return None;
            }
            angles.sort_unstable_by(f64::total_cmp);
            let median = angles[angles.len() / 2];
            if !(MIN_TRIANGULATION_DEGREES..=MAX_TRIANGULATION_DEGREES).contains(&median) {
                return None;
            }
            let score = angles
                .iter()
                .map(|a| (a / GOOD_TRIANGULATION_DEGREES).min(1.0).powi(2))
                .sum::<f64>();
            Some((other, score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(count).map(|(i, _)| i).collect()
}

/// Returns the `(near, far)` depths to search for `reference`: percentiles of the depths of
/// the sparse points it observes, widened. `None` when it observes too few in front of it.
pub(super) fn depth_range(
    reconstruction: &Reconstruction,
    visible: &[Vec<usize>],
    reference: usize,
) -> Option<(f64, f64)> {
    let pose = &reconstruction.images[reference].pose;
    let mut depths: Vec<f64> = visible[reference]
        .iter()
        .map(|&i| pose.transform(&reconstruction.points[i].position).z)
        .filter(|z| z.is_finite() && *z > 0.0)
        .collect();
    if depths.len() < MIN_POINTS_FOR_RANGE {
        return None;
    }
    depths.sort_unstable_by(f64::total_cmp);
    let at = |share: f64| depths[((depths.len() - 1) as f64 * share).round() as usize];
    let near = at(RANGE_PERCENTILES.0) * (1.0 - RANGE_MARGIN);
    let far = at(RANGE_PERCENTILES.1) * (1.0 + RANGE_MARGIN);
    (near > 0.0 && far > near).then_some((near, far))
}
