//! Essential matrix: the 5-point minimal solver, a least-squares estimate from eight or
//! more points, and the decomposition into relative poses.
//!
//! An essential matrix relates undistorted normalized coordinates, `x2ᵀ E x1 = 0`, and
//! equals `[t]ₓ R` for the relative pose `x_cam2 = R x_cam1 + t`. Its defining properties
//! are `det(E) = 0` and `2 E Eᵀ E - trace(E Eᵀ) E = 0`.
//!
//! The 5-point solver is the Gröbner-basis formulation of Nistér's and Stewénius's 5-point
//! method. The five epipolar constraints leave a four-dimensional null space
//! `E = x X + y Y + z Z + W`. Substituting it into the ten cubic constraints gives ten
//! equations in the twenty monomials of degree at most three in `x, y, z`. Gauss-Jordan
//! elimination of the ten cubic monomials expresses them in the basis
//! `{x², xy, y², xz, yz, z², x, y, z, 1}`, so the 10x10 matrix of multiplication by `x` can
//! be read off. Its real eigenvalues are the `x` of the (up to ten) solutions, and its
//! eigenvectors give `y` and `z`.

use nalgebra::{Matrix3, Rotation3, SMatrix, SVector, Vector2, Vector3};

use super::fundamental::{linear_fundamental, sampson_error};
use super::ransac::Estimator;

/// `[t]ₓ R`, the essential matrix of the relative pose `x_cam2 = R x_cam1 + t`.
pub fn essential_from_pose(rotation: &Rotation3<f64>, translation: &Vector3<f64>) -> Matrix3<f64> {
    translation.cross_matrix() * rotation.matrix()
}

/// Returns the closest essential matrix to `m` in the Frobenius norm, with unit singular values
/// `(1, 1, 0)`; `None` when the SVD fails.
pub fn project_to_essential(m: &Matrix3<f64>) -> Option<Matrix3<f64>> {
    let svd = m.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    Some(u * Matrix3::from_diagonal(&Vector3::new(1.0, 1.0, 0.0)) * v_t)
}

/// Estimates `E` from eight or more correspondences in normalized coordinates by the
/// normalised 8-point algorithm followed by projection onto the essential matrices.
pub fn eight_point_essential(x1: &[Vector2<f64>], x2: &[Vector2<f64>]) -> Option<Matrix3<f64>> {
    if x1.len() != x2.len() {
        return None;
    }
    eight_point_essential_indexed(x1, x2, 0..x1.len())
}

pub(crate) fn eight_point_essential_indexed<I>(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    indices: I,
) -> Option<Matrix3<f64>>
where
    I: Iterator<Item = usize> + Clone,
{
    project_to_essential(&linear_fundamental(x1, x2, indices)?)
}

/// Returns the four relative poses `(R, t)` with `E ∝ [t]ₓ R` and `|t| = 1`; exactly one of them puts
/// the scene in front of both cameras (cheirality).
pub fn decompose_essential(e: &Matrix3<f64>) -> Option<[(Rotation3<f64>, Vector3<f64>); 4]> {
    let svd = e.svd(true, true);
    let (mut u, v_t) = (svd.u?, svd.v_t?);
    let mut v = v_t.transpose();
    // Flipping the sign of U or V changes E only by sign, which the epipolar constraint
    // ignores, and makes both proper rotations.
    if u.determinant() < 0.0 {
        u = -u;
    }
    if v.determinant() < 0.0 {
        v = -v;
    }
    let w = Matrix3::new(0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0);
    let r1 = Rotation3::from_matrix_unchecked(u * w * v.transpose());
    let r2 = Rotation3::from_matrix_unchecked(u * w.transpose() * v.transpose());
    let t: Vector3<f64> = u.column(2).into_owned();
    Some([(r1, t), (r1, -t), (r2, t), (r2, -t)])
}

