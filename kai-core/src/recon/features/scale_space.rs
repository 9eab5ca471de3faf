//! Gaussian scale space and its difference-of-Gaussians levels.
//!
//! Octave `o` samples the input every `2^o` pixels: sample `(c, r)` of an octave lies at
//! input pixel index `(c · 2^o, r · 2^o)`, whose centre has pixel coordinates
//! `(c · 2^o + 0.5, r · 2^o + 0.5)`. Octave -1 doubles the input by linear interpolation,
//! and every later octave keeps the even samples of the octave before it, so this mapping
//! holds for all of them. Blur is measured as a Gaussian standard deviation in the
//! octave's own sample spacing.

use rayon::prelude::*;

/// A single-channel `f32` image stored row by row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// Wraps row-major samples; `data.len()` must equal `width * height`.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), width * height);
        Self {
            width,
            height,
            data,
        }
    }

    /// Returns the sample in column `x` and row `y`.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Returns the central differences `(I(x+1) - I(x-1), I(y+1) - I(y-1))` at an interior
    /// sample: twice the gradient, which only orientation and normalised magnitudes use.
    #[inline]
    pub fn gradient(&self, x: usize, y: usize) -> (f32, f32) {
        let index = y * self.width + x;
        let dx = self.data[index + 1] - self.data[index - 1];
        let dy = self.data[index + self.width] - self.data[index - self.width];
        (dx, dy)
    }
}

/// Returns the angle of the vector `(x, y)` in radians in `[0, 2π)`, from +x toward +y,
/// within 0.002 radians (0.11 degrees), and 0 for the zero vector.
///
/// A cubic approximation of the arctangent on [0, 1], reflected into each octant,
/// replaces `f32::atan2` in the per-sample loops of orientation and descriptor. Their
/// histogram bins are 10 and 45 degrees wide, far coarser than the error.
pub(crate) fn fast_angle(x: f32, y: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI, TAU};
    let (abs_x, abs_y) = (x.abs(), y.abs());
    let larger = abs_x.max(abs_y);
    if larger == 0.0 {
        return 0.0;
    }
    let ratio = abs_x.min(abs_y) / larger;
    // atan(z) ≈ π/4 · z + z · (1 − z) · (0.2447 + 0.0663 · z) on [0, 1].
    let mut angle = FRAC_PI_4 * ratio + ratio * (1.0 - ratio) * (0.2447 + 0.0663 * ratio);
    if abs_y > abs_x {
        angle = FRAC_PI_2 - angle;
    }
    if x < 0.0 {
        angle = PI - angle;
    }
    if y < 0.0 {
        angle = TAU - angle;
    }
    if angle >= TAU { 0.0 } else { angle }
}

/// Returns `exp(-(p - centre)² / (2 sigma²))` for the integer positions `p` in `range`.
///
/// An isotropic Gaussian window is the product of such row and column profiles, which
/// saves an exponential per sample.
pub(crate) fn gaussian_profile(
    range: std::ops::RangeInclusive<isize>,
    centre: f32,
    sigma: f32,
) -> Vec<f32> {
    let denominator = 2.0 * sigma * sigma;
    range
        .map(|position| {
            let offset = position as f32 - centre;
            (-offset * offset / denominator).exp()
        })
        .collect()
}

/// Returns the normalised, symmetric Gaussian kernel of standard deviation `sigma`,
/// truncated at four standard deviations.
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (4.0 * sigma).ceil().max(1.0) as usize;
    let mut kernel: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let offset = i as f32 - radius as f32;
            (-offset * offset / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|weight| *weight /= sum);
    kernel
}

