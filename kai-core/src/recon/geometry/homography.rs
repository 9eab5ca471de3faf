//! Homography: the normalised direct linear transform (DLT) and the symmetric transfer
//! error.
//!
//! A homography `H` maps points of a plane, or of any scene seen from two cameras with the
//! same centre (pure rotation), between images: `x2 ∝ H x1` in homogeneous coordinates.
//! Structure from motion compares how many correspondences a homography explains with how
//! many an essential matrix explains to detect such pairs, whose relative translation
//! cannot be recovered.

use nalgebra::{Matrix3, SMatrix, SVector, Vector2, Vector3};

use super::fundamental::{apply_affine, normalizing_transform, smallest_eigenvector_checked};
use super::ransac::Estimator;

/// A homography with its inverse, both scaled to unit Frobenius norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    /// Maps first-image points to second-image points: `x2 ∝ H x1`.
    pub matrix: Matrix3<f64>,
    /// Maps second-image points back to the first image.
    pub inverse: Matrix3<f64>,
}

impl Homography {
    /// Wraps `matrix`, or returns `None` when it is singular or not finite.
    pub fn new(matrix: Matrix3<f64>) -> Option<Self> {
        let norm = matrix.norm();
        if !norm.is_finite() || norm <= 0.0 {
            return None;
        }
        let matrix = matrix / norm;
        let inverse = matrix.try_inverse()?;
        let inverse_norm = inverse.norm();
        if !inverse_norm.is_finite() {
            return None;
        }
        Some(Self {
            matrix,
            inverse: inverse / inverse_norm,
        })
    }

    /// Maps a first-image point into the second image, or `None` when it maps to infinity.
    pub fn transfer(&self, x1: &Vector2<f64>) -> Option<Vector2<f64>> {
        dehomogenize(&(self.matrix * Vector3::new(x1.x, x1.y, 1.0)))
    }

    /// Returns the symmetric transfer error `|x2 - H x1|² + |x1 - H⁻¹ x2|²` in squared units of the
    /// points; infinite when either point maps to infinity.
    #[inline]
    pub fn symmetric_transfer_error(&self, x1: &Vector2<f64>, x2: &Vector2<f64>) -> f64 {
        let forward = dehomogenize(&(self.matrix * Vector3::new(x1.x, x1.y, 1.0)));
        let backward = dehomogenize(&(self.inverse * Vector3::new(x2.x, x2.y, 1.0)));
        match (forward, backward) {
            (Some(f), Some(b)) => (x2 - f).norm_squared() + (x1 - b).norm_squared(),
            _ => f64::INFINITY,
        }
    }
}

#[inline]
fn dehomogenize(p: &Vector3<f64>) -> Option<Vector2<f64>> {
    (p.z.abs() > 1e-15).then(|| Vector2::new(p.x / p.z, p.y / p.z))
}

/// Returns the two DLT rows of the correspondence `p1 → p2`, with `H` in row-major order.
fn dlt_rows(p1: &Vector2<f64>, p2: &Vector2<f64>) -> [[f64; 9]; 2] {
    [
        [
            p1.x,
            p1.y,
            1.0,
            0.0,
            0.0,
            0.0,
            -p2.x * p1.x,
            -p2.x * p1.y,
            -p2.x,
        ],
        [
            0.0,
            0.0,
            0.0,
            p1.x,
            p1.y,
            1.0,
            -p2.y * p1.x,
            -p2.y * p1.y,
            -p2.y,
        ],
    ]
}

/// Estimates `H` from four or more correspondences with the normalised DLT: least squares
/// for more than four. Returns `None` for degenerate input (for example three collinear
/// points among four, or duplicated points).
pub fn homography_dlt(x1: &[Vector2<f64>], x2: &[Vector2<f64>]) -> Option<Homography> {
    if x1.len() != x2.len() {
        return None;
    }
    homography_dlt_indexed(x1, x2, 0..x1.len())
}

fn homography_dlt_indexed<I>(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    indices: I,
) -> Option<Homography>
where
    I: Iterator<Item = usize> + Clone,
{
    let count = indices.clone().count();
    if count < 4 {
        return None;
    }
    let t1 = normalizing_transform(indices.clone().map(|i| x1[i]))?;
    let t2 = normalizing_transform(indices.clone().map(|i| x2[i]))?;
    let h = if count == 4 {
        minimal_null_vector(x1, x2, indices, &t1, &t2)?
    } else {
        let mut ata = SMatrix::<f64, 9, 9>::zeros();
        for i in indices {
            for row in dlt_rows(&apply_affine(&t1, &x1[i]), &apply_affine(&t2, &x2[i])) {
                let row = SVector::<f64, 9>::from_row_slice(&row);
                ata.ger(1.0, &row, &row, 1.0);
            }
        }
        smallest_eigenvector_checked(ata)?
    };
    let h_normalized = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    let t2_inverse = t2.try_inverse()?;
    Homography::new(t2_inverse * h_normalized * t1)
}

