//! Synthetic scenes with ground truth: textured boxes on a textured ground plane, rendered
//! by ray casting from known cameras, for tests, benchmarks and `kai recon synth`.
//!
//! The world frame has z up, the ground at z = 0 and the objects around the origin,
//! about one unit across. Cameras and poses follow [`crate::recon::camera`] and
//! [`crate::recon::pose`] (COLMAP's conventions), so a reconstruction of the rendered
//! images compares directly with [`SyntheticScene::poses`] after a similarity alignment.
//!
//! Everything is drawn from [`SceneOptions::seed`]: the same options give the same
//! images, byte for byte.
//!
//! ```no_run
//! use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
//!
//! let scene = SyntheticScene::generate(&SceneOptions::default())?;
//! scene.write_images(std::path::Path::new("photos"))?;
//! # Ok::<(), kai_core::Error>(())
//! ```

mod render;
mod rig;
mod texture;
mod world;

use std::path::{Path, PathBuf};

use image::RgbImage;
use nalgebra::{Vector2, Vector3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

pub use rig::CameraRig;

use self::render::{Lighting, RenderSettings};
use self::rig::RigSettings;
use self::texture::mix;
use self::world::World;
use crate::error::{Error, Result};
use crate::recon::camera::{Camera, CameraModel};
use crate::recon::pose::Pose;
use crate::recon::reconstruction::{Point3D, Reconstruction, RegisteredImage, TrackElement};

/// The albedo of every surface when the texture is [`SurfaceTexture::Flat`].
const FLAT_ALBEDO: [f64; 3] = [0.55, 0.52, 0.48];

/// Maximum pixel bytes of one scene (2 GiB), so a mistyped size fails early instead of
/// exhausting memory.
const MAX_PIXEL_BYTES: u64 = 2 << 30;

/// Surface appearance of a synthetic scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurfaceTexture {
    /// Multi-scale coloured shapes over smooth colour noise: thousands of features per
    /// image.
    Rich,
    /// One colour on every surface, shaded only by the light: a degenerate capture with
    /// almost no features.
    Flat,
}

/// The settings of a synthetic scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneOptions {
    /// Number of images (1–1000).
    pub images: usize,
    /// Image width in pixels (16–8192).
    pub width: u32,
    /// Image height in pixels (16–8192).
    pub height: u32,
    /// Seed of every random choice: layout, textures, cameras, lighting and noise.
    pub seed: u64,
    /// Focal length in pixels. `None` uses the longer image side (a field of view of
    /// about 53 degrees across it).
    pub focal_px: Option<f64>,
    /// OpenCV distortion `[k1, k2, p1, p2]`, where `None` renders a distortion-free
    /// pinhole camera. Radial terms must lie within ±0.5, tangential within ±0.05.
    pub distortion: Option<[f64; 4]>,
    /// Camera motion between images.
    pub rig: CameraRig,
    /// Surface appearance.
    pub texture: SurfaceTexture,
    /// Whether the scene has a textured wall behind the objects, facing the middle of the
    /// camera arc.
    pub back_wall: bool,
    /// Arc of azimuths the orbit cameras cover, in degrees (10–360), where 360 is a full
    /// ring.
    pub arc_degrees: f64,
    /// Ratio of the farthest to the nearest camera distance (1–4). Distances are drawn
    /// uniformly between the two.
    pub distance_ratio: f64,
    /// Maximum roll of a camera about its optical axis, in degrees (0–180).
    pub max_roll_degrees: f64,
    /// Whether each image gets its own random light direction, exposure gain and offset.
    /// When false, every image has the same lighting.
    pub vary_lighting: bool,
    /// Samples per pixel along each axis (1–4), against aliasing.
    pub supersampling: u32,
    /// Standard deviation of added sensor noise, in 8-bit grey levels (0–50).
    pub noise_std: f64,
}