/// Convolves `source` with a Gaussian of standard deviation `sigma` (in samples),
/// repeating the edge samples beyond the border.
pub(crate) fn blur(source: &Plane, sigma: f32) -> Plane {
    let kernel = gaussian_kernel(sigma);
    let radius = kernel.len() / 2;
    let (width, height) = (source.width, source.height);

    // Horizontal pass. Each pair of symmetric taps adds two shifted copies of the padded
    // row, a loop the compiler vectorises, which a per-sample dot product is not.
    let mut horizontal = vec![0.0f32; width * height];
    horizontal
        .par_chunks_mut(width)
        .zip(source.data.par_chunks(width))
        .for_each(|(output, row)| {
            let mut padded = Vec::with_capacity(width + 2 * radius);
            padded.extend(std::iter::repeat_n(row[0], radius));
            padded.extend_from_slice(row);
            padded.extend(std::iter::repeat_n(row[width - 1], radius));
            let shifted = |offset: isize| {
                let start = (radius as isize + offset) as usize;
                &padded[start..start + width]
            };
            add_symmetric_taps(output, &kernel, shifted);
        });

    // Vertical pass, row by row for the same reason.
    let mut output = vec![0.0f32; width * height];
    output
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(y, out_row)| {
            let shifted = |offset: isize| {
                let source_y = (y as isize + offset).clamp(0, height as isize - 1) as usize;
                &horizontal[source_y * width..(source_y + 1) * width]
            };
            add_symmetric_taps(out_row, &kernel, shifted);
        });
    Plane::new(width, height, output)
}

/// Sets `output` to the sum over taps `k` of `kernel[radius + k] · shifted(k)`, adding
/// the two taps of equal weight together first.
fn add_symmetric_taps<'a>(
    output: &mut [f32],
    kernel: &[f32],
    shifted: impl Fn(isize) -> &'a [f32],
) {
    let radius = kernel.len() / 2;
    for (out, &value) in output.iter_mut().zip(shifted(0)) {
        *out = kernel[radius] * value;
    }
    for offset in 1..=radius {
        let weight = kernel[radius + offset];
        let before = shifted(-(offset as isize));
        let after = shifted(offset as isize);
        for ((out, &first), &second) in output.iter_mut().zip(before).zip(after) {
            *out += weight * (first + second);
        }
    }
}

/// Keeps every second sample in both directions, starting with the first.
pub(crate) fn downsample(source: &Plane) -> Plane {
    let width = source.width / 2;
    let height = source.height / 2;
    let mut data = vec![0.0f32; width * height];
    data.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let source_row = &source.data[2 * y * source.width..];
            for (x, out) in row.iter_mut().enumerate() {
                *out = source_row[2 * x];
            }
        });
    Plane::new(width, height, data)
}

/// Doubles the sampling density by linear interpolation: even output samples copy the
/// input and odd ones average their two neighbours, repeating the last input sample at
/// the right and bottom edges.
pub(crate) fn upsample(source: &Plane) -> Plane {
    let (width, height) = (source.width, source.height);
    let output_width = 2 * width;
    let mut data = vec![0.0f32; output_width * 2 * height];
    data.par_chunks_mut(output_width)
        .enumerate()
        .for_each(|(output_y, row)| {
            let y0 = output_y / 2;
            let y1 = if output_y % 2 == 1 {
                (y0 + 1).min(height - 1)
            } else {
                y0
            };
            let row0 = &source.data[y0 * width..(y0 + 1) * width];
            let row1 = &source.data[y1 * width..(y1 + 1) * width];
            for (x, out) in row.iter_mut().enumerate() {
                let x0 = x / 2;
                let x1 = if x % 2 == 1 {
                    (x0 + 1).min(width - 1)
                } else {
                    x0
                };
                *out = 0.25 * (row0[x0] + row0[x1] + row1[x0] + row1[x1]);
            }
        });
    Plane::new(output_width, 2 * height, data)
}

/// Builds the `levels_per_octave + 3` Gaussian levels of one octave from `base`, whose
/// blur is `base_sigma`. Level `s` has blur `sigma0 · 2^(s / levels_per_octave)`.
pub(crate) fn gaussian_levels(
    base: Plane,
    base_sigma: f32,
    sigma0: f32,
    levels_per_octave: usize,
) -> Vec<Plane> {
    let level_sigma = |level: usize| sigma0 * 2f32.powf(level as f32 / levels_per_octave as f32);
    let mut levels = Vec::with_capacity(levels_per_octave + 3);
    // Blurs compose as the root of the sum of squares, so each step adds only the
    // difference between the target and the current blur.
    let first = if base_sigma < sigma0 {
        blur(&base, (sigma0 * sigma0 - base_sigma * base_sigma).sqrt())
    } else {
        base
    };
    levels.push(first);
    for level in 1..levels_per_octave + 3 {
        let previous = level_sigma(level - 1);
        let target = level_sigma(level);
        let increment = (target * target - previous * previous).sqrt();
        let next = blur(&levels[level - 1], increment);
        levels.push(next);
    }
    levels
}

