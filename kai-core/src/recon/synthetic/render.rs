//! Ray casting of one image: supersampled pixels, Lambertian shading under a directional
//! light, per-image exposure, optional sensor noise.

use image::RgbImage;
use nalgebra::{Matrix3, Vector2, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::texture::{cell_hash, unit};
use super::world::World;
use crate::recon::camera::Camera;
use crate::recon::pose::Pose;

/// Radiance of rays that hit nothing (linear RGB): a flat, featureless sky.
const SKY: [f64; 3] = [0.62, 0.70, 0.80];
/// Share of the light that reaches every surface whatever its orientation.
const AMBIENT: f64 = 0.35;
/// The light direction (towards the light) when lighting does not vary.
const DEFAULT_LIGHT: [f64; 3] = [0.35, -0.45, 0.82];

/// The lighting of one image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lighting {
    /// Unit vector towards the light, world coordinates.
    pub direction: Vector3<f64>,
    /// Exposure multiplier applied to the shaded colour.
    pub gain: f64,
    /// Brightness offset added after the gain, in `[0, 1]` units.
    pub offset: f64,
}

impl Lighting {
    /// Fixed lighting, or when `vary` is set a light from a random direction (elevation
    /// 35–75 degrees) with gain in `[0.75, 1.25]` and offset in `[-0.06, 0.06]`.
    pub(super) fn draw(rng: &mut ChaCha8Rng, vary: bool) -> Self {
        if !vary {
            return Self {
                direction: Vector3::from(DEFAULT_LIGHT).normalize(),
                gain: 1.0,
                offset: 0.0,
            };
        }
        let azimuth = rng.random_range(0.0..std::f64::consts::TAU);
        let elevation = rng.random_range(35.0f64..75.0).to_radians();
        Self {
            direction: Vector3::new(
                elevation.cos() * azimuth.cos(),
                elevation.cos() * azimuth.sin(),
                elevation.sin(),
            ),
            gain: rng.random_range(0.75..1.25),
            offset: rng.random_range(-0.06..0.06),
        }
    }
}

/// The camera's centre and orientation, computed once per image.
struct View {
    center: Vector3<f64>,
    /// Camera-to-world rotation.
    to_world: Matrix3<f64>,
    focal: f64,
}

/// Rendering settings besides the geometry and camera.
#[derive(Debug, Clone, Copy)]
pub(super) struct RenderSettings {
    /// Samples per pixel along each axis.
    pub supersampling: u32,
    /// Standard deviation of the added sensor noise, in 8-bit grey levels.
    pub noise_std: f64,
    /// Seed of the noise.
    pub noise_seed: u64,
}

/// Renders `world` as `camera` sees it from `pose`.
pub(super) fn render(
    world: &World,
    camera: &Camera,
    pose: &Pose,
    lighting: &Lighting,
    settings: &RenderSettings,
) -> RgbImage {
    let view = View {
        center: pose.center(),
        to_world: pose.rotation.inverse().to_rotation_matrix().into_inner(),
        focal: camera.mean_focal(),
    };
    let width = camera.width as usize;
    let mut buffer = vec![0u8; width * camera.height as usize * 3];
    buffer
        .par_chunks_mut(width * 3)
        .enumerate()
        .for_each(|(row, pixels)| {
            for column in 0..width {
                let linear = shade_pixel(
                    world,
                    camera,
                    &view,
                    lighting,
                    settings.supersampling,
                    column,
                    row,
                );
                for (channel, value) in linear.iter().enumerate() {
                    let mut level = 255.0 * (lighting.gain * value + lighting.offset);
                    if settings.noise_std > 0.0 {
                        let index = ((row * width + column) * 3 + channel) as i64;
                        level += settings.noise_std * gaussian(settings.noise_seed, index);
                    }
                    pixels[column * 3 + channel] = level.round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    RgbImage::from_raw(camera.width, camera.height, buffer)
        .expect("the buffer has width * height * 3 bytes by construction")
}

/// The mean shaded colour over the pixel's sub-samples; pixel `(column, row)` covers
/// `[column, column + 1] x [row, row + 1]` in pixel coordinates.
fn shade_pixel(
    world: &World,
    camera: &Camera,
    view: &View,
    lighting: &Lighting,
    supersampling: u32,
    column: usize,
    row: usize,
) -> [f64; 3] {
    let samples = supersampling.max(1);
    let mut sum = [0.0; 3];
    for sub_row in 0..samples {
        for sub_column in 0..samples {
            let pixel = Vector2::new(
                column as f64 + (f64::from(sub_column) + 0.5) / f64::from(samples),
                row as f64 + (f64::from(sub_row) + 0.5) / f64::from(samples),
            );
            let normalized = camera.pixel_to_normalized(&pixel);
            let direction =
                (view.to_world * Vector3::new(normalized.x, normalized.y, 1.0)).normalize();
            let colour = trace(world, &view.center, &direction, view.focal, lighting);
            for (total, value) in sum.iter_mut().zip(colour) {
                *total += value;
            }
        }
    }
    let count = f64::from(samples * samples);
    sum.map(|total| total / count)
}

/// The shaded colour of the ray's first hit, or the sky.
fn trace(
    world: &World,
    origin: &Vector3<f64>,
    direction: &Vector3<f64>,
    focal: f64,
    lighting: &Lighting,
) -> [f64; 3] {
    let Some(hit) = world.intersect(origin, direction) else {
        return SKY;
    };
    // Width of one pixel on the surface: distance over focal length, stretched by the
    // obliquity of the view (capped so grazing views still keep their coarse texture).
    let obliquity = hit.normal.dot(direction).abs().max(0.1);
    let footprint = hit.distance / (focal * obliquity);
    let albedo = world.textures[hit.texture].albedo(hit.uv.0, hit.uv.1, footprint);
    let shading = AMBIENT + (1.0 - AMBIENT) * hit.normal.dot(&lighting.direction).max(0.0);
    albedo.map(|a| a * shading)
}

/// An approximately standard normal number from a hash: the sum of four uniforms,
/// centred and scaled to unit variance.
fn gaussian(seed: u64, index: i64) -> f64 {
    let h = cell_hash(seed, 0x6e6f_6973, index, 0);
    let sum: f64 = (0..4).map(|k| unit(h, k)).sum();
    (sum - 2.0) * 3.0f64.sqrt()
}
