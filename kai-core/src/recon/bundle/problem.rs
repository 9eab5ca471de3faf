//! The bundle-adjustment problem: which parameters vary, where each lands in the reduced
//! camera system, the observations of every variable point, and the parameter state.

use std::collections::HashSet;

use nalgebra::{UnitQuaternion, Vector2, Vector3};
use rayon::prelude::*;

use super::loss::LossFunction;
use super::projection::{CAMERA_SIDE, INTRINSIC_PARAMS, POSE_PARAMS, residual, update_intrinsic};
use super::{BundleConfig, BundleOptions, GaugeFixing};
use crate::error::{Error, Result};
use crate::recon::camera::{Camera, CameraModel};
use crate::recon::pose::Pose;
use crate::recon::reconstruction::Reconstruction;

/// A column of the reduced camera system, or `None` for a parameter held constant.
pub(super) type Column = Option<usize>;

/// One observation of a variable point.
#[derive(Debug, Clone, Copy)]
pub(super) struct Observation {
    pub image: usize,
    pub camera: usize,
    pub pixel: Vector2<f64>,
}

/// The parameter layout and the observations, which stay fixed during one adjustment.
pub(super) struct Problem {
    /// For each reconstruction image, the columns of its pose parameters.
    pub pose_columns: Vec<[Column; POSE_PARAMS]>,
    /// For each camera, the columns of its intrinsic parameters.
    pub intrinsic_columns: Vec<[Column; INTRINSIC_PARAMS]>,
    /// Size of the reduced camera system.
    pub num_columns: usize,
    /// Reconstruction indices of the variable points.
    pub points: Vec<usize>,
    /// Observations of each variable point (same order as `points`).
    pub observations: Vec<Vec<Observation>>,
    /// Variable images, for writing poses back.
    pub variable_images: Vec<usize>,
    /// Cameras with at least one variable intrinsic parameter.
    pub variable_cameras: Vec<usize>,
    pub loss: LossFunction,
    pub loss_scale: f64,
    /// Squared residual charged to an observation whose point is behind the camera: the
    /// squared image diagonal, so a step that flips a point costs more than any residual
    /// inside the image.
    pub behind_penalty: Vec<f64>,
}

/// The values being optimised.
#[derive(Debug, Clone)]
pub(super) struct State {
    pub poses: Vec<Pose>,
    pub cameras: Vec<Camera>,
    pub positions: Vec<Vector3<f64>>,
}

/// The cost and error statistics of a state.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Evaluation {
    /// Half the sum of robust losses, behind-camera penalties included.
    pub cost: f64,
    /// Sum of squared residual norms over observations in front of their camera.
    pub squared_error: f64,
    /// Number of observations in front of their camera.
    pub in_front: usize,
    /// Number of observations whose point is behind the camera.
    pub behind: usize,
}