/// Appends to `solutions` the essential matrices (unit Frobenius norm) that satisfy the
/// epipolar constraint for the five correspondences `x1[i] ↔ x2[i]`, `i` in `sample`,
/// given in normalized coordinates. Appends nothing for a degenerate sample.
pub fn five_point(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    sample: &[usize],
    solutions: &mut Vec<Matrix3<f64>>,
) {
    if sample.len() != 5 {
        return;
    }
    let Some(basis) = epipolar_null_space(x1, x2, sample) else {
        return;
    };
    let Some(action) = action_matrix(&basis) else {
        return;
    };
    let Some(schur) = nalgebra::Schur::try_new(action, f64::EPSILON, 1000) else {
        return;
    };
    for eigenvalue in schur.complex_eigenvalues().iter() {
        if eigenvalue.im.abs() > 1e-6 * (1.0 + eigenvalue.re.abs()) {
            continue;
        }
        let x = eigenvalue.re;
        let Some(vector) = eigenvector(&action, x) else {
            continue;
        };
        // The eigenvector is the basis {x², xy, y², xz, yz, z², x, y, z, 1} at the solution.
        if vector[9].abs() < 1e-12 * vector.amax() {
            continue;
        }
        let y = vector[7] / vector[9];
        let z = vector[8] / vector[9];
        let e = basis[0] * x + basis[1] * y + basis[2] * z + basis[3];
        let norm = e.norm();
        if norm > 0.0 && norm.is_finite() {
            solutions.push(e / norm);
        }
    }
}

/// Returns a basis `X, Y, Z, W` of the 3x3 matrices that satisfy the five epipolar constraints,
/// found by Gauss-Jordan elimination with full pivoting of the 5x9 constraint matrix.
fn epipolar_null_space(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    sample: &[usize],
) -> Option<[Matrix3<f64>; 4]> {
    let mut q = SMatrix::<f64, 5, 9>::zeros();
    for (row, &i) in sample.iter().enumerate() {
        let (a, b) = (x1[i], x2[i]);
        let values = [
            b.x * a.x,
            b.x * a.y,
            b.x,
            b.y * a.x,
            b.y * a.y,
            b.y,
            a.x,
            a.y,
            1.0,
        ];
        for (col, value) in values.into_iter().enumerate() {
            q[(row, col)] = value;
        }
    }
    if !q.iter().all(|v| v.is_finite()) {
        return None;
    }
    let scale = q.amax();
    let mut columns: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    for step in 0..5 {
        // Full pivoting: the largest remaining entry, so that a rank-deficient block of
        // columns cannot stall the elimination.
        let (mut pivot_row, mut pivot_col, mut pivot_value) = (step, step, 0.0);
        for r in step..5 {
            for c in step..9 {
                let value = q[(r, columns[c])].abs();
                if value > pivot_value {
                    (pivot_row, pivot_col, pivot_value) = (r, c, value);
                }
            }
        }
        if pivot_value <= 1e-10 * scale {
            return None;
        }
        q.swap_rows(step, pivot_row);
        columns.swap(step, pivot_col);
        let pc = columns[step];
        let inverse = 1.0 / q[(step, pc)];
        for c in 0..9 {
            q[(step, c)] *= inverse;
        }
        for r in 0..5 {
            if r != step {
                let factor = q[(r, pc)];
                if factor != 0.0 {
                    for c in 0..9 {
                        q[(r, c)] -= factor * q[(step, c)];
                    }
                }
            }
        }
    }
    let mut basis = [Matrix3::zeros(); 4];
    for (k, matrix) in basis.iter_mut().enumerate() {
        let free = columns[5 + k];
        let mut v = SVector::<f64, 9>::zeros();
        v[free] = 1.0;
        for r in 0..5 {
            v[columns[r]] = -q[(r, free)];
        }
        *matrix = Matrix3::new(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]);
    }
    Some(basis)
}

/// A polynomial of degree at most three in `x, y, z`, with coefficients in the order of
/// [`MONOMIALS`].
type Poly = [f64; 20];

/// Exponents `(x, y, z)` of the twenty monomials: the ten cubic ones first (eliminated), then
/// the basis `x², xy, y², xz, yz, z², x, y, z, 1`.
const MONOMIALS: [(usize, usize, usize); 20] = [
    (3, 0, 0),
    (2, 1, 0),
    (1, 2, 0),
    (0, 3, 0),
    (2, 0, 1),
    (1, 1, 1),
    (0, 2, 1),
    (1, 0, 2),
    (0, 1, 2),
    (0, 0, 3),
    (2, 0, 0),
    (1, 1, 0),
    (0, 2, 0),
    (1, 0, 1),
    (0, 1, 1),
    (0, 0, 2),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (0, 0, 0),
];

