//! Reconstruction: from photos of an object to calibrated cameras and a sparse point cloud.
//!
//! The pieces follow the usual structure-from-motion pipeline, each usable on its own:
//!
//! - [`camera`] and [`pose`]: intrinsics (pinhole, OpenCV distortion) and world-to-camera
//!   poses in COLMAP's conventions.
//! - [`features`]: scale- and rotation-invariant keypoints and descriptors, and matching.
//! - [`geometry`]: two-view geometry (fundamental, essential and homography matrices with
//!   robust estimation, relative pose, triangulation).
//! - [`pnp`]: absolute pose from 2D-3D correspondences.
//! - [`bundle`]: bundle adjustment.
//! - [`sfm`]: incremental structure from motion over a set of photos.
//! - [`export`]: COLMAP text models and PLY point clouds.
//! - [`synthetic`]: rendered scenes with known cameras, for tests and benchmarks.
//!
//! Geometry runs in `f64` on `nalgebra` types. Every random choice takes a seed, so a
//! run gives the same result every time.

pub mod bundle;
pub mod camera;
pub mod cloud;
pub mod dense;
pub mod exif;
pub mod export;
pub mod features;
pub mod geometry;
pub mod jobs;
pub mod mesh;
pub mod pipeline;
pub mod pnp;
pub mod pose;
pub mod progress;
pub mod reconstruction;
pub mod sfm;
pub mod synthetic;

pub use camera::{Camera, CameraModel};
pub use cloud::PointCloud;
pub use mesh::TriangleMesh;
pub use pose::Pose;
pub use progress::{Progress, ProgressFn, Stage};
pub use reconstruction::{
    Point3D, Reconstruction, ReconstructionSummary, RegisteredImage, TrackElement,
    UnregisteredImage,
};