impl Default for SceneOptions {
    /// 30 images of 640x480 on a full ring, with a 1.5x range of distances, up to 30
    /// degrees of roll and varying lighting.
    fn default() -> Self {
        Self {
            images: 30,
            width: 640,
            height: 480,
            seed: 0,
            focal_px: None,
            distortion: None,
            rig: CameraRig::Orbit,
            texture: SurfaceTexture::Rich,
            back_wall: false,
            arc_degrees: 360.0,
            distance_ratio: 1.5,
            max_roll_degrees: 30.0,
            vary_lighting: true,
            supersampling: 2,
            noise_std: 0.0,
        }
    }
}

impl SceneOptions {
    /// Returns the default scene captured by a camera that only turns about one centre.
    pub fn pure_rotation() -> Self {
        Self {
            rig: CameraRig::PureRotation,
            ..Self::default()
        }
    }

    /// Returns the default scene with one flat colour on every surface.
    pub fn textureless() -> Self {
        Self {
            texture: SurfaceTexture::Flat,
            ..Self::default()
        }
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1000).contains(&self.images) {
            return Err(Error::invalid(
                "scene images",
                format!("{} is outside 1..=1000", self.images),
            ));
        }
        for (name, side) in [("scene width", self.width), ("scene height", self.height)] {
            if !(16..=8192).contains(&side) {
                return Err(Error::invalid(
                    name,
                    format!("{side} pixels is outside 16..=8192"),
                ));
            }
        }
        let bytes = u64::from(self.width) * u64::from(self.height) * 3 * self.images as u64;
        if bytes > MAX_PIXEL_BYTES {
            return Err(Error::invalid(
                "scene size",
                format!(
                    "{} images of {}x{} need {bytes} bytes, more than the limit of {MAX_PIXEL_BYTES}",
                    self.images, self.width, self.height
                ),
            ));
        }
        if let Some(focal) = self.focal_px
            && !(focal.is_finite() && focal > 0.0)
        {
            return Err(Error::invalid(
                "scene focal_px",
                format!("{focal} must be finite and positive"),
            ));
        }
        if let Some(coefficients) = self.distortion {
            let [k1, k2, p1, p2] = coefficients;
            let radial_ok = [k1, k2].iter().all(|k| k.is_finite() && k.abs() <= 0.5);
            let tangential_ok = [p1, p2].iter().all(|p| p.is_finite() && p.abs() <= 0.05);
            if !radial_ok || !tangential_ok {
                return Err(Error::invalid(
                    "scene distortion",
                    format!("{coefficients:?} must have |k1|, |k2| <= 0.5 and |p1|, |p2| <= 0.05"),
                ));
            }
        }
        check_range("scene arc_degrees", self.arc_degrees, 10.0, 360.0)?;
        check_range("scene distance_ratio", self.distance_ratio, 1.0, 4.0)?;
        check_range("scene max_roll_degrees", self.max_roll_degrees, 0.0, 180.0)?;
        check_range("scene noise_std", self.noise_std, 0.0, 50.0)?;
        if !(1..=4).contains(&self.supersampling) {
            return Err(Error::invalid(
                "scene supersampling",
                format!("{} is outside 1..=4", self.supersampling),
            ));
        }
        Ok(())
    }

    /// Builds the intrinsics every image shares.
    fn camera(&self) -> Camera {
        let focal = self
            .focal_px
            .unwrap_or(f64::from(self.width.max(self.height)));
        let mut camera = Camera::pinhole(
            self.width,
            self.height,
            focal,
            focal,
            f64::from(self.width) / 2.0,
            f64::from(self.height) / 2.0,
        );
        if let Some([k1, k2, p1, p2]) = self.distortion {
            camera.model = CameraModel::OpenCv;
            camera.k1 = k1;
            camera.k2 = k2;
            camera.p1 = p1;
            camera.p2 = p2;
        }
        camera
    }
}

fn check_range(name: &str, value: f64, min: f64, max: f64) -> Result<()> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}

