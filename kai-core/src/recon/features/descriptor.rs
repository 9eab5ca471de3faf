//! The 128-dimensional gradient-histogram descriptor (Lowe 2004, section 6).
//!
//! The window around a keypoint, rotated to its orientation, is divided into 4 × 4 cells
//! of `3 · sigma` samples each. Every cell contains an 8-bin histogram of gradient
//! orientations relative to the keypoint's orientation, weighted by gradient magnitude and
//! a Gaussian of half the window width. Votes are shared by trilinear interpolation across
//! neighbouring cells and orientation bins, so the descriptor changes smoothly as the
//! keypoint moves.

use std::f32::consts::{SQRT_2, TAU};

use super::scale_space::{Plane, fast_angle, gaussian_profile};

/// Cells along each side of the window.
const CELLS: usize = 4;

/// Orientation bins per cell.
const ORIENTATION_BINS: usize = 8;

/// Descriptor length.
pub(crate) const LENGTH: usize = CELLS * CELLS * ORIENTATION_BINS;

/// Cell width in units of the keypoint scale.
const CELL_FACTOR: f32 = 3.0;

/// Entries of the unit-length descriptor are clipped here, so that a few large gradients,
/// as from a lighting change that is not affine, do not dominate it.
const CLIP: f32 = 0.2;

/// Unit-length entries are multiplied by this before rounding to `u8`. An entry saturates
/// at 255 above 0.498, which after clipping at 0.2 needs a histogram with nearly all its
/// weight in fewer than 4 bins.
pub(crate) const QUANTISATION_SCALE: f32 = 512.0;

/// Computes the descriptor of a keypoint at `(x, y)` with scale `sigma` and orientation
/// `angle` (radians, from +x toward +y), all in sample coordinates of `image`.
///
/// With `root_sift` the clipped descriptor is L1-normalised and square-rooted
/// (Arandjelović and Zisserman, "Three things everyone should know to improve object
/// retrieval", CVPR 2012), so Euclidean distance between descriptors compares them by the
/// Hellinger kernel. Both variants have unit L2 norm before quantisation to
/// `round(512 · value)`, saturating at 255. A window without gradient gives all zeros.
pub(crate) fn describe(
    image: &Plane,
    x: f32,
    y: f32,
    sigma: f32,
    angle: f32,
    root_sift: bool,
) -> [u8; LENGTH] {
    let mut histogram = accumulate(image, x, y, sigma, angle);
    normalise(&mut histogram, root_sift);
    histogram.map(|value| (value * QUANTISATION_SCALE).round().min(255.0) as u8)
}

/// Fills the 4 × 4 × 8 histogram, indexed `(row · 4 + column) · 8 + orientation`.
fn accumulate(image: &Plane, x: f32, y: f32, sigma: f32, angle: f32) -> [f32; LENGTH] {
    let mut histogram = [0.0f32; LENGTH];
    let cell = CELL_FACTOR * sigma;
    // Half the diagonal of the rotated window, one cell wider for the interpolation.
    let radius = (cell * SQRT_2 * (CELLS as f32 + 1.0) * 0.5).round() as isize;
    let (cos, sin) = (angle.cos(), angle.sin());
    let (centre_x, centre_y) = (x.round() as isize, y.round() as isize);
    let last_x = image.width as isize - 2;
    let last_y = image.height as isize - 2;
    let half = CELLS as f32 / 2.0;
    let rows = (centre_y - radius).max(1)..=(centre_y + radius).min(last_y);
    let columns = (centre_x - radius).max(1)..=(centre_x + radius).min(last_x);
    // The weighting Gaussian's standard deviation is half the window width.
    let row_weights = gaussian_profile(rows.clone(), y, half * cell);
    let column_weights = gaussian_profile(columns.clone(), x, half * cell);

    for (sample_y, &row_weight) in rows.zip(&row_weights) {
        let dy = sample_y as f32 - y;
        for (sample_x, &column_weight) in columns.clone().zip(&column_weights) {
            let dx = sample_x as f32 - x;
            // Offsets in the keypoint's frame, in cells: u along the orientation, v across.
            let u = (cos * dx + sin * dy) / cell;
            let v = (-sin * dx + cos * dy) / cell;
            // Cell centres sit at -1.5, -0.5, 0.5 and 1.5 cells.
            let column = u + half - 0.5;
            let row = v + half - 0.5;
            if column <= -1.0 || column >= CELLS as f32 || row <= -1.0 || row >= CELLS as f32 {
                continue;
            }
            let (gx, gy) = image.gradient(sample_x as usize, sample_y as usize);
            let magnitude = (gx * gx + gy * gy).sqrt();
            if magnitude == 0.0 {
                continue;
            }
            let weight = row_weight * column_weight * magnitude;
            let relative = (fast_angle(gx, gy) - angle).rem_euclid(TAU);
            let orientation = relative * ORIENTATION_BINS as f32 / TAU;
            add_trilinear(&mut histogram, row, column, orientation, weight);
        }
    }
    histogram
}

