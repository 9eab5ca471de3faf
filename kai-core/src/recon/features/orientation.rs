//! Dominant gradient orientations around a keypoint (Lowe 2004, section 5).

use std::f32::consts::TAU;

use super::scale_space::{Plane, fast_angle, gaussian_profile};

/// Bins of the orientation histogram, 10 degrees each.
const BINS: usize = 36;

/// Peaks within this fraction of the highest peak give further orientations.
const PEAK_RATIO: f32 = 0.8;

/// The Gaussian weighting window is this many times the keypoint's scale.
const WINDOW_FACTOR: f32 = 1.5;

/// Returns up to `max_orientations` orientations, in radians in `[0, 2π)` measured from
/// the +x axis toward +y (clockwise on screen, since y points down), strongest first.
///
/// `(x, y)` is the keypoint in sample coordinates of `image`, the Gaussian level nearest
/// its scale, and `sigma` its scale in the same samples. Returns an empty list where the
/// window has no gradient, as on a flat image.
pub(crate) fn orientations(
    image: &Plane,
    x: f32,
    y: f32,
    sigma: f32,
    max_orientations: usize,
) -> Vec<f32> {
    let histogram = smooth(smooth(histogram(image, x, y, sigma)));
    let highest = histogram.iter().copied().fold(0.0f32, f32::max);
    if highest <= 0.0 {
        return Vec::new();
    }
    let mut peaks: Vec<(f32, f32)> = Vec::new();
    for bin in 0..BINS {
        let left = histogram[(bin + BINS - 1) % BINS];
        let centre = histogram[bin];
        let right = histogram[(bin + 1) % BINS];
        // `>=` on the right keeps one of two equal neighbouring bins, which a gradient
        // direction exactly between two bin centres produces.
        if centre > left && centre >= right && centre >= PEAK_RATIO * highest {
            // The vertex of the parabola through the three bins.
            let offset = 0.5 * (left - right) / (left - 2.0 * centre + right);
            let angle = (bin as f32 + 0.5 + offset) * TAU / BINS as f32;
            peaks.push((centre, angle.rem_euclid(TAU)));
        }
    }
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.total_cmp(&b.1)));
    peaks
        .into_iter()
        .take(max_orientations)
        .map(|(_, angle)| angle)
        .collect()
}

/// Accumulates gradient magnitudes, weighted by a Gaussian of `1.5 · sigma`, by gradient
/// orientation. Each vote is shared linearly between the two nearest bins, whose centres
/// lie at `(bin + 0.5) · 10°`.
fn histogram(image: &Plane, x: f32, y: f32, sigma: f32) -> [f32; BINS] {
    let mut histogram = [0.0f32; BINS];
    let window_sigma = WINDOW_FACTOR * sigma;
    let radius = (3.0 * window_sigma).round() as isize;
    let (centre_x, centre_y) = (x.round() as isize, y.round() as isize);
    let last_x = image.width as isize - 2;
    let last_y = image.height as isize - 2;
    let radius_squared = (radius * radius) as f32 + 0.5;
    let rows = (centre_y - radius).max(1)..=(centre_y + radius).min(last_y);
    let columns = (centre_x - radius).max(1)..=(centre_x + radius).min(last_x);
    let row_weights = gaussian_profile(rows.clone(), y, window_sigma);
    let column_weights = gaussian_profile(columns.clone(), x, window_sigma);
    for (sample_y, &row_weight) in rows.zip(&row_weights) {
        let dy = sample_y as f32 - y;
        for (sample_x, &column_weight) in columns.clone().zip(&column_weights) {
            let dx = sample_x as f32 - x;
            let distance_squared = dx * dx + dy * dy;
            if distance_squared > radius_squared {
                continue;
            }
            let (gx, gy) = image.gradient(sample_x as usize, sample_y as usize);
            let magnitude = (gx * gx + gy * gy).sqrt();
            if magnitude == 0.0 {
                continue;
            }
            let weight = row_weight * column_weight;
            let position = fast_angle(gx, gy) * BINS as f32 / TAU - 0.5;
            let lower = position.floor();
            let fraction = position - lower;
            let lower = (lower as isize).rem_euclid(BINS as isize) as usize;
            histogram[lower] += weight * magnitude * (1.0 - fraction);
            histogram[(lower + 1) % BINS] += weight * magnitude * fraction;
        }
    }
    histogram
}

/// Convolves the circular histogram with `[1/4, 1/2, 1/4]`.
fn smooth(histogram: [f32; BINS]) -> [f32; BINS] {
    std::array::from_fn(|bin| {
        0.25 * histogram[(bin + BINS - 1) % BINS]
            + 0.5 * histogram[bin]
            + 0.25 * histogram[(bin + 1) % BINS]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an image whose intensity rises along the direction `angle`, so that every
    /// gradient has that orientation.
    fn ramp(angle: f32) -> Plane {
        let size = 41;
        let (cos, sin) = (angle.cos(), angle.sin());
        let data = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as f32, (i / size) as f32);
                0.01 * (cos * x + sin * y)
            })
            .collect();
        Plane::new(size, size, data)
    }

    #[test]
    fn ramp_orientation_is_recovered() {
        for degrees in [0.0f32, 37.0, 95.0, 181.0, 300.0] {
            let expected = degrees.to_radians();
            let found = orientations(&ramp(expected), 20.0, 20.0, 3.0, 2);
            assert_eq!(found.len(), 1, "{degrees} degrees gave {found:?}");
            let error = (found[0] - expected + TAU / 2.0).rem_euclid(TAU) - TAU / 2.0;
            assert!(
                error.abs() < 2f32.to_radians(),
                "{degrees} degrees: error {error}"
            );
        }
    }

    #[test]
    fn flat_image_has_no_orientation() {
        let flat = Plane::new(21, 21, vec![0.5; 441]);
        assert!(orientations(&flat, 10.0, 10.0, 2.0, 2).is_empty());
    }
}