/// Returns the null vector of the 8x9 DLT system of four normalised correspondences, by
/// Gauss-Jordan elimination with full pivoting.
fn minimal_null_vector<I>(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    indices: I,
    t1: &Matrix3<f64>,
    t2: &Matrix3<f64>,
) -> Option<SVector<f64, 9>>
where
    I: Iterator<Item = usize>,
{
    let mut a = SMatrix::<f64, 8, 9>::zeros();
    for (k, i) in indices.enumerate() {
        let rows = dlt_rows(&apply_affine(t1, &x1[i]), &apply_affine(t2, &x2[i]));
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                a[(2 * k + r, c)] = *value;
            }
        }
    }
    let mut columns: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    for step in 0..8 {
        let (mut pivot_row, mut pivot_col, mut pivot_value) = (step, step, 0.0);
        for r in step..8 {
            for c in step..9 {
                let value = a[(r, columns[c])].abs();
                if value > pivot_value {
                    (pivot_row, pivot_col, pivot_value) = (r, c, value);
                }
            }
        }
        // Entries of the normalised system are of order one.
        if pivot_value <= 1e-10 {
            return None;
        }
        a.swap_rows(step, pivot_row);
        columns.swap(step, pivot_col);
        let pc = columns[step];
        let inverse = 1.0 / a[(step, pc)];
        for c in 0..9 {
            a[(step, c)] *= inverse;
        }
        for r in 0..8 {
            if r != step {
                let factor = a[(r, pc)];
                if factor != 0.0 {
                    for c in 0..9 {
                        a[(r, c)] -= factor * a[(step, c)];
                    }
                }
            }
        }
    }
    let free = columns[8];
    let mut v = SVector::<f64, 9>::zeros();
    v[free] = 1.0;
    for r in 0..8 {
        v[columns[r]] = -a[(r, free)];
    }
    Some(v)
}

/// RANSAC estimator for `H`: the 4-point DLT on samples and least-squares DLT on inlier
/// sets, scored by the symmetric transfer error.
#[derive(Debug, Clone, Copy)]
pub struct HomographyEstimator<'a> {
    /// Points in the first image.
    pub x1: &'a [Vector2<f64>],
    /// Corresponding points in the second image.
    pub x2: &'a [Vector2<f64>],
}

impl Estimator for HomographyEstimator<'_> {
    type Model = Homography;
    const MIN_SAMPLE_SIZE: usize = 4;
    const MIN_NONMINIMAL_SIZE: usize = 5;

    fn num_data(&self) -> usize {
        self.x1.len().min(self.x2.len())
    }

    fn estimate_minimal(&self, sample: &[usize], models: &mut Vec<Self::Model>) {
        models.extend(homography_dlt_indexed(
            self.x1,
            self.x2,
            sample.iter().copied(),
        ));
    }

    fn estimate_nonminimal(&self, indices: &[usize], models: &mut Vec<Self::Model>) {
        models.extend(homography_dlt_indexed(
            self.x1,
            self.x2,
            indices.iter().copied(),
        ));
    }

    fn squared_error(&self, model: &Self::Model, index: usize) -> f64 {
        model.symmetric_transfer_error(&self.x1[index], &self.x2[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::pose::Pose;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Pixel projections of random points on the plane z = 5 + 0.2 x - 0.1 y into two
    /// cameras (focal 1000 px, principal point (500, 500)).
    fn plane_correspondences(seed: u64, count: usize) -> (Vec<Vector2<f64>>, Vec<Vector2<f64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pose2 = Pose::from_angle_axis(
            &Vector3::new(0.05, -0.1, 0.02),
            Vector3::new(-0.8, 0.1, 0.05),
        );
        let project =
            |p: Vector3<f64>| Vector2::new(1000.0 * p.x / p.z + 500.0, 1000.0 * p.y / p.z + 500.0);
        let mut x1 = Vec::new();
        let mut x2 = Vec::new();
        for _ in 0..count {
            let (x, y) = (rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
            let point = Vector3::new(x, y, 5.0 + 0.2 * x - 0.1 * y);
            x1.push(project(point));
            x2.push(project(pose2.transform(&point)));
        }
        (x1, x2)
    }

    #[test]
    fn dlt_is_exact_on_plane() {
        for count in [4, 30] {
            let (x1, x2) = plane_correspondences(3, count);
            let h = homography_dlt(&x1, &x2).expect("homography");
            for (a, b) in x1.iter().zip(&x2) {
                let mapped = h.transfer(a).expect("finite point");
                assert!(
                    (mapped - b).norm() < 1e-6,
                    "{count} points: transfer error {}",
                    (mapped - b).norm()
                );
                assert!(h.symmetric_transfer_error(a, b) < 1e-10);
            }
        }
    }

    #[test]
    fn dlt_rejects_degenerate_points() {
        let (x1, x2) = plane_correspondences(4, 4);
        let duplicated1 = vec![x1[0]; 4];
        let duplicated2 = vec![x2[0]; 4];
        assert!(homography_dlt(&duplicated1, &duplicated2).is_none());
        // Four collinear points do not determine a homography.
        let line1: Vec<_> = (0..4)
            .map(|i| Vector2::new(i as f64, 2.0 * i as f64))
            .collect();
        let line2: Vec<_> = (0..4)
            .map(|i| Vector2::new(3.0 * i as f64, 1.0 - i as f64))
            .collect();
        assert!(homography_dlt(&line1, &line2).is_none());
        assert!(homography_dlt(&x1[..3], &x2[..3]).is_none());
    }
}
