//! One Levenberg–Marquardt step on the bundle problem, with the points eliminated by the
//! Schur complement.
//!
//! With camera-side parameters `c` (poses and intrinsics) and points `p`, the damped
//! normal equations are
//!
//! ```text
//! [ U   W ] [δc]   [g_c]
//! [ Wᵀ  V ] [δp] = [g_p]
//! ```
//!
//! where `V` is block diagonal with one 3x3 block per point. Eliminating the points gives
//! the reduced camera system `(U - W V⁻¹ Wᵀ) δc = g_c - W V⁻¹ g_p`, solved by dense
//! Cholesky, and then `δp_j = V_j⁻¹ (g_p,j - W_jᵀ δc)` point by point. Damping scales
//! each diagonal entry by `1 + λ` (Marquardt's scaling, so it is unit-free).

use nalgebra::{DMatrix, DVector, Matrix3, SMatrix, Vector3};
use rayon::prelude::*;

use super::problem::{Column, Problem, State};
use super::projection::{CAMERA_SIDE, linearize};

/// The linearized contribution of one observation in front of its camera.
struct ObservationBlock {
    columns: [Column; CAMERA_SIDE],
    /// `J_cᵀ w J_p`.
    coupling: SMatrix<f64, CAMERA_SIDE, 3>,
}

/// The linearized contribution of one point.
struct PointBlock {
    /// `Σ J_pᵀ w J_p`.
    hessian: Matrix3<f64>,
    /// `-Σ J_pᵀ w r`.
    gradient: Vector3<f64>,
    observations: Vec<ObservationBlock>,
}

/// The normal equations at one state; reused across damping retries.
// NOTE: the reduced camera system is a dense matrix of side 6 x images (plus intrinsics),
// built once per parallel chunk, so memory and the Cholesky solve grow with the square and
// cube of the image count; beyond a few hundred images a sparse solver is needed.
pub(super) struct NormalEquations {
    /// `U`: dense camera-side block.
    camera_hessian: DMatrix<f64>,
    /// `g_c = -Σ J_cᵀ w r`.
    camera_gradient: DVector<f64>,
    points: Vec<PointBlock>,
}

/// Minimum diagonal entry used for damping, so parameters no residual constrains still
/// get a positive definite block.
const MIN_DIAGONAL: f64 = 1e-9;

/// Points per parallel work unit.
const CHUNK: usize = 256;

impl NormalEquations {
    /// Linearizes every observation of `state`. Observations behind their camera are left
    /// out (their penalty is constant, so it has no gradient).
    pub fn build(problem: &Problem, state: &State) -> Self {
        let n = problem.num_columns;
        let chunks: Vec<(DMatrix<f64>, DVector<f64>, Vec<PointBlock>)> = problem
            .observations
            .par_chunks(CHUNK)
            .zip(state.positions.par_chunks(CHUNK))
            .map(|(observation_chunk, position_chunk)| {
                let mut hessian = DMatrix::zeros(n, n);
                let mut gradient = DVector::zeros(n);
                let mut blocks = Vec::with_capacity(observation_chunk.len());
                for (observations, position) in observation_chunk.iter().zip(position_chunk) {
                    let mut block = PointBlock {
                        hessian: Matrix3::zeros(),
                        gradient: Vector3::zeros(),
                        observations: Vec::with_capacity(observations.len()),
                    };
                    for o in observations {
                        let camera = &state.cameras[o.camera];
                        let Some(lin) =
                            linearize(camera, &state.poses[o.image], position, &o.pixel)
                        else {
                            continue;
                        };
                        let (_, weight) = problem
                            .loss
                            .evaluate(lin.residual.norm_squared(), problem.loss_scale);
                        let columns = problem.camera_side_columns(o);
                        let weighted_point = lin.point.transpose() * weight;
                        block.hessian += weighted_point * lin.point;
                        block.gradient -= weighted_point * lin.residual;
                        let camera_t = lin.camera.transpose() * weight;
                        let camera_hessian = camera_t * lin.camera;
                        let camera_gradient = camera_t * lin.residual;
                        for (a, column_a) in columns.iter().enumerate() {
                            let Some(ca) = column_a else { continue };
                            gradient[*ca] -= camera_gradient[a];
                            for (b, column_b) in columns.iter().enumerate() {
                                if let Some(cb) = column_b {
                                    hessian[(*ca, *cb)] += camera_hessian[(a, b)];
                                }
                            }
                        }
                        block.observations.push(ObservationBlock {
                            columns,
                            coupling: camera_t * lin.point,
                        });
                    }
                    blocks.push(block);
                }
                (hessian, gradient, blocks)
            })
            .collect();

        let mut camera_hessian = DMatrix::zeros(n, n);
        let mut camera_gradient = DVector::zeros(n);
        let mut points = Vec::with_capacity(problem.points.len());
        for (hessian, gradient, blocks) in chunks {
            camera_hessian += hessian;
            camera_gradient += gradient;
            points.extend(blocks);
        }
        Self {
            camera_hessian,
            camera_gradient,
            points,
        }
    }

