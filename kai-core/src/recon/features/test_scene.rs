//! Seeded procedural textures for the feature tests, rendered under a known similarity
//! transform and lighting change.

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One texture element, in the pixel coordinates of the reference image.
#[derive(Debug, Clone, Copy)]
enum Primitive {
    /// A Gaussian blob of standard deviation `sigma`.
    Blob {
        x: f32,
        y: f32,
        sigma: f32,
        amplitude: f32,
    },
    /// A disc whose edge ramps over about `softness` pixels.
    Disc {
        x: f32,
        y: f32,
        radius: f32,
        softness: f32,
        amplitude: f32,
    },
}

/// A similarity transform about image centres: `p' = centre_to + scale · R(angle) ·
/// (p - centre_from)`, with `angle` in radians from +x toward +y.
#[derive(Debug, Clone, Copy)]
pub(super) struct Similarity {
    pub scale: f32,
    pub angle: f32,
    pub centre_from: (f32, f32),
    pub centre_to: (f32, f32),
}

impl Similarity {
    pub fn identity() -> Self {
        Self {
            scale: 1.0,
            angle: 0.0,
            centre_from: (0.0, 0.0),
            centre_to: (0.0, 0.0),
        }
    }

    pub fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let (dx, dy) = (x - self.centre_from.0, y - self.centre_from.1);
        let (cos, sin) = (self.angle.cos(), self.angle.sin());
        (
            self.centre_to.0 + self.scale * (cos * dx - sin * dy),
            self.centre_to.1 + self.scale * (sin * dx + cos * dy),
        )
    }
}

/// A texture of blobs and discs covering `[-margin, width + margin] × [-margin, height +
/// margin]`, so that warped views have texture up to their borders.
#[derive(Debug, Clone)]
pub(super) struct Texture {
    primitives: Vec<Primitive>,
}

impl Texture {
    pub fn random(seed: u64, width: f32, height: f32, margin: f32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let area = (width + 2.0 * margin) * (height + 2.0 * margin);
        let blob_count = (area / 250.0) as usize;
        let disc_count = (area / 2500.0) as usize;
        let mut primitives = Vec::with_capacity(blob_count + disc_count);
        let position = |rng: &mut ChaCha8Rng| {
            (
                rng.random_range(-margin..width + margin),
                rng.random_range(-margin..height + margin),
            )
        };
        let signed = |rng: &mut ChaCha8Rng, low: f32, high: f32| {
            let magnitude = rng.random_range(low..high);
            if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            }
        };
        for _ in 0..blob_count {
            let (x, y) = position(&mut rng);
            primitives.push(Primitive::Blob {
                x,
                y,
                sigma: rng.random_range(2.0..10.0),
                amplitude: signed(&mut rng, 15.0, 45.0),
            });
        }
        for _ in 0..disc_count {
            let (x, y) = position(&mut rng);
            primitives.push(Primitive::Disc {
                x,
                y,
                radius: rng.random_range(5.0..30.0),
                softness: 1.5,
                amplitude: signed(&mut rng, 15.0, 40.0),
            });
        }
        Self { primitives }
    }

    /// Renders the texture seen through `transform` (reference to output pixels), then
    /// clips the scene radiance to [0, 255] and applies `gain · value + offset`. Pixel
    /// `(i, j)` samples the point `(i + 0.5, j + 0.5)`.
    pub fn render(
        &self,
        width: u32,
        height: u32,
        transform: &Similarity,
        gain: f32,
        offset: f32,
    ) -> GrayImage {
        let (w, h) = (width as usize, height as usize);
        let mut radiance = vec![120.0f32; w * h];
        for primitive in &self.primitives {
            let (centre, extent) = match *primitive {
                Primitive::Blob { x, y, sigma, .. } => ((x, y), 3.5 * sigma),
                Primitive::Disc {
                    x,
                    y,
                    radius,
                    softness,
                    ..
                } => ((x, y), radius + 3.0 * softness),
            };
            let (cx, cy) = transform.apply(centre);
            let reach = extent * transform.scale;
            let x_range = ((cx - reach).floor().max(0.0) as usize)
                ..((cx + reach).ceil().min(w as f32).max(0.0) as usize);
            let y_range = ((cy - reach).floor().max(0.0) as usize)
                ..((cy + reach).ceil().min(h as f32).max(0.0) as usize);
            for py in y_range {
                for px in x_range.clone() {
                    let dx = px as f32 + 0.5 - cx;
                    let dy = py as f32 + 0.5 - cy;
                    let distance_squared = dx * dx + dy * dy;
                    let value = match *primitive {
                        Primitive::Blob {
                            sigma, amplitude, ..
                        } => {
                            let s = sigma * transform.scale;
                            amplitude * (-distance_squared / (2.0 * s * s)).exp()
                        }
                        Primitive::Disc {
                            radius,
                            softness,
                            amplitude,
                            ..
                        } => {
                            let edge = (distance_squared.sqrt() - radius * transform.scale)
                                / (softness * transform.scale);
                            amplitude / (1.0 + edge.exp())
                        }
                    };
                    radiance[py * w + px] += value;
                }
            }
        }
        let pixels = radiance
            .into_iter()
            .map(|value| {
                (gain * value.clamp(0.0, 255.0) + offset)
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        GrayImage::from_raw(width, height, pixels).expect("buffer has width × height pixels")
    }
}