/// Rendered images with the cameras that took them.
#[derive(Debug, Clone)]
pub struct SyntheticScene {
    /// The options the scene was generated from.
    pub options: SceneOptions,
    /// The rendered images, in capture order.
    pub images: Vec<RgbImage>,
    /// File names of the images (`image_000.png`, ...), as [`Self::write_images`] writes them.
    pub names: Vec<String>,
    /// Ground-truth intrinsics of each image.
    pub cameras: Vec<Camera>,
    /// Ground-truth world-to-camera pose of each image.
    pub poses: Vec<Pose>,
    world: World,
}

/// Seeds of the independent random streams, so that changing one option (such as the
/// number of images) leaves the draws of the others (such as the layout) unchanged.
const LAYOUT_STREAM: u64 = 1;
const CAMERA_STREAM: u64 = 2;
const LIGHTING_STREAM: u64 = 3;
const NOISE_STREAM: u64 = 4;
const SAMPLE_STREAM: u64 = 5;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ mix(stream)))
}

impl SyntheticScene {
    /// Lays out the scene, places the cameras and renders every image (in parallel).
    pub fn generate(options: &SceneOptions) -> Result<Self> {
        options.validate()?;
        let flat = (options.texture == SurfaceTexture::Flat).then_some(FLAT_ALBEDO);
        let world = World::new(
            &mut stream(options.seed, LAYOUT_STREAM),
            options.back_wall,
            flat,
        );

        let rig = RigSettings {
            rig: options.rig,
            images: options.images,
            distance_ratio: options.distance_ratio,
            max_roll_degrees: options.max_roll_degrees,
            arc_degrees: options.arc_degrees,
        };
        let poses = rig::place_cameras(
            &rig,
            &world.object_center(),
            &mut stream(options.seed, CAMERA_STREAM),
        );
        let camera = options.camera();
        camera.validate()?;

        let mut lighting_rng = stream(options.seed, LIGHTING_STREAM);
        let lightings: Vec<Lighting> = (0..options.images)
            .map(|_| Lighting::draw(&mut lighting_rng, options.vary_lighting))
            .collect();
        let noise_seed = mix(options.seed ^ mix(NOISE_STREAM));
        let images = poses
            .par_iter()
            .zip(&lightings)
            .enumerate()
            .map(|(index, (pose, lighting))| {
                let settings = RenderSettings {
                    supersampling: options.supersampling,
                    noise_std: options.noise_std,
                    noise_seed: mix(noise_seed ^ index as u64),
                };
                render::render(&world, &camera, pose, lighting, &settings)
            })
            .collect();

        Ok(Self {
            options: *options,
            images,
            names: (0..options.images)
                .map(|i| format!("image_{i:03}.png"))
                .collect(),
            cameras: vec![camera; options.images],
            poses,
            world,
        })
    }

    /// Returns the point the cameras aim at, which is the centre of the objects' bounding
    /// box.
    pub fn object_center(&self) -> Vector3<f64> {
        self.world.object_center()
    }

    /// Draws `count` points uniformly by area from the surfaces the cameras see: the box
    /// tops and sides, the ground within 2.5 units of the origin outside the boxes, and
    /// the lower half of the back wall when there is one. The draw is seeded by the
    /// scene's seed, so it repeats.
    pub fn sample_surface_points(&self, count: usize) -> Vec<Vector3<f64>> {
        let mut rng = stream(self.options.seed, SAMPLE_STREAM);
        (0..count)
            .map(|_| self.world.sample_surface_point(&mut rng))
            .collect()
    }

    /// Projects `point` into image `image`. Returns `None` when the point is behind the
    /// camera, outside the image or hidden behind a surface, or when `image` is out of range.
    pub fn observe(&self, point: &Vector3<f64>, image: usize) -> Option<Vector2<f64>> {
        let (camera, pose) = (self.cameras.get(image)?, self.poses.get(image)?);
        let pixel = camera.project(&pose.transform(point))?;
        if !camera.contains(&pixel) {
            return None;
        }
        let center = pose.center();
        let offset = point - center;
        let distance = offset.norm();
        let hidden = self
            .world
            .intersect(&center, &(offset / distance))
            .is_some_and(|hit| hit.distance < distance - 1e-7 * (1.0 + distance));
        (!hidden).then_some(pixel)
    }

