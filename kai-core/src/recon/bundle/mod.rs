//! Bundle adjustment: joint refinement of camera poses, 3D points and, optionally,
//! intrinsics by minimising the reprojection error in pixels.
//!
//! [`adjust`] runs Levenberg–Marquardt with analytic Jacobians (see `projection`), a
//! robust loss ([`LossFunction`]) and the Schur complement over the points (see `solver`).
//! A [`BundleConfig`] chooses which images vary and which are held constant, so the same
//! call serves local adjustment (a few recent images, neighbours constant) and global
//! adjustment. Points observed by at least one variable image vary, and their observations
//! in constant images still count. Images in neither list, and their observations, are left
//! out. Intrinsics, when refined, are shared by every image that uses the same camera
//! index, and vary only for cameras that a variable image uses.

mod loss;
mod problem;
mod projection;
mod solver;
#[cfg(test)]
mod tests;

pub use loss::LossFunction;

use crate::error::{Error, Result};
use crate::recon::reconstruction::Reconstruction;
use problem::{Problem, State};
use solver::NormalEquations;

/// Gauge fixing in [`adjust`], which removes the seven-parameter similarity ambiguity
/// (rotation, translation, scale of the whole scene) that reprojection errors cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GaugeFixing {
    /// With two or more constant images nothing more is fixed. With one, one translation
    /// component of the first variable image is held, fixing the scale. With none, the
    /// first variable image's pose is held and one translation component of the second
    /// variable image (the one along which its baseline to the first is longest, in its
    /// own frame).
    #[default]
    Automatic,
    /// Fixes nothing beyond the constant images. The damping keeps free directions small.
    None,
}

/// Selection of the parameter blocks that [`adjust`] varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleConfig {
    /// Indices into [`Reconstruction::images`] whose poses vary.
    pub variable_images: Vec<usize>,
    /// Indices whose poses are held constant. Their observations of variable points still
    /// count.
    pub constant_images: Vec<usize>,
    /// Method that removes the gauge freedom.
    pub gauge: GaugeFixing,
}

impl BundleConfig {
    /// Builds a configuration with every image variable and the gauge fixed automatically.
    pub fn global(reconstruction: &Reconstruction) -> Self {
        Self {
            variable_images: (0..reconstruction.images.len()).collect(),
            constant_images: Vec::new(),
            gauge: GaugeFixing::Automatic,
        }
    }

    /// Builds a configuration in which `variable_images` vary and every other image that
    /// observes one of their points is held constant.
    pub fn local(reconstruction: &Reconstruction, variable_images: &[usize]) -> Self {
        let mut is_variable = vec![false; reconstruction.images.len()];
        for &i in variable_images {
            if let Some(flag) = is_variable.get_mut(i) {
                *flag = true;
            }
        }
        let mut is_constant = vec![false; reconstruction.images.len()];
        for point in &reconstruction.points {
            if !point
                .track
                .iter()
                .any(|e| is_variable.get(e.image) == Some(&true))
            {
                continue;
            }
            for e in &point.track {
                if e.image < is_constant.len() && !is_variable[e.image] {
                    is_constant[e.image] = true;
                }
            }
        }
        Self {
            variable_images: variable_images.to_vec(),
            constant_images: (0..is_constant.len()).filter(|&i| is_constant[i]).collect(),
            gauge: GaugeFixing::Automatic,
        }
    }
}

/// Settings of [`adjust`].
#[derive(Debug, Clone, PartialEq)]
pub struct BundleOptions {
    /// Maximum number of Levenberg–Marquardt iterations, counting accepted and rejected
    /// steps.
    pub max_iterations: usize,
    /// Robust loss on each observation's squared reprojection error.
    pub loss: LossFunction,
    /// Scale of the robust loss, in pixels (unused by [`LossFunction::Trivial`]).
    pub loss_scale_px: f64,
    /// Function tolerance: the adjustment stops when an accepted step lowers the cost by
    /// less than this fraction.
    pub function_tolerance: f64,
    /// Parameter tolerance: the adjustment stops when the step norm is below this fraction
    /// of the parameter norm.
    pub parameter_tolerance: f64,
    /// Whether to refine the focal length (fx, with fy keeping its ratio to fx).
    pub refine_focal: bool,
    /// Whether to refine the principal point.
    pub refine_principal_point: bool,
    /// Whether to refine k1, k2, p1, p2 of cameras with the OpenCV model.
    pub refine_distortion: bool,
}

impl Default for BundleOptions {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            loss: LossFunction::Trivial,
            loss_scale_px: 1.0,
            function_tolerance: 1e-6,
            parameter_tolerance: 1e-8,
            refine_focal: false,
            refine_principal_point: false,
            refine_distortion: false,
        }
    }
}

/// Reason that [`adjust`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// An accepted step lowered the cost by less than `function_tolerance`.
    FunctionTolerance,
    /// The step became smaller than `parameter_tolerance`.
    ParameterTolerance,
    /// `max_iterations` ran out.
    MaxIterations,
    /// No damping produced a lower cost, so the state is a local minimum to working
    /// precision.
    NoImprovement,
}