impl Problem {
    /// Builds the layout from the configuration, after checking every index it uses.
    pub fn new(
        reconstruction: &Reconstruction,
        config: &BundleConfig,
        options: &BundleOptions,
    ) -> Result<Self> {
        let num_images = reconstruction.images.len();
        let mut role = vec![Role::Absent; num_images];
        for (name, list, kind) in [
            ("variable_images", &config.variable_images, Role::Variable),
            ("constant_images", &config.constant_images, Role::Constant),
        ] {
            for &image in list {
                if image >= num_images {
                    return Err(Error::invalid(
                        name,
                        format!("image {image} is out of range ({num_images} images)"),
                    ));
                }
                if role[image] != Role::Absent {
                    return Err(Error::invalid(
                        name,
                        format!("image {image} is listed twice or as both variable and constant"),
                    ));
                }
                role[image] = kind;
            }
        }
        if config.variable_images.is_empty() {
            return Err(Error::invalid(
                "variable_images",
                "is empty; nothing to adjust",
            ));
        }
        for (index, camera) in reconstruction.cameras.iter().enumerate() {
            camera
                .validate()
                .map_err(|e| Error::invalid(format!("camera {index}"), e.to_string()))?;
        }
        for (index, image) in reconstruction.images.iter().enumerate() {
            if role[index] == Role::Absent {
                continue;
            }
            if image.camera >= reconstruction.cameras.len() {
                return Err(Error::invalid(
                    format!("image {index} camera"),
                    format!(
                        "{} is out of range ({} cameras)",
                        image.camera,
                        reconstruction.cameras.len()
                    ),
                ));
            }
            if !image.pose.is_finite() {
                return Err(Error::invalid(
                    format!("image {index} pose"),
                    "contains a value that is not finite",
                ));
            }
        }

        let (points, observations) = collect_observations(reconstruction, &role)?;
        if points.is_empty() {
            return Err(Error::invalid(
                "variable_images",
                "observe no 3D points; nothing to adjust",
            ));
        }

        let fixed = gauge_fixed_parameters(reconstruction, config);
        let mut num_columns = 0;
        let mut pose_columns = vec![[None; POSE_PARAMS]; num_images];
        for &image in &config.variable_images {
            for (k, column) in pose_columns[image].iter_mut().enumerate() {
                if !fixed.contains(&(image, k)) {
                    *column = Some(num_columns);
                    num_columns += 1;
                }
            }
        }

        let mut variable_camera = vec![false; reconstruction.cameras.len()];
        for &image in &config.variable_images {
            variable_camera[reconstruction.images[image].camera] = true;
        }
        let mut intrinsic_columns = vec![[None; INTRINSIC_PARAMS]; reconstruction.cameras.len()];
        let mut variable_cameras = Vec::new();
        for (index, camera) in reconstruction.cameras.iter().enumerate() {
            if !variable_camera[index] {
                continue;
            }
            let mut mask = [false; INTRINSIC_PARAMS];
            mask[0] = options.refine_focal;
            mask[1] = options.refine_principal_point;
            mask[2] = options.refine_principal_point;
            let distortion = options.refine_distortion && camera.model == CameraModel::OpenCv;
            mask[3..].fill(distortion);
            for (k, column) in intrinsic_columns[index].iter_mut().enumerate() {
                if mask[k] {
                    *column = Some(num_columns);
                    num_columns += 1;
                }
            }
            if mask.iter().any(|&m| m) {
                variable_cameras.push(index);
            }
        }

        let behind_penalty = reconstruction
            .cameras
            .iter()
            .map(|c| f64::from(c.width).powi(2) + f64::from(c.height).powi(2))
            .collect();

        Ok(Self {
            pose_columns,
            intrinsic_columns,
            num_columns,
            points,
            observations,
            variable_images: config.variable_images.clone(),
            variable_cameras,
            loss: options.loss,
            loss_scale: options.loss_scale_px,
            behind_penalty,
        })
    }

    /// Returns the camera-side columns of one observation, pose first, then intrinsics.
    pub fn camera_side_columns(&self, observation: &Observation) -> [Column; CAMERA_SIDE] {
        let mut columns = [None; CAMERA_SIDE];
        columns[..POSE_PARAMS].copy_from_slice(&self.pose_columns[observation.image]);
        columns[POSE_PARAMS..].copy_from_slice(&self.intrinsic_columns[observation.camera]);
        columns
    }

    /// Computes the robust cost and error statistics of `state`.
    pub fn evaluate(&self, state: &State) -> Evaluation {
        self.observations
            .par_iter()
            .zip(state.positions.par_iter())
            .map(|(observations, position)| {
                let mut e = Evaluation::default();
                for o in observations {
                    let camera = &state.cameras[o.camera];
                    match residual(camera, &state.poses[o.image], position, &o.pixel) {
                        Some(r) => {
                            let squared = r.norm_squared();
                            e.cost += 0.5 * self.loss.evaluate(squared, self.loss_scale).0;
                            e.squared_error += squared;
                            e.in_front += 1;
                        }
                        None => {
                            let penalty = self.behind_penalty[o.camera];
                            e.cost += 0.5 * self.loss.evaluate(penalty, self.loss_scale).0;
                            e.behind += 1;
                        }
                    }
                }
                e
            })
            // Summed in point order, not in rayon's split order, because float addition is
            // not associative and runs must repeat exactly.
            .collect::<Vec<Evaluation>>()
            .into_iter()
            .fold(Evaluation::default(), |a, b| Evaluation {
                cost: a.cost + b.cost,
                squared_error: a.squared_error + b.squared_error,
                in_front: a.in_front + b.in_front,
                behind: a.behind + b.behind,
            })
    }