    /// Casts a ray through `pixel` of image `image` and returns the world point it hits,
    /// which gives the ground-truth depth. Pixel coordinates span `[0, width] x [0, height]`.
    /// Returns `None` for the sky or an index out of range.
    pub fn surface_point_at(&self, image: usize, pixel: &Vector2<f64>) -> Option<Vector3<f64>> {
        let (camera, pose) = (self.cameras.get(image)?, self.poses.get(image)?);
        let normalized = camera.pixel_to_normalized(pixel);
        let direction =
            (pose.rotation.inverse() * Vector3::new(normalized.x, normalized.y, 1.0)).normalize();
        let center = pose.center();
        let hit = self.world.intersect(&center, &direction)?;
        Some(center + direction * hit.distance)
    }

    /// Builds the ground-truth reconstruction: every image registered with its true pose,
    /// and `point_count` sampled surface points (see [`Self::sample_surface_points`])
    /// with a track of their exact projections. Only points seen by at least two images
    /// are kept, and their colours are the rendered pixels at the first observation.
    pub fn ground_truth(&self, point_count: usize) -> Reconstruction {
        let mut cameras: Vec<Camera> = Vec::new();
        let mut images: Vec<RegisteredImage> = Vec::new();
        for (index, (camera, pose)) in self.cameras.iter().zip(&self.poses).enumerate() {
            let camera_index = match cameras.iter().position(|c| c == camera) {
                Some(existing) => existing,
                None => {
                    cameras.push(*camera);
                    cameras.len() - 1
                }
            };
            images.push(RegisteredImage {
                name: self.names[index].clone(),
                camera: camera_index,
                pose: *pose,
                keypoints: Vec::new(),
                point_ids: Vec::new(),
            });
        }

        let mut points = Vec::new();
        for position in self.sample_surface_points(point_count) {
            let observations: Vec<(usize, Vector2<f64>)> = (0..self.images.len())
                .filter_map(|image| self.observe(&position, image).map(|pixel| (image, pixel)))
                .collect();
            if observations.len() < 2 {
                continue;
            }
            let point_index = points.len();
            let mut track = Vec::with_capacity(observations.len());
            for &(image, pixel) in &observations {
                let registered = &mut images[image];
                track.push(TrackElement {
                    image,
                    keypoint: registered.keypoints.len(),
                });
                registered.keypoints.push(pixel);
                registered.point_ids.push(Some(point_index));
            }
            let (first_image, first_pixel) = observations[0];
            points.push(Point3D {
                position,
                color: self.pixel_colour(first_image, &first_pixel),
                error: 0.0,
                track,
            });
        }
        Reconstruction {
            cameras,
            images,
            points,
            unregistered: Vec::new(),
        }
    }

    fn pixel_colour(&self, image: usize, pixel: &Vector2<f64>) -> [u8; 3] {
        let picture = &self.images[image];
        let x = (pixel.x.floor().max(0.0) as u32).min(picture.width() - 1);
        let y = (pixel.y.floor().max(0.0) as u32).min(picture.height() - 1);
        picture.get_pixel(x, y).0
    }

    /// Writes every image into `dir` (created if missing) as PNG under its name from
    /// [`Self::names`], and returns the paths in image order.
    pub fn write_images(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
        self.images
            .par_iter()
            .zip(&self.names)
            .map(|(picture, name)| {
                let path = dir.join(name);
                let mut encoded = std::io::Cursor::new(Vec::new());
                picture
                    .write_to(&mut encoded, image::ImageFormat::Png)
                    .map_err(|e| Error::Internal(format!("encoding {name} as PNG failed: {e}")))?;
                std::fs::write(&path, encoded.into_inner())
                    .map_err(|e| Error::io("cannot write", &path, e))?;
                Ok(path)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