    /// Solves the damped system for damping `lambda`; `None` when the reduced camera
    /// system is not positive definite.
    pub fn solve(&self, lambda: f64) -> Option<(DVector<f64>, Vec<Vector3<f64>>)> {
        let n = self.camera_gradient.len();
        let inverses: Vec<Matrix3<f64>> = self
            .points
            .par_iter()
            .map(|p| {
                let mut damped = p.hessian;
                for d in 0..3 {
                    damped[(d, d)] += lambda * p.hessian[(d, d)].max(MIN_DIAGONAL) + MIN_DIAGONAL;
                }
                damped.try_inverse().unwrap_or_else(Matrix3::zeros)
            })
            .collect();

        // S = U - Σ W V⁻¹ Wᵀ and b = g_c - Σ W V⁻¹ g_p, accumulated per chunk.
        let (reduction, rhs_reduction) = self
            .points
            .par_chunks(CHUNK)
            .zip(inverses.par_chunks(CHUNK))
            .map(|(point_chunk, inverse_chunk)| {
                let mut s = DMatrix::<f64>::zeros(n, n);
                let mut b = DVector::<f64>::zeros(n);
                for (point, inverse) in point_chunk.iter().zip(inverse_chunk) {
                    let scaled: Vec<SMatrix<f64, CAMERA_SIDE, 3>> = point
                        .observations
                        .iter()
                        .map(|o| o.coupling * inverse)
                        .collect();
                    for (oa, wa) in point.observations.iter().zip(&scaled) {
                        let contribution = wa * point.gradient;
                        for (a, column_a) in oa.columns.iter().enumerate() {
                            let Some(ca) = column_a else { continue };
                            b[*ca] += contribution[a];
                        }
                        for ob in &point.observations {
                            let product = wa * ob.coupling.transpose();
                            for (a, column_a) in oa.columns.iter().enumerate() {
                                let Some(ca) = column_a else { continue };
                                for (b_index, column_b) in ob.columns.iter().enumerate() {
                                    if let Some(cb) = column_b {
                                        s[(*ca, *cb)] += product[(a, b_index)];
                                    }
                                }
                            }
                        }
                    }
                }
                (s, b)
            })
            // Summed in chunk order, not in rayon's split order, so runs repeat exactly.
            .collect::<Vec<_>>()
            .into_iter()
            .fold(
                (DMatrix::zeros(n, n), DVector::zeros(n)),
                |(s1, b1), (s2, b2)| (s1 + s2, b1 + b2),
            );

        let mut reduced = &self.camera_hessian - reduction;
        for d in 0..n {
            reduced[(d, d)] +=
                lambda * self.camera_hessian[(d, d)].max(MIN_DIAGONAL) + MIN_DIAGONAL;
        }
        let rhs = &self.camera_gradient - rhs_reduction;
        let camera_step = if n == 0 {
            DVector::zeros(0)
        } else {
            reduced.cholesky()?.solve(&rhs)
        };
        if !camera_step.iter().all(|v| v.is_finite()) {
            return None;
        }

        let point_steps = self
            .points
            .par_iter()
            .zip(inverses.par_iter())
            .map(|(point, inverse)| {
                let mut rhs = point.gradient;
                for o in &point.observations {
                    for (a, column) in o.columns.iter().enumerate() {
                        if let Some(c) = column {
                            rhs -= o.coupling.row(a).transpose() * camera_step[*c];
                        }
                    }
                }
                inverse * rhs
            })
            .collect();
        Some((camera_step, point_steps))
    }
}