    /// Returns `state` moved by the camera-side step `camera_step` and the point steps.
    pub fn apply(&self, state: &State, camera_step: &[f64], point_steps: &[Vector3<f64>]) -> State {
        let mut next = state.clone();
        for &image in &self.variable_images {
            let columns = &self.pose_columns[image];
            let value = |k: usize| columns[k].map_or(0.0, |c| camera_step[c]);
            let rotation =
                UnitQuaternion::from_scaled_axis(Vector3::new(value(0), value(1), value(2)));
            let pose = &mut next.poses[image];
            pose.rotation = rotation * pose.rotation;
            pose.translation += Vector3::new(value(3), value(4), value(5));
        }
        for &camera in &self.variable_cameras {
            for (k, column) in self.intrinsic_columns[camera].iter().enumerate() {
                if let Some(c) = column {
                    update_intrinsic(&mut next.cameras[camera], k, camera_step[*c]);
                }
            }
        }
        for (position, step) in next.positions.iter_mut().zip(point_steps) {
            *position += step;
        }
        next
    }

    /// Computes the norm of all variable parameters, for the parameter tolerance.
    pub fn parameter_norm(&self, state: &State) -> f64 {
        let mut sum: f64 = state.positions.iter().map(|p| p.norm_squared()).sum();
        for &image in &self.variable_images {
            let pose = &state.poses[image];
            sum += pose.angle_axis().norm_squared() + pose.translation.norm_squared();
        }
        for &camera in &self.variable_cameras {
            let c = &state.cameras[camera];
            for (k, column) in self.intrinsic_columns[camera].iter().enumerate() {
                if column.is_some() {
                    let v = [c.fx, c.cx, c.cy, c.k1, c.k2, c.p1, c.p2][k];
                    sum += v * v;
                }
            }
        }
        sum.sqrt()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Absent,
    Variable,
    Constant,
}

/// Collects the points observed by at least one variable image, with their observations
/// in the variable and constant images.
fn collect_observations(
    reconstruction: &Reconstruction,
    role: &[Role],
) -> Result<(Vec<usize>, Vec<Vec<Observation>>)> {
    let mut points = Vec::new();
    let mut observations = Vec::new();
    for (index, point) in reconstruction.points.iter().enumerate() {
        if !point
            .track
            .iter()
            .any(|e| role.get(e.image) == Some(&Role::Variable))
        {
            continue;
        }
        if !point.position.iter().all(|v| v.is_finite()) {
            return Err(Error::invalid(
                format!("point {index} position"),
                "is not finite",
            ));
        }
        let mut list = Vec::with_capacity(point.track.len());
        for element in &point.track {
            if role.get(element.image).is_none_or(|r| *r == Role::Absent) {
                continue;
            }
            let image = &reconstruction.images[element.image];
            let Some(pixel) = image.keypoints.get(element.keypoint) else {
                return Err(Error::invalid(
                    format!("point {index} track"),
                    format!(
                        "keypoint {} is out of range in image {} ({} keypoints)",
                        element.keypoint,
                        element.image,
                        image.keypoints.len()
                    ),
                ));
            };
            if !pixel.iter().all(|v| v.is_finite()) {
                return Err(Error::invalid(
                    format!("image {} keypoint {}", element.image, element.keypoint),
                    "is not finite",
                ));
            }
            list.push(Observation {
                image: element.image,
                camera: image.camera,
                pixel: *pixel,
            });
        }
        points.push(index);
        observations.push(list);
    }
    Ok((points, observations))
}

/// Returns the (image, parameter) pairs held constant to fix the gauge.
///
/// Under [`GaugeFixing::Automatic`], two or more constant images need nothing more. With
/// one constant image the scale is free, so one translation component of the first
/// variable image is fixed. With none, the first variable image's whole pose is fixed and
/// so is one translation component of the second. The component fixed is the one along
/// which the baseline to the reference camera is longest in that image's frame, because
/// changing the scale moves it most.
fn gauge_fixed_parameters(
    reconstruction: &Reconstruction,
    config: &BundleConfig,
) -> HashSet<(usize, usize)> {
    let mut fixed = HashSet::new();
    if config.gauge == GaugeFixing::None || config.constant_images.len() >= 2 {
        return fixed;
    }
    let (reference, scale_image) = if let Some(&constant) = config.constant_images.first() {
        (constant, config.variable_images.first().copied())
    } else {
        let first = config.variable_images[0];
        for k in 0..POSE_PARAMS {
            fixed.insert((first, k));
        }
        (first, config.variable_images.get(1).copied())
    };
    if let Some(image) = scale_image {
        let pose = &reconstruction.images[image].pose;
        let baseline =
            pose.rotation * (pose.center() - reconstruction.images[reference].pose.center());
        let component = baseline.iamax();
        fixed.insert((image, 3 + component));
    }
    fixed
}
