//! Camera intrinsics: the pinhole model and OpenCV's radial-tangential distortion model,
//! with COLMAP's parameter order so models export without conversion.
//!
//! Pixel coordinates span `[0, width] x [0, height]`; the centre of the top-left pixel is
//! `(0.5, 0.5)`. Normalized coordinates are `(x / z, y / z)` of a point in the camera frame,
//! before distortion.

use nalgebra::{Vector2, Vector3};

use crate::error::{Error, Result};

/// The intrinsic models kai estimates, named as COLMAP names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CameraModel {
    /// `PINHOLE`: fx, fy, cx, cy.
    Pinhole,
    /// `OPENCV`: fx, fy, cx, cy, k1, k2, p1, p2 (two radial, two tangential terms).
    OpenCv,
}

impl CameraModel {
    /// COLMAP's name for the model, as written in `cameras.txt`.
    pub fn colmap_name(self) -> &'static str {
        match self {
            Self::Pinhole => "PINHOLE",
            Self::OpenCv => "OPENCV",
        }
    }

    /// Returns the model that COLMAP calls `name`.
    pub fn from_colmap_name(name: &str) -> Result<Self> {
        match name {
            "PINHOLE" => Ok(Self::Pinhole),
            "OPENCV" => Ok(Self::OpenCv),
            other => Err(Error::invalid(
                "camera model",
                format!("`{other}` is not supported; use PINHOLE or OPENCV"),
            )),
        }
    }

    /// Returns the number of parameters of the model.
    pub fn num_params(self) -> usize {
        match self {
            Self::Pinhole => 4,
            Self::OpenCv => 8,
        }
    }
}

/// Focal length assumed when a photo carries none, as a multiple of its longer side: a
/// field of view of about 45 degrees across that side. Bundle adjustment refines it.
pub const FOCAL_PRIOR_FACTOR: f64 = 1.2;

/// Upper bound on the iterations of the fixed-point undistortion, which stops earlier once
/// a step moves the estimate by less than 1e-12.
const UNDISTORT_ITERATIONS: usize = 20;

/// A camera's intrinsics and image size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// The model in use. The distortion terms are zero for [`CameraModel::Pinhole`].
    pub model: CameraModel,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Focal length along x, in pixels.
    pub fx: f64,
    /// Focal length along y, in pixels.
    pub fy: f64,
    /// Principal point x, in pixels.
    pub cx: f64,
    /// Principal point y, in pixels.
    pub cy: f64,
    /// First radial distortion coefficient.
    pub k1: f64,
    /// Second radial distortion coefficient.
    pub k2: f64,
    /// First tangential distortion coefficient.
    pub p1: f64,
    /// Second tangential distortion coefficient.
    pub p2: f64,
}

impl Camera {
    /// Builds a pinhole camera.
    pub fn pinhole(width: u32, height: u32, fx: f64, fy: f64, cx: f64, cy: f64) -> Self {
        Self {
            model: CameraModel::Pinhole,
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            k1: 0.0,
            k2: 0.0,
            p1: 0.0,
            p2: 0.0,
        }
    }

    /// Returns the starting intrinsics for a photo. The focal length comes from EXIF when
    /// known, else it is [`FOCAL_PRIOR_FACTOR`] times the longer side, and the principal
    /// point is the image centre.
    pub fn prior(width: u32, height: u32, focal_px: Option<f64>) -> Self {
        let focal = focal_px
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(FOCAL_PRIOR_FACTOR * f64::from(width.max(height)));
        Self::pinhole(
            width,
            height,
            focal,
            focal,
            f64::from(width) / 2.0,
            f64::from(height) / 2.0,
        )
    }

    /// Builds a camera from a COLMAP model and its parameter vector.
    pub fn from_params(
        model: CameraModel,
        width: u32,
        height: u32,
        params: &[f64],
    ) -> Result<Self> {
        if params.len() != model.num_params() {
            return Err(Error::invalid(
                "camera parameters",
                format!(
                    "{} takes {} parameters, got {}",
                    model.colmap_name(),
                    model.num_params(),
                    params.len()
                ),
            ));
        }
        let mut camera = Self::pinhole(width, height, params[0], params[1], params[2], params[3]);
        camera.model = model;
        if model == CameraModel::OpenCv {
            camera.k1 = params[4];
            camera.k2 = params[5];
            camera.p1 = params[6];
            camera.p2 = params[7];
        }
        camera.validate()?;
        Ok(camera)
    }

    /// Returns the parameters in COLMAP's order for this model.
    pub fn params(&self) -> Vec<f64> {
        match self.model {
            CameraModel::Pinhole => vec![self.fx, self.fy, self.cx, self.cy],
            CameraModel::OpenCv => vec![
                self.fx, self.fy, self.cx, self.cy, self.k1, self.k2, self.p1, self.p2,
            ],
        }
    }

