//! Registered images resampled to distortion-free pinhole views, the form plane sweeping
//! needs: a plane then maps between two views by a homography.

use image::RgbImage;
use nalgebra::{Matrix3, Vector2, Vector3};
use rayon::prelude::*;

use crate::recon::camera::Camera;
use crate::recon::pose::Pose;

/// One image as a pinhole camera without distortion, possibly scaled down. Pixel `(i, j)`
/// has its centre at `(i + 0.5, j + 0.5)`, as in [`Camera`].
#[derive(Debug, Clone)]
pub(super) struct View {
    /// Width of the resampled image in pixels.
    pub width: usize,
    /// Height of the resampled image in pixels.
    pub height: usize,
    /// Pinhole intrinsics of the resampled image.
    pub intrinsics: Matrix3<f64>,
    /// Inverse of [`Self::intrinsics`].
    pub intrinsics_inverse: Matrix3<f64>,
    /// World-to-camera pose.
    pub pose: Pose,
    /// Luma in `[0, 1]` per pixel, row-major; NaN where the pixel falls outside the photo.
    pub gray: Vec<f32>,
    /// Colour per pixel, row-major (black outside the photo).
    pub rgb: Vec<[u8; 3]>,
}

impl View {
    /// Resamples `image` taken by `camera` so the longer side is at most `max_size`,
    /// removing the lens distortion by bilinear interpolation.
    pub fn new(image: &RgbImage, camera: &Camera, pose: &Pose, max_size: u32) -> Self {
        let longer = camera.width.max(camera.height);
        let scale = (f64::from(max_size) / f64::from(longer)).min(1.0);
        let width = ((f64::from(camera.width) * scale).round() as usize).max(1);
        let height = ((f64::from(camera.height) * scale).round() as usize).max(1);
        // The scale per axis after rounding keeps the image borders where they were.
        let (sx, sy) = (
            width as f64 / f64::from(camera.width),
            height as f64 / f64::from(camera.height),
        );
        let intrinsics = Matrix3::new(
            camera.fx * sx,
            0.0,
            camera.cx * sx,
            0.0,
            camera.fy * sy,
            camera.cy * sy,
            0.0,
            0.0,
            1.0,
        );
        let intrinsics_inverse = intrinsics.try_inverse().unwrap_or_else(Matrix3::identity);

        let samples: Vec<Option<[f32; 3]>> = (0..width * height)
            .into_par_iter()
            .map(|index| {
                let (x, y) = ((index % width) as f64 + 0.5, (index / width) as f64 + 0.5);
                let ray = intrinsics_inverse * Vector3::new(x, y, 1.0);
                let source = camera.normalized_to_pixel(&Vector2::new(ray.x, ray.y));
                sample_rgb(image, source.x, source.y)
            })
            .collect();
        let gray = samples
            .iter()
            .map(|s| {
                s.map_or(f32::NAN, |[r, g, b]| {
                    (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
                })
            })
            .collect();
        let rgb = samples
            .iter()
            .map(|s| s.map_or([0; 3], |c| c.map(|v| v.round().clamp(0.0, 255.0) as u8)))
            .collect();
        Self {
            width,
            height,
            intrinsics,
            intrinsics_inverse,
            pose: *pose,
            gray,
            rgb,
        }
    }

    /// Returns the camera centre in world coordinates.
    pub fn center(&self) -> Vector3<f64> {
        self.pose.center()
    }

    /// Projects a world point to continuous pixel coordinates and its depth; `None` behind
    /// the camera.
    pub fn project(&self, world: &Vector3<f64>) -> Option<(Vector2<f64>, f64)> {
        let local = self.pose.transform(world);
        if local.z <= f64::EPSILON {
            return None;
        }
        let pixel = self.intrinsics * (local / local.z);
        Some((Vector2::new(pixel.x, pixel.y), local.z))
    }

    /// Returns the world point at depth `depth` along the ray through the centre of pixel
    /// `(x, y)`.
    pub fn back_project(&self, x: usize, y: usize, depth: f64) -> Vector3<f64> {
        let ray = self.intrinsics_inverse * Vector3::new(x as f64 + 0.5, y as f64 + 0.5, 1.0);
        let local = ray * depth;
        self.pose.rotation.inverse() * (local - self.pose.translation)
    }

    /// Bilinear luma at continuous pixel coordinates; NaN outside the image or where a
    /// neighbour is outside the photo.
    pub fn sample_gray(&self, x: f64, y: f64) -> f32 {
        let (fx, fy) = (x - 0.5, y - 0.5);
        if !(fx >= 0.0 && fy >= 0.0) {
            return f32::NAN;
        }
        let (x0, y0) = (fx as usize, fy as usize);
        if x0 + 1 >= self.width || y0 + 1 >= self.height {
            return f32::NAN;
        }
        let (ax, ay) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
        let row = y0 * self.width + x0;
        let (a, b) = (self.gray[row], self.gray[row + 1]);
        let (c, d) = (self.gray[row + self.width], self.gray[row + self.width + 1]);
        let top = a + (b - a) * ax;
        let bottom = c + (d - c) * ax;
        top + (bottom - top) * ay
    }
}

/// Bilinear colour of `image` at continuous pixel coordinates; `None` outside the image.
fn sample_rgb(image: &RgbImage, x: f64, y: f64) -> Option<[f32; 3]> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    // Half a pixel of border is sampled by clamping, so the outermost pixel centres are
    // not lost.
    if !(x >= 0.0 && y >= 0.0 && x <= w as f64 && y <= h as f64) {
        return None;
    }
    let fx = (x - 0.5).clamp(0.0, (w - 1) as f64);
    let fy = (y - 0.5).clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (fx as u32, fy as u32);
    let (x1, y1) = ((x0 + 1).min(w as u32 - 1), (y0 + 1).min(h as u32 - 1));
    let (ax, ay) = ((fx - f64::from(x0)) as f32, (fy - f64::from(y0)) as f32);
    let at = |px: u32, py: u32| image.get_pixel(px, py).0.map(f32::from);
    let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    Some(std::array::from_fn(|k| {
        let top = a[k] + (b[k] - a[k]) * ax;
        let bottom = c[k] + (d[k] - c[k]) * ax;
        top + (bottom - top) * ay
    }))
}

/// Returns the homography that maps reference pixels to source pixels through the plane
/// at depth `depth` facing the reference camera (normal along its optical axis).
pub(super) fn plane_homography(reference: &View, source: &View, depth: f64) -> Matrix3<f64> {
    let r_ref = reference.pose.rotation_matrix().into_inner();
    let r_src = source.pose.rotation_matrix().into_inner();
    let rotation = r_src * r_ref.transpose();
    let translation = source.pose.translation - rotation * reference.pose.translation;
    let normal = Vector3::z();
    source.intrinsics
        * (rotation + translation * normal.transpose() / depth)
        * reference.intrinsics_inverse
}