/// Summary of one [`adjust`] run.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleReport {
    /// Half the sum of robust losses before adjustment, in pixels squared.
    pub initial_cost: f64,
    /// The same after adjustment.
    pub final_cost: f64,
    /// Levenberg–Marquardt iterations run, rejected steps included.
    pub iterations: usize,
    /// Root mean square reprojection error before adjustment over observations in front
    /// of their camera, in pixels (norm of the 2D residual).
    pub initial_rmse_px: f64,
    /// The same after adjustment.
    pub final_rmse_px: f64,
    /// Reason the adjustment stopped.
    pub termination: Termination,
    /// Number of observations in the problem.
    pub num_observations: usize,
    /// Number of points that varied.
    pub num_points: usize,
    /// Number of observations whose point was behind the camera before adjustment.
    pub initial_num_behind_camera: usize,
    /// Number of observations whose point was behind the camera at the end. While behind, an
    /// observation costs a fixed penalty (the loss at the image diagonal) and carries no
    /// gradient.
    pub num_behind_camera: usize,
}

/// Maximum damping tried before giving up on a step.
const MAX_LAMBDA: f64 = 1e12;
const INITIAL_LAMBDA: f64 = 1e-4;

/// Refines `reconstruction` in place: poses of `config.variable_images`, every point they
/// observe and, when the options ask, the intrinsics of their cameras. Constant images'
/// poses are not written. Updates each adjusted point's mean reprojection error.
///
/// Fails when an index in `config` or in a track is out of range, a value is not finite,
/// a camera is invalid, the loss scale is not positive, or the variable images observe no
/// points.
pub fn adjust(
    reconstruction: &mut Reconstruction,
    config: &BundleConfig,
    options: &BundleOptions,
) -> Result<BundleReport> {
    if !(options.loss_scale_px.is_finite() && options.loss_scale_px > 0.0) {
        return Err(Error::invalid(
            "loss_scale_px",
            format!(
                "{} must be a positive finite number of pixels",
                options.loss_scale_px
            ),
        ));
    }
    let problem = Problem::new(reconstruction, config, options)?;
    let mut state = State {
        poses: reconstruction.images.iter().map(|i| i.pose).collect(),
        cameras: reconstruction.cameras.clone(),
        positions: problem
            .points
            .iter()
            .map(|&p| reconstruction.points[p].position)
            .collect(),
    };

    let initial = problem.evaluate(&state);
    let mut current = initial;
    let mut lambda = INITIAL_LAMBDA;
    let mut growth = 2.0;
    let mut iterations = 0;
    let mut termination = Termination::MaxIterations;
    let mut equations = NormalEquations::build(&problem, &state);
    while iterations < options.max_iterations {
        iterations += 1;
        let Some((camera_step, point_steps)) = equations.solve(lambda) else {
            lambda *= growth;
            growth *= 2.0;
            if lambda > MAX_LAMBDA {
                termination = Termination::NoImprovement;
                break;
            }
            continue;
        };
        let step_norm = (camera_step.norm_squared()
            + point_steps.iter().map(|s| s.norm_squared()).sum::<f64>())
        .sqrt();
        let parameter_norm = problem.parameter_norm(&state);
        if step_norm <= options.parameter_tolerance * (parameter_norm + options.parameter_tolerance)
        {
            termination = Termination::ParameterTolerance;
            break;
        }
        let candidate = problem.apply(&state, camera_step.as_slice(), &point_steps);
        let evaluation = problem.evaluate(&candidate);
        if evaluation.cost < current.cost && evaluation.cost.is_finite() {
            let decrease = (current.cost - evaluation.cost) / current.cost.max(f64::MIN_POSITIVE);
            state = candidate;
            current = evaluation;
            lambda = (lambda / 3.0).max(1e-12);
            growth = 2.0;
            if decrease < options.function_tolerance {
                termination = Termination::FunctionTolerance;
                break;
            }
            if iterations < options.max_iterations {
                equations = NormalEquations::build(&problem, &state);
            }
        } else {
            lambda *= growth;
            growth *= 2.0;
            if lambda > MAX_LAMBDA {
                termination = Termination::NoImprovement;
                break;
            }
        }
    }

    write_back(reconstruction, &problem, &state);
    Ok(BundleReport {
        initial_cost: initial.cost,
        final_cost: current.cost,
        iterations,
        initial_rmse_px: rmse(initial.squared_error, initial.in_front),
        final_rmse_px: rmse(current.squared_error, current.in_front),
        termination,
        num_observations: initial.in_front + initial.behind,
        num_points: problem.points.len(),
        initial_num_behind_camera: initial.behind,
        num_behind_camera: current.behind,
    })
}

fn rmse(squared_error: f64, count: usize) -> f64 {
    if count == 0 {
        0.0
    } else {
        (squared_error / count as f64).sqrt()
    }
}

/// Copies the adjusted values into the reconstruction, leaving constant images untouched.
fn write_back(reconstruction: &mut Reconstruction, problem: &Problem, state: &State) {
    for &image in &problem.variable_images {
        reconstruction.images[image].pose = state.poses[image];
    }
    for &camera in &problem.variable_cameras {
        reconstruction.cameras[camera] = state.cameras[camera];
    }
    for (k, &point) in problem.points.iter().enumerate() {
        reconstruction.points[point].position = state.positions[k];
    }
    for &point in &problem.points {
        let track = reconstruction.points[point].track.clone();
        let errors: Vec<f64> = track
            .iter()
            .filter(|e| {
                reconstruction
                    .images
                    .get(e.image)
                    .is_some_and(|image| e.keypoint < image.keypoints.len())
            })
            .filter_map(|e| reconstruction.reprojection_error(point, *e))
            .collect();
        if !errors.is_empty() {
            reconstruction.points[point].error = errors.iter().sum::<f64>() / errors.len() as f64;
        }
    }
}