/// `MONOMIAL_INDEX[a][b][c]` is the position of `x^a y^b z^c` in [`MONOMIALS`].
const MONOMIAL_INDEX: [[[usize; 4]; 4]; 4] = {
    let mut table = [[[usize::MAX; 4]; 4]; 4];
    let mut i = 0;
    while i < 20 {
        let (a, b, c) = MONOMIALS[i];
        table[a][b][c] = i;
        i += 1;
    }
    table
};

/// A polynomial of degree at most one: coefficients of `x, y, z, 1`.
type Linear = [f64; 4];

/// A polynomial of degree at most two: coefficients of `x², xy, y², xz, yz, z², x, y, z, 1`
/// (the last ten entries of [`MONOMIALS`]).
type Quadratic = [f64; 10];

const fn add_exponents(i: usize, j: usize) -> usize {
    let (a1, b1, c1) = MONOMIALS[i];
    let (a2, b2, c2) = MONOMIALS[j];
    MONOMIAL_INDEX[a1 + a2][b1 + b2][c1 + c2]
}

/// `LINEAR_TIMES_LINEAR[i][j]`: the quadratic coefficient that the product of linear
/// coefficients `i` and `j` lands in.
const LINEAR_TIMES_LINEAR: [[usize; 4]; 4] = {
    let mut table = [[0; 4]; 4];
    let mut i = 0;
    while i < 4 {
        let mut j = 0;
        while j < 4 {
            table[i][j] = add_exponents(16 + i, 16 + j) - 10;
            j += 1;
        }
        i += 1;
    }
    table
};

/// `QUADRATIC_TIMES_LINEAR[i][j]`: the cubic coefficient that the product of quadratic
/// coefficient `i` and linear coefficient `j` lands in.
const QUADRATIC_TIMES_LINEAR: [[usize; 4]; 10] = {
    let mut table = [[0; 4]; 10];
    let mut i = 0;
    while i < 10 {
        let mut j = 0;
        while j < 4 {
            table[i][j] = add_exponents(10 + i, 16 + j);
            j += 1;
        }
        i += 1;
    }
    table
};

#[inline]
fn mul_linear(p: &Linear, q: &Linear) -> Quadratic {
    let mut out = [0.0; 10];
    for i in 0..4 {
        for j in 0..4 {
            out[LINEAR_TIMES_LINEAR[i][j]] += p[i] * q[j];
        }
    }
    out
}

#[inline]
fn mul_quadratic_linear(p: &Quadratic, q: &Linear) -> Poly {
    let mut out = [0.0; 20];
    for i in 0..10 {
        for j in 0..4 {
            out[QUADRATIC_TIMES_LINEAR[i][j]] += p[i] * q[j];
        }
    }
    out
}

fn add<const N: usize>(p: &[f64; N], q: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|i| p[i] + q[i])
}

fn sub<const N: usize>(p: &[f64; N], q: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|i| p[i] - q[i])
}

