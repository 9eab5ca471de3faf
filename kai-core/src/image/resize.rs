//! Separable resampling with the filters and rounding of Pillow's `Image.resize`.
//!
//! The reference models were evaluated on inputs resized by Pillow, so kai reproduces its
//! method: a convolution whose support widens by the down-scaling factor (which
//! anti-aliases), a horizontal pass then a vertical pass, and 8-bit rounding after each
//! pass as Pillow does for RGB images. Pillow computes with fixed-point weights; kai uses
//! f32, so a value may differ by one level where Pillow's sum sits on a rounding boundary.

use rayon::prelude::*;

use crate::models::Interpolation;

/// The rectangle of the source image that is resized, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crop {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Interpolation {
    /// Half-width of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Self::Bicubic => 2.0,
            Self::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            // Keys' cubic convolution with a = -0.5, as Pillow uses.
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Bilinear => (1.0 - x).max(0.0),
        }
    }
}

/// The taps of one output pixel: the first source index and one weight per source pixel.
#[derive(Debug)]
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// Computes the filter taps that map `input` source pixels onto `output` pixels.
fn taps(input: usize, output: usize, filter: Interpolation) -> Vec<Taps> {
    let scale = input as f64 / output as f64;
    let widen = scale.max(1.0);
    let support = filter.support() * widen;
    (0..output)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            // Pillow truncates `centre ± support + 0.5` towards zero to pick the window.
            let first = ((centre - support + 0.5).max(0.0)) as usize;
            let last = ((centre + support + 0.5) as usize).min(input);
            let mut weights: Vec<f64> = (first..last)
                .map(|x| filter.weight((x as f64 - centre + 0.5) / widen))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            Taps {
                first,
                weights: weights.into_iter().map(|w| w as f32).collect(),
            }
        })
        .collect()
}

fn round_u8(value: f32) -> f32 {
    value.round().clamp(0.0, 255.0)
}

/// Resizes the `crop` of an RGB image (`src`, `src_width` pixels per row, 3 bytes per
/// pixel) to `width × height`, returning interleaved RGB values on the 0–255 scale.
pub(crate) fn resize_rgb(
    src: &[u8],
    src_width: usize,
    crop: Crop,
    width: usize,
    height: usize,
    filter: Interpolation,
) -> Vec<f32> {
    let horizontal = taps(crop.width, width, filter);
    let vertical = taps(crop.height, height, filter);

    // Horizontal pass over the source rows that the vertical taps read.
    let mut rows = vec![0f32; crop.height * width * 3];
    rows.par_chunks_mut(width * 3)
        .enumerate()
        .for_each(|(y, out)| {
            let row_start = ((crop.y + y) * src_width + crop.x) * 3;
            let row = &src[row_start..row_start + crop.width * 3];
            for (px, tap) in out.chunks_exact_mut(3).zip(&horizontal) {
                let mut acc = [0f32; 3];
                for (k, &w) in tap.weights.iter().enumerate() {
                    let s = (tap.first + k) * 3;
                    acc[0] += w * f32::from(row[s]);
                    acc[1] += w * f32::from(row[s + 1]);
                    acc[2] += w * f32::from(row[s + 2]);
                }
                for (p, a) in px.iter_mut().zip(acc) {
                    *p = round_u8(a);
                }
            }
        });

    let mut out = vec![0f32; height * width * 3];
    out.par_chunks_mut(width * 3)
        .zip(vertical.par_iter())
        .for_each(|(out_row, tap)| {
            for (k, &w) in tap.weights.iter().enumerate() {
                let y = tap.first + k;
                let src_row = &rows[y * width * 3..(y + 1) * width * 3];
                for (o, &v) in out_row.iter_mut().zip(src_row) {
                    *o += w * v;
                }
            }
            out_row.iter_mut().for_each(|v| *v = round_u8(*v));
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_stay_in_bounds() {
        for (input, output) in [(451, 224), (224, 224), (100, 300), (7, 3)] {
            for filter in [Interpolation::Bicubic, Interpolation::Bilinear] {
                for tap in taps(input, output, filter) {
                    let sum: f32 = tap.weights.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{input}->{output}: {sum}");
                    assert!(tap.first + tap.weights.len() <= input);
                }
            }
        }
    }

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|v| (v * 7 % 256) as u8).collect();
        let crop = Crop {
            x: 0,
            y: 0,
            width: 4,
            height: 3,
        };
        let out = resize_rgb(&src, 4, crop, 4, 3, Interpolation::Bicubic);
        let expected: Vec<f32> = src.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![200u8; 50 * 40 * 3];
        let crop = Crop {
            x: 5,
            y: 2,
            width: 40,
            height: 30,
        };
        let out = resize_rgb(&src, 50, crop, 13, 9, Interpolation::Bicubic);
        assert!(out.iter().all(|&v| v == 200.0));
    }
}
