//! Scale-space extrema of the difference of Gaussians, refined to sub-sample accuracy.
//!
//! A candidate is a sample larger (or smaller) than its 26 neighbours in space and scale.
//! A quadratic fit to the difference of Gaussians moves it to the interpolated extremum.
//! Extrema with low contrast are rejected, and so are extrema on edges, where the ratio of
//! principal curvatures is large (Lowe, "Distinctive image features from scale-invariant
//! keypoints", IJCV 2004, sections 4 and 4.1).

use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;

use super::scale_space::Plane;

/// Samples this close to the border are not searched, because the descriptor window of a
/// keypoint there would lie mostly outside the image.
pub(crate) const BORDER: usize = 5;

/// Refinement steps before a candidate that keeps moving is dropped.
const MAX_REFINE_STEPS: usize = 5;

/// A refined extremum in one octave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Extremum {
    /// Column in octave samples, with sub-sample offset.
    pub x: f32,
    /// Row in octave samples, with sub-sample offset.
    pub y: f32,
    /// Level within the octave, with fractional offset. Level `s` has blur
    /// `sigma0 · 2^(s / levels_per_octave)` in octave samples.
    pub level: f32,
    /// Absolute difference-of-Gaussians value at the interpolated extremum.
    pub response: f32,
}

/// Thresholds that decide which extrema become keypoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DetectorThresholds {
    /// Minimum absolute difference-of-Gaussians value at the refined extremum.
    pub contrast: f32,
    /// Maximum ratio of the larger to the smaller principal curvature.
    pub edge_ratio: f32,
}

/// Finds the refined extrema of one octave's difference-of-Gaussians levels `dogs`
/// (`levels_per_octave + 2` of them), in a deterministic order.
pub(crate) fn find_extrema(dogs: &[Plane], thresholds: DetectorThresholds) -> Vec<Extremum> {
    let levels = dogs.len();
    let (width, height) = (dogs[0].width, dogs[0].height);
    if levels < 3 || width <= 2 * BORDER || height <= 2 * BORDER {
        return Vec::new();
    }
    // Half the final threshold screens samples cheaply before the 26 comparisons, because
    // the interpolated value rarely exceeds the sample value by more than that.
    let screen = 0.5 * thresholds.contrast;
    let rows: Vec<(usize, usize)> = (1..levels - 1)
        .flat_map(|level| (BORDER..height - BORDER).map(move |y| (level, y)))
        .collect();
    let mut extrema: Vec<Extremum> = rows
        .par_iter()
        .flat_map_iter(|&(level, y)| {
            (BORDER..width - BORDER)
                .filter(move |&x| is_extremum(dogs, level, x, y, screen))
                .filter_map(move |x| refine(dogs, level, x, y, thresholds))
        })
        .collect();
    // Candidates whose refinement moved them to the same sample produce bit-identical
    // extrema; keep one of each.
    extrema.sort_by(|a, b| {
        a.level
            .total_cmp(&b.level)
            .then(a.y.total_cmp(&b.y))
            .then(a.x.total_cmp(&b.x))
    });
    extrema.dedup();
    extrema
}

/// Reports whether the sample at `(x, y)` of `dogs[level]` is strictly larger, or
/// strictly smaller, than all 26 neighbours and exceeds `screen` in magnitude.
fn is_extremum(dogs: &[Plane], level: usize, x: usize, y: usize, screen: f32) -> bool {
    let value = dogs[level].at(x, y);
    if value.abs() <= screen {
        return false;
    }
    let maximum = value > 0.0;
    for plane in &dogs[level - 1..=level + 1] {
        for ny in y - 1..=y + 1 {
            let row = &plane.data[ny * plane.width + x - 1..ny * plane.width + x + 2];
            for (offset, &neighbour) in row.iter().enumerate() {
                if std::ptr::eq(plane, &dogs[level]) && ny == y && offset == 1 {
                    continue;
                }
                if (maximum && neighbour >= value) || (!maximum && neighbour <= value) {
                    return false;
                }
            }
        }
    }
    true
}

/// Gradient and Hessian of the difference of Gaussians at a sample, by central
/// differences in `(x, y, level)`.
fn derivatives(dogs: &[Plane], level: usize, x: usize, y: usize) -> (Vector3<f32>, Matrix3<f32>) {
    let d = |dl: isize, dx: isize, dy: isize| {
        dogs[(level as isize + dl) as usize]
            .at((x as isize + dx) as usize, (y as isize + dy) as usize)
    };
    let centre = d(0, 0, 0);
    let gradient = Vector3::new(
        0.5 * (d(0, 1, 0) - d(0, -1, 0)),
        0.5 * (d(0, 0, 1) - d(0, 0, -1)),
        0.5 * (d(1, 0, 0) - d(-1, 0, 0)),
    );
    let dxx = d(0, 1, 0) + d(0, -1, 0) - 2.0 * centre;
    let dyy = d(0, 0, 1) + d(0, 0, -1) - 2.0 * centre;
    let dss = d(1, 0, 0) + d(-1, 0, 0) - 2.0 * centre;
    let dxy = 0.25 * (d(0, 1, 1) - d(0, -1, 1) - d(0, 1, -1) + d(0, -1, -1));
    let dxs = 0.25 * (d(1, 1, 0) - d(1, -1, 0) - d(-1, 1, 0) + d(-1, -1, 0));
    let dys = 0.25 * (d(1, 0, 1) - d(1, 0, -1) - d(-1, 0, 1) + d(-1, 0, -1));
    let hessian = Matrix3::new(dxx, dxy, dxs, dxy, dyy, dys, dxs, dys, dss);
    (gradient, hessian)
}