/// Returns the differences of adjacent Gaussian levels, `levels[s + 1] - levels[s]`.
pub(crate) fn difference_of_gaussians(levels: &[Plane]) -> Vec<Plane> {
    levels
        .par_windows(2)
        .map(|pair| {
            let data = pair[1]
                .data
                .iter()
                .zip(&pair[0].data)
                .map(|(upper, lower)| upper - lower)
                .collect();
            Plane::new(pair[0].width, pair[0].height, data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let kernel = gaussian_kernel(1.6);
        let sum: f32 = kernel.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "sum {sum}");
        let count = kernel.len();
        for i in 0..count / 2 {
            assert_eq!(kernel[i], kernel[count - 1 - i]);
        }
    }

    #[test]
    fn fast_angle_is_close_to_atan2() {
        use std::f32::consts::TAU;
        let mut largest_error = 0.0f32;
        for step in 0..3600 {
            let angle = step as f32 * TAU / 3600.0;
            for length in [1e-3f32, 0.7, 250.0] {
                let (x, y) = (length * angle.cos(), length * angle.sin());
                let expected = y.atan2(x).rem_euclid(TAU);
                let found = fast_angle(x, y);
                assert!((0.0..TAU).contains(&found), "angle {found}");
                let difference = (found - expected).abs();
                largest_error = largest_error.max(difference.min(TAU - difference));
            }
        }
        assert!(largest_error < 0.002, "largest error {largest_error}");
        assert_eq!(fast_angle(0.0, 0.0), 0.0);
    }

    #[test]
    fn blur_keeps_constant_image() {
        let plane = Plane::new(7, 5, vec![0.25; 35]);
        let blurred = blur(&plane, 2.0);
        for value in blurred.data {
            assert!((value - 0.25).abs() < 1e-6, "value {value}");
        }
    }

    #[test]
    fn blur_of_impulse_has_expected_variance() {
        let size = 41;
        let mut data = vec![0.0; size * size];
        data[20 * size + 20] = 1.0;
        let blurred = blur(&Plane::new(size, size, data), 2.5);
        // The row through the centre is the 1-D profile times a constant.
        let row: Vec<f32> = (0..size).map(|x| blurred.at(x, 20)).collect();
        let total: f32 = row.iter().sum();
        let moment: f32 = row
            .iter()
            .enumerate()
            .map(|(x, value)| (x as f32 - 20.0).powi(2) * value)
            .sum();
        let variance = moment / total;
        assert!((variance - 6.25).abs() < 0.05, "variance {variance}");
    }

    #[test]
    fn upsample_then_downsample_restores_samples() {
        let data: Vec<f32> = (0..20).map(|i| i as f32 * 0.1).collect();
        let plane = Plane::new(5, 4, data);
        let up = upsample(&plane);
        assert_eq!((up.width, up.height), (10, 8));
        assert!((up.at(1, 0) - 0.05).abs() < 1e-6);
        assert_eq!(downsample(&up), plane);
    }

    #[test]
    fn levels_have_expected_count_and_size() {
        let plane = Plane::new(16, 12, vec![0.5; 192]);
        let levels = gaussian_levels(plane, 0.5, 1.6, 3);
        assert_eq!(levels.len(), 6);
        let dogs = difference_of_gaussians(&levels);
        assert_eq!(dogs.len(), 5);
        assert!(dogs.iter().all(|dog| dog.width == 16 && dog.height == 12));
        assert!(
            dogs.iter()
                .flat_map(|dog| &dog.data)
                .all(|&v| v.abs() < 1e-6)
        );
    }
}