/// Shares `weight` among the up to eight bins around the continuous bin position
/// `(row, column, orientation)`. Orientation wraps around, rows and columns do not.
fn add_trilinear(
    histogram: &mut [f32; LENGTH],
    row: f32,
    column: f32,
    orientation: f32,
    weight: f32,
) {
    let (row0, column0, orientation0) = (row.floor(), column.floor(), orientation.floor());
    let (row_fraction, column_fraction, orientation_fraction) =
        (row - row0, column - column0, orientation - orientation0);
    for (row_step, row_weight) in [(0, 1.0 - row_fraction), (1, row_fraction)] {
        let cell_row = row0 as isize + row_step;
        if !(0..CELLS as isize).contains(&cell_row) {
            continue;
        }
        for (column_step, column_weight) in [(0, 1.0 - column_fraction), (1, column_fraction)] {
            let cell_column = column0 as isize + column_step;
            if !(0..CELLS as isize).contains(&cell_column) {
                continue;
            }
            let cell_start = (cell_row as usize * CELLS + cell_column as usize) * ORIENTATION_BINS;
            for (bin_step, bin_weight) in
                [(0, 1.0 - orientation_fraction), (1, orientation_fraction)]
            {
                let bin = (orientation0 as usize + bin_step) % ORIENTATION_BINS;
                histogram[cell_start + bin] += weight * row_weight * column_weight * bin_weight;
            }
        }
    }
}

/// Normalises to unit length, clips at [`CLIP`] and normalises again. With `root_sift` it
/// then L1-normalises and takes square roots. A zero histogram stays zero.
fn normalise(histogram: &mut [f32; LENGTH], root_sift: bool) {
    scale_to_unit_l2(histogram);
    histogram
        .iter_mut()
        .for_each(|value| *value = value.min(CLIP));
    scale_to_unit_l2(histogram);
    if root_sift {
        let sum: f32 = histogram.iter().sum();
        if sum > 0.0 {
            histogram
                .iter_mut()
                .for_each(|value| *value = (*value / sum).sqrt());
        }
    }
}

fn scale_to_unit_l2(histogram: &mut [f32; LENGTH]) {
    let norm = histogram
        .iter()
        .map(|value| value * value)
        .sum::<f32>()
        .sqrt();
    if norm > 0.0 {
        histogram.iter_mut().for_each(|value| *value /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a sum of sinusoids, with gradients in many directions, under a lighting
    /// change.
    fn pattern(gain: f32, offset: f32) -> Plane {
        let size = 64;
        let data = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as f32, (i / size) as f32);
                let value = (0.31 * x).sin() + (0.17 * y + 0.05 * x).cos() + (0.23 * (x - y)).sin();
                gain * (0.5 + 0.1 * value) + offset
            })
            .collect();
        Plane::new(size, size, data)
    }

    fn unit_norm(descriptor: &[u8; LENGTH]) -> f32 {
        let squared: f32 = descriptor.iter().map(|&v| (v as f32).powi(2)).sum();
        squared.sqrt() / QUANTISATION_SCALE
    }

    #[test]
    fn descriptor_has_unit_norm() {
        for root_sift in [false, true] {
            let descriptor = describe(&pattern(1.0, 0.0), 32.0, 32.0, 2.0, 0.4, root_sift);
            let norm = unit_norm(&descriptor);
            assert!(
                (norm - 1.0).abs() < 0.02,
                "root_sift {root_sift}: norm {norm}"
            );
        }
    }

    #[test]
    fn descriptor_ignores_gain_and_offset() {
        let reference = describe(&pattern(1.0, 0.0), 32.0, 32.0, 2.0, 0.4, false);
        let changed = describe(&pattern(0.6, 0.12), 32.0, 32.0, 2.0, 0.4, false);
        let largest_difference = reference
            .iter()
            .zip(&changed)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(
            largest_difference <= Some(1),
            "difference {largest_difference:?}"
        );
    }

    #[test]
    fn flat_window_gives_zero_descriptor() {
        let flat = Plane::new(32, 32, vec![0.3; 1024]);
        assert_eq!(describe(&flat, 16.0, 16.0, 2.0, 0.0, true), [0u8; LENGTH]);
    }

    #[test]
    fn clipped_entries_stay_below_saturation() {
        // A single strong edge concentrates the gradient in few bins, the case that
        // clipping is for.
        let size = 48;
        let data = (0..size * size)
            .map(|i| if i % size < 24 { 0.0 } else { 1.0 })
            .collect();
        let descriptor = describe(&Plane::new(size, size, data), 24.0, 24.0, 2.0, 0.0, false);
        assert!(descriptor.iter().all(|&v| v < 255), "{descriptor:?}");
    }
}