/// Moves a candidate to the extremum of the quadratic fit and applies the contrast and
/// edge tests. Returns `None` when the candidate is rejected.
fn refine(
    dogs: &[Plane],
    mut level: usize,
    mut x: usize,
    mut y: usize,
    thresholds: DetectorThresholds,
) -> Option<Extremum> {
    let (width, height) = (dogs[0].width, dogs[0].height);
    for _ in 0..MAX_REFINE_STEPS {
        let (gradient, hessian) = derivatives(dogs, level, x, y);
        let offset = -hessian.lu().solve(&gradient)?;
        if !offset.iter().all(|value| value.is_finite()) {
            return None;
        }
        if offset.iter().all(|value| value.abs() <= 0.5) {
            let response = dogs[level].at(x, y) + 0.5 * gradient.dot(&offset);
            if response.abs() < thresholds.contrast {
                return None;
            }
            if on_edge(&hessian, thresholds.edge_ratio) {
                return None;
            }
            return Some(Extremum {
                x: x as f32 + offset.x,
                y: y as f32 + offset.y,
                level: level as f32 + offset.z,
                response: response.abs(),
            });
        }
        // The extremum lies nearer another sample: move there and fit again.
        let step = |position: usize, delta: f32| position as isize + delta.round() as isize;
        let (next_x, next_y, next_level) =
            (step(x, offset.x), step(y, offset.y), step(level, offset.z));
        let inside = next_x >= BORDER as isize
            && next_x < (width - BORDER) as isize
            && next_y >= BORDER as isize
            && next_y < (height - BORDER) as isize
            && next_level >= 1
            && next_level < dogs.len() as isize - 1;
        if !inside {
            return None;
        }
        (x, y, level) = (next_x as usize, next_y as usize, next_level as usize);
    }
    None
}

/// Reports whether the spatial Hessian has principal curvatures whose ratio exceeds
/// `edge_ratio`, or of opposite sign: `tr² / det ≥ (r + 1)² / r`.
fn on_edge(hessian: &Matrix3<f32>, edge_ratio: f32) -> bool {
    let trace = hessian[(0, 0)] + hessian[(1, 1)];
    let determinant = hessian[(0, 0)] * hessian[(1, 1)] - hessian[(0, 1)] * hessian[(0, 1)];
    determinant <= 0.0
        || trace * trace * edge_ratio >= (edge_ratio + 1.0) * (edge_ratio + 1.0) * determinant
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::features::scale_space::{difference_of_gaussians, gaussian_levels};

    const THRESHOLDS: DetectorThresholds = DetectorThresholds {
        contrast: 0.005,
        edge_ratio: 10.0,
    };

    /// Renders a Gaussian blob of standard deviation `sigma` centred at `(cx, cy)`, in
    /// sample index coordinates.
    fn blob_plane(size: usize, cx: f32, cy: f32, sigma: f32) -> Plane {
        let mut data = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                data.push(0.2 + 0.6 * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp());
            }
        }
        Plane::new(size, size, data)
    }

    #[test]
    fn blob_gives_one_extremum_at_its_centre() {
        let (cx, cy) = (31.3, 28.6);
        let sigma = 3.0;
        let levels = gaussian_levels(blob_plane(64, cx, cy, sigma), 0.0, 1.6, 3);
        let dogs = difference_of_gaussians(&levels);
        let extrema = find_extrema(&dogs, THRESHOLDS);
        assert_eq!(extrema.len(), 1, "{extrema:?}");
        let extremum = extrema[0];
        assert!((extremum.x - cx).abs() < 0.1, "x {}", extremum.x);
        assert!((extremum.y - cy).abs() < 0.1, "y {}", extremum.y);
        // A blob of standard deviation b gives the strongest scale-normalised Laplacian
        // at scale b, and the difference of levels s and s + 1 approximates that
        // Laplacian at their geometric mean blur, half a level above s.
        let expected_level = 3.0 * (sigma / 1.6).log2() - 0.5;
        assert!(
            (extremum.level - expected_level).abs() < 0.25,
            "level {} expected {expected_level}",
            extremum.level
        );
    }

    #[test]
    fn ridge_is_rejected_as_edge() {
        let size = 64;
        let mut data = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                // A narrow profile across x and a very broad one along y make a strict
                // maximum at the centre whose curvatures differ about 100-fold.
                let (dx, dy) = (x as f32 - 32.0, y as f32 - 32.0);
                data.push(0.2 + 0.6 * (-dx * dx / 18.0 - dy * dy / 1800.0).exp());
            }
        }
        let levels = gaussian_levels(Plane::new(size, size, data), 0.0, 1.6, 3);
        let dogs = difference_of_gaussians(&levels);
        assert!(find_extrema(&dogs, THRESHOLDS).is_empty());
    }

    #[test]
    fn faint_blob_is_rejected_by_contrast() {
        let mut plane = blob_plane(64, 32.0, 32.0, 3.0);
        plane
            .data
            .iter_mut()
            .for_each(|value| *value = 0.5 + 0.01 * (*value - 0.2));
        let levels = gaussian_levels(plane, 0.0, 1.6, 3);
        let dogs = difference_of_gaussians(&levels);
        assert!(find_extrema(&dogs, THRESHOLDS).is_empty());
    }
}