/// Builds the 10x10 matrix of multiplication by `x` in the basis `{x², xy, y², xz, yz, z², x, y,
/// z, 1}`, or `None` when the elimination meets a zero pivot.
fn action_matrix(basis: &[Matrix3<f64>; 4]) -> Option<SMatrix<f64, 10, 10>> {
    // Entries of E = x X + y Y + z Z + W as linear polynomials.
    let e: [[Linear; 3]; 3] = std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            [
                basis[0][(r, c)],
                basis[1][(r, c)],
                basis[2][(r, c)],
                basis[3][(r, c)],
            ]
        })
    });

    let mut equations = SMatrix::<f64, 10, 20>::zeros();

    // det(E) = 0, expanded along the first row.
    let minor0 = sub(
        &mul_linear(&e[1][1], &e[2][2]),
        &mul_linear(&e[1][2], &e[2][1]),
    );
    let minor1 = sub(
        &mul_linear(&e[1][0], &e[2][2]),
        &mul_linear(&e[1][2], &e[2][0]),
    );
    let minor2 = sub(
        &mul_linear(&e[1][0], &e[2][1]),
        &mul_linear(&e[1][1], &e[2][0]),
    );
    let det = add(
        &sub(
            &mul_quadratic_linear(&minor0, &e[0][0]),
            &mul_quadratic_linear(&minor1, &e[0][1]),
        ),
        &mul_quadratic_linear(&minor2, &e[0][2]),
    );
    for (col, value) in det.iter().enumerate() {
        equations[(0, col)] = *value;
    }

    // 2 E Eᵀ E - trace(E Eᵀ) E = 0, written as L E with L = 2 E Eᵀ - trace(E Eᵀ) I.
    let mut eet = [[[0.0; 10]; 3]; 3];
    for r in 0..3 {
        for c in r..3 {
            let mut sum = [0.0; 10];
            for (a, b) in e[r].iter().zip(&e[c]) {
                sum = add(&sum, &mul_linear(a, b));
            }
            eet[r][c] = sum;
            eet[c][r] = sum;
        }
    }
    let trace = add(&add(&eet[0][0], &eet[1][1]), &eet[2][2]);
    let mut l = [[[0.0; 10]; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            l[r][c] = std::array::from_fn(|i| 2.0 * eet[r][c][i]);
            if r == c {
                l[r][c] = sub(&l[r][c], &trace);
            }
        }
    }
    for r in 0..3 {
        for c in 0..3 {
            let mut sum = [0.0; 20];
            for k in 0..3 {
                sum = add(&sum, &mul_quadratic_linear(&l[r][k], &e[k][c]));
            }
            for (col, value) in sum.iter().enumerate() {
                equations[(1 + 3 * r + c, col)] = *value;
            }
        }
    }

    // Gauss-Jordan elimination of the ten cubic monomials (partial pivoting by rows).
    for step in 0..10 {
        let mut pivot_row = step;
        for r in step + 1..10 {
            if equations[(r, step)].abs() > equations[(pivot_row, step)].abs() {
                pivot_row = r;
            }
        }
        let pivot = equations[(pivot_row, step)];
        if !pivot.is_finite() || pivot.abs() <= 1e-14 {
            return None;
        }
        equations.swap_rows(step, pivot_row);
        let inverse = 1.0 / pivot;
        for c in step..20 {
            equations[(step, c)] *= inverse;
        }
        for r in 0..10 {
            if r != step {
                let factor = equations[(r, step)];
                if factor != 0.0 {
                    for c in step..20 {
                        equations[(r, c)] -= factor * equations[(step, c)];
                    }
                }
            }
        }
    }

    // Row k of the reduced system reads: cubic monomial k = -Σ_j B[k][j] · basis_j.
    let mut action = SMatrix::<f64, 10, 10>::zeros();
    // x·x² = x³, x·xy = x²y, x·y² = xy², x·xz = x²z, x·yz = xyz, x·z² = xz².
    let reduced_rows = [0usize, 1, 2, 4, 5, 7];
    for (row, &k) in reduced_rows.iter().enumerate() {
        for j in 0..10 {
            action[(row, j)] = -equations[(k, 10 + j)];
        }
    }
    // x·x = x², x·y = xy, x·z = xz, x·1 = x are basis monomials themselves.
    action[(6, 0)] = 1.0;
    action[(7, 1)] = 1.0;
    action[(8, 3)] = 1.0;
    action[(9, 6)] = 1.0;
    action.iter().all(|v| v.is_finite()).then_some(action)
}

/// Computes the eigenvector of `matrix` for the real eigenvalue `eigenvalue`, by two steps of
/// inverse iteration with a slightly shifted eigenvalue.
fn eigenvector(matrix: &SMatrix<f64, 10, 10>, eigenvalue: f64) -> Option<SVector<f64, 10>> {
    let shift = eigenvalue + 1e-9 * (1.0 + eigenvalue.abs());
    let shifted = matrix - SMatrix::<f64, 10, 10>::identity() * shift;
    let lu = shifted.lu();
    let mut v = SVector::<f64, 10>::from_fn(|i, _| 1.0 + 0.1 * i as f64);
    for _ in 0..2 {
        v = lu.solve(&v)?;
        let norm = v.norm();
        if !norm.is_finite() || norm <= 0.0 {
            return None;
        }
        v /= norm;
    }
    Some(v)
}

/// RANSAC estimator for `E` on normalized coordinates: the 5-point solver on minimal
/// samples and the 8-point estimate projected onto the essential matrices on inlier sets.
#[derive(Debug, Clone, Copy)]
pub struct EssentialEstimator<'a> {
    /// Normalized coordinates in the first image.
    pub x1: &'a [Vector2<f64>],
    /// Corresponding normalized coordinates in the second image.
    pub x2: &'a [Vector2<f64>],
}