    /// Checks that the size is non-zero and every parameter finite with positive focal
    /// lengths.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::invalid(
                "camera size",
                format!("{}x{} has a zero side", self.width, self.height),
            ));
        }
        let all = [
            self.fx, self.fy, self.cx, self.cy, self.k1, self.k2, self.p1, self.p2,
        ];
        if all.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "camera parameters",
                format!("{all:?} contains a value that is not finite"),
            ));
        }
        if self.fx <= 0.0 || self.fy <= 0.0 {
            return Err(Error::invalid(
                "camera focal length",
                format!("fx={} fy={} must be positive", self.fx, self.fy),
            ));
        }
        Ok(())
    }

    /// Returns the mean of the two focal lengths, which converts pixel thresholds to
    /// normalized units.
    pub fn mean_focal(&self) -> f64 {
        0.5 * (self.fx + self.fy)
    }

    /// True when the model has non-zero distortion terms.
    pub fn has_distortion(&self) -> bool {
        self.model == CameraModel::OpenCv
            && (self.k1 != 0.0 || self.k2 != 0.0 || self.p1 != 0.0 || self.p2 != 0.0)
    }

    /// Applies lens distortion to undistorted normalized coordinates.
    pub fn distort(&self, normalized: &Vector2<f64>) -> Vector2<f64> {
        if !self.has_distortion() {
            return *normalized;
        }
        let (x, y) = (normalized.x, normalized.y);
        let r2 = x * x + y * y;
        let radial = 1.0 + self.k1 * r2 + self.k2 * r2 * r2;
        Vector2::new(
            x * radial + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x),
            y * radial + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y,
        )
    }

    /// Removes lens distortion from distorted normalized coordinates by fixed-point
    /// iteration.
    pub fn undistort(&self, distorted: &Vector2<f64>) -> Vector2<f64> {
        if !self.has_distortion() {
            return *distorted;
        }
        let mut estimate = *distorted;
        for _ in 0..UNDISTORT_ITERATIONS {
            let offset = self.distort(&estimate) - estimate;
            let next = distorted - offset;
            if (next - estimate).norm_squared() < 1e-24 {
                return next;
            }
            estimate = next;
        }
        estimate
    }

    /// Maps undistorted normalized coordinates to pixels, applying distortion.
    pub fn normalized_to_pixel(&self, normalized: &Vector2<f64>) -> Vector2<f64> {
        let d = self.distort(normalized);
        Vector2::new(self.fx * d.x + self.cx, self.fy * d.y + self.cy)
    }

    /// Maps a pixel to undistorted normalized coordinates.
    pub fn pixel_to_normalized(&self, pixel: &Vector2<f64>) -> Vector2<f64> {
        let distorted = Vector2::new((pixel.x - self.cx) / self.fx, (pixel.y - self.cy) / self.fy);
        self.undistort(&distorted)
    }

    /// Projects a point in the camera frame to pixels; `None` when it is not in front of
    /// the camera.
    pub fn project(&self, point: &Vector3<f64>) -> Option<Vector2<f64>> {
        if point.z <= f64::EPSILON {
            return None;
        }
        Some(self.normalized_to_pixel(&Vector2::new(point.x / point.z, point.y / point.z)))
    }

    /// True when `pixel` lies within the image.
    pub fn contains(&self, pixel: &Vector2<f64>) -> bool {
        pixel.x >= 0.0
            && pixel.y >= 0.0
            && pixel.x <= f64::from(self.width)
            && pixel.y <= f64::from(self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distorted() -> Camera {
        let mut c = Camera::pinhole(640, 480, 500.0, 505.0, 321.0, 239.0);
        c.model = CameraModel::OpenCv;
        c.k1 = -0.12;
        c.k2 = 0.03;
        c.p1 = 0.001;
        c.p2 = -0.0015;
        c
    }

    #[test]
    fn undistort_inverts_distort() {
        let camera = distorted();
        for &(x, y) in &[(0.0, 0.0), (0.3, -0.2), (-0.55, 0.4), (0.6, 0.45)] {
            let n = Vector2::new(x, y);
            let back = camera.undistort(&camera.distort(&n));
            assert!((back - n).norm() < 1e-9, "{n:?} -> {back:?}");
        }
    }

    #[test]
    fn pixel_round_trip() {
        let camera = distorted();
        let pixel = Vector2::new(100.5, 400.25);
        let back = camera.normalized_to_pixel(&camera.pixel_to_normalized(&pixel));
        assert!((back - pixel).norm() < 1e-7);
    }

    #[test]
    fn projection_of_point_behind_camera_is_none() {
        let camera = Camera::prior(640, 480, None);
        assert!(camera.project(&Vector3::new(0.0, 0.0, -1.0)).is_none());
        let p = camera
            .project(&Vector3::new(0.0, 0.0, 2.0))
            .expect("in front");
        assert_eq!(p, Vector2::new(320.0, 240.0));
    }

    #[test]
    fn prior_uses_exif_focal_or_long_side() {
        assert_eq!(Camera::prior(4000, 3000, Some(3100.0)).fx, 3100.0);
        assert_eq!(Camera::prior(4000, 3000, None).fx, 4800.0);
        assert_eq!(Camera::prior(4000, 3000, Some(f64::NAN)).fx, 4800.0);
    }

    #[test]
    fn params_round_trip_and_bad_params_fail() {
        let camera = distorted();
        let back = Camera::from_params(camera.model, 640, 480, &camera.params()).expect("valid");
        assert_eq!(back, camera);
        let err = Camera::from_params(CameraModel::Pinhole, 640, 480, &[1.0, 2.0]).unwrap_err();
        assert!(
            err.to_string()
                .contains("PINHOLE takes 4 parameters, got 2")
        );
        let err = Camera::from_params(CameraModel::Pinhole, 640, 480, &[f64::NAN, 1.0, 2.0, 3.0])
            .unwrap_err();
        assert!(err.to_string().contains("not finite"), "{err}");
        assert!(CameraModel::from_colmap_name("FISHEYE").is_err());
    }
}