impl Estimator for EssentialEstimator<'_> {
    type Model = Matrix3<f64>;
    const MIN_SAMPLE_SIZE: usize = 5;
    const MIN_NONMINIMAL_SIZE: usize = 8;

    fn num_data(&self) -> usize {
        self.x1.len().min(self.x2.len())
    }

    fn estimate_minimal(&self, sample: &[usize], models: &mut Vec<Self::Model>) {
        five_point(self.x1, self.x2, sample, models);
    }

    fn estimate_nonminimal(&self, indices: &[usize], models: &mut Vec<Self::Model>) {
        models.extend(eight_point_essential_indexed(
            self.x1,
            self.x2,
            indices.iter().copied(),
        ));
    }

    fn squared_error(&self, model: &Self::Model, index: usize) -> f64 {
        sampson_error(model, &self.x1[index], &self.x2[index])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_scenes::TwoViewScene;
    use super::*;

    /// Returns the smallest distance between `a` and `±b` after scaling both to unit norm.
    fn distance_up_to_scale(a: &Matrix3<f64>, b: &Matrix3<f64>) -> f64 {
        let (a, b) = (a / a.norm(), b / b.norm());
        (a - b).norm().min((a + b).norm())
    }

    #[test]
    fn five_point_contains_true_essential() {
        for seed in 0..20 {
            let scene = TwoViewScene::new(100 + seed, 5, 0.0, 0.0);
            let truth = scene.essential();
            let mut solutions = Vec::new();
            five_point(&scene.x1, &scene.x2, &[0, 1, 2, 3, 4], &mut solutions);
            assert!(!solutions.is_empty(), "seed {seed}: no solution");
            assert!(
                solutions.len() <= 10,
                "seed {seed}: {} solutions",
                solutions.len()
            );
            let best = solutions
                .iter()
                .map(|e| distance_up_to_scale(e, &truth))
                .fold(f64::INFINITY, f64::min);
            assert!(best < 1e-6, "seed {seed}: closest solution {best}");
        }
    }

    #[test]
    fn five_point_solutions_are_essential() {
        let scene = TwoViewScene::new(7, 5, 0.0, 0.0);
        let mut solutions = Vec::new();
        five_point(&scene.x1, &scene.x2, &[0, 1, 2, 3, 4], &mut solutions);
        for e in &solutions {
            assert!(e.determinant().abs() < 1e-8, "det {}", e.determinant());
            let constraint = 2.0 * e * e.transpose() * e - (e * e.transpose()).trace() * e;
            assert!(
                constraint.norm() < 1e-8,
                "trace constraint {}",
                constraint.norm()
            );
            for i in 0..5 {
                let residual = Vector3::new(scene.x2[i].x, scene.x2[i].y, 1.0)
                    .dot(&(e * Vector3::new(scene.x1[i].x, scene.x1[i].y, 1.0)));
                assert!(residual.abs() < 1e-9, "epipolar residual {residual}");
            }
        }
    }

    #[test]
    fn five_point_rejects_duplicated_points() {
        let scene = TwoViewScene::new(8, 5, 0.0, 0.0);
        let x1 = vec![scene.x1[0]; 5];
        let x2 = vec![scene.x2[0]; 5];
        let mut solutions = Vec::new();
        five_point(&x1, &x2, &[0, 1, 2, 3, 4], &mut solutions);
        assert!(solutions.is_empty());
    }

    #[test]
    fn eight_point_essential_recovers_truth() {
        let scene = TwoViewScene::new(9, 50, 0.0, 0.0);
        let e = eight_point_essential(&scene.x1, &scene.x2).expect("essential matrix");
        assert!(distance_up_to_scale(&e, &scene.essential()) < 1e-8);
    }

    #[test]
    fn decomposition_contains_true_pose() {
        let scene = TwoViewScene::new(10, 5, 0.0, 0.0);
        let truth_r = scene.pose2.rotation.to_rotation_matrix();
        let truth_t = scene.pose2.translation.normalize();
        let candidates = decompose_essential(&scene.essential()).expect("decomposition");
        let found = candidates.iter().any(|(r, t)| {
            (r.matrix() - truth_r.matrix()).norm() < 1e-9 && (t - truth_t).norm() < 1e-9
        });
        assert!(found);
        for (r, _) in &candidates {
            assert!((r.matrix().determinant() - 1.0).abs() < 1e-9);
        }
    }
}
