//! Fundamental matrix: the normalised 8-point algorithm and the Sampson error.
//!
//! A fundamental matrix `F` relates corresponding points by `x2ᵀ F x1 = 0` with `x1`, `x2`
//! homogeneous (pixel or normalized) coordinates in the first and second image. The
//! normalised 8-point algorithm solves the linear system in coordinates translated to their
//! centroid and scaled to a mean distance of √2 (Hartley normalisation). It then enforces
//! rank 2 by zeroing the smallest singular value.

use nalgebra::{Matrix3, SMatrix, SVector, SymmetricEigen, Vector2, Vector3};

use super::ransac::Estimator;

/// Returns the similarity that moves `points` to their centroid and scales them to a mean distance
/// of √2 from it (Hartley normalisation), or `None` when the points coincide.
pub fn normalizing_transform(
    points: impl Iterator<Item = Vector2<f64>> + Clone,
) -> Option<Matrix3<f64>> {
    let mut count = 0usize;
    let mut centroid = Vector2::zeros();
    for p in points.clone() {
        centroid += p;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    centroid /= count as f64;
    let mean_distance = points.map(|p| (p - centroid).norm()).sum::<f64>() / count as f64;
    if !mean_distance.is_finite() || mean_distance <= 1e-300 {
        return None;
    }
    let scale = std::f64::consts::SQRT_2 / mean_distance;
    Some(Matrix3::new(
        scale,
        0.0,
        -scale * centroid.x,
        0.0,
        scale,
        -scale * centroid.y,
        0.0,
        0.0,
        1.0,
    ))
}

/// Applies an affine normalising transform to a point.
#[inline]
pub(crate) fn apply_affine(t: &Matrix3<f64>, p: &Vector2<f64>) -> Vector2<f64> {
    Vector2::new(t[(0, 0)] * p.x + t[(0, 2)], t[(1, 1)] * p.y + t[(1, 2)])
}

/// Estimates `F` from eight or more correspondences with the normalised 8-point
/// algorithm. Returns `None` when the points are degenerate (fewer than 8, coincident, or
/// the linear system has more than one null vector).
pub fn eight_point(x1: &[Vector2<f64>], x2: &[Vector2<f64>]) -> Option<Matrix3<f64>> {
    if x1.len() != x2.len() {
        return None;
    }
    eight_point_indexed(x1, x2, 0..x1.len())
}

/// [`eight_point`] on the correspondences at `indices`.
pub(crate) fn eight_point_indexed<I>(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    indices: I,
) -> Option<Matrix3<f64>>
where
    I: Iterator<Item = usize> + Clone,
{
    let f = linear_fundamental(x1, x2, indices)?;
    Some(enforce_rank2(&f))
}

/// Returns the normalised linear solution before the rank-2 step, denormalised.
pub(crate) fn linear_fundamental<I>(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    indices: I,
) -> Option<Matrix3<f64>>
where
    I: Iterator<Item = usize> + Clone,
{
    if indices.clone().count() < 8 {
        return None;
    }
    let t1 = normalizing_transform(indices.clone().map(|i| x1[i]))?;
    let t2 = normalizing_transform(indices.clone().map(|i| x2[i]))?;

    // Normal equations AᵀA of the system x2ᵀ F x1 = 0, one row kron(x2, x1) per
    // correspondence, with F in row-major order.
    let mut ata = SMatrix::<f64, 9, 9>::zeros();
    for i in indices {
        let p1 = apply_affine(&t1, &x1[i]);
        let p2 = apply_affine(&t2, &x2[i]);
        let row = SVector::<f64, 9>::from_column_slice(&[
            p2.x * p1.x,
            p2.x * p1.y,
            p2.x,
            p2.y * p1.x,
            p2.y * p1.y,
            p2.y,
            p1.x,
            p1.y,
            1.0,
        ]);
        ata.ger(1.0, &row, &row, 1.0);
    }
    let null = smallest_eigenvector_checked(ata)?;
    let f_normalized = Matrix3::new(
        null[0], null[1], null[2], null[3], null[4], null[5], null[6], null[7], null[8],
    );
    let f = t2.transpose() * f_normalized * t1;
    let norm = f.norm();
    (norm > 0.0 && norm.is_finite()).then(|| f / norm)
}

/// Returns the eigenvector of the smallest eigenvalue of a 9x9 normal matrix, or `None` when the
/// second smallest eigenvalue is also (numerically) zero, i.e. the null space is not one
/// dimensional and the data are degenerate.
pub(crate) fn smallest_eigenvector_checked(ata: SMatrix<f64, 9, 9>) -> Option<SVector<f64, 9>> {
    if !ata.iter().all(|v| v.is_finite()) {
        return None;
    }
    let eigen = SymmetricEigen::new(ata);
    let mut order: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    order.sort_by(|&a, &b| eigen.eigenvalues[a].total_cmp(&eigen.eigenvalues[b]));
    let largest = eigen.eigenvalues[order[8]].abs();
    if largest.is_nan() || largest <= 0.0 || eigen.eigenvalues[order[1]].abs() <= 1e-10 * largest {
        return None;
    }
    Some(eigen.eigenvectors.column(order[0]).into_owned())
}

/// Sets the smallest singular value of `f` to zero.
pub fn enforce_rank2(f: &Matrix3<f64>) -> Matrix3<f64> {
    let svd = f.svd(true, true);
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        return *f;
    };
    let mut s = svd.singular_values;
    // nalgebra sorts singular values in decreasing order.
    s[2] = 0.0;
    u * Matrix3::from_diagonal(&s) * v_t
}

/// Returns the squared Sampson distance of the correspondence `(x1, x2)` to `x2ᵀ F x1 = 0`, a first
/// order approximation of the squared reprojection error, in squared units of the points.
#[inline]
pub fn sampson_error(f: &Matrix3<f64>, x1: &Vector2<f64>, x2: &Vector2<f64>) -> f64 {
    let p1 = Vector3::new(x1.x, x1.y, 1.0);
    let p2 = Vector3::new(x2.x, x2.y, 1.0);
    let fx1 = f * p1;
    let ftx2 = f.tr_mul(&p2);
    let residual = p2.dot(&fx1);
    let denominator = fx1.x * fx1.x + fx1.y * fx1.y + ftx2.x * ftx2.x + ftx2.y * ftx2.y;
    if denominator <= 0.0 {
        return f64::INFINITY;
    }
    residual * residual / denominator
}

/// RANSAC estimator for `F` with the 8-point algorithm as minimal and non-minimal solver.
#[derive(Debug, Clone, Copy)]
pub struct FundamentalEstimator<'a> {
    /// Points in the first image.
    pub x1: &'a [Vector2<f64>],
    /// Corresponding points in the second image.
    pub x2: &'a [Vector2<f64>],
}

impl Estimator for FundamentalEstimator<'_> {
    type Model = Matrix3<f64>;
    const MIN_SAMPLE_SIZE: usize = 8;
    const MIN_NONMINIMAL_SIZE: usize = 8;

    fn num_data(&self) -> usize {
        self.x1.len().min(self.x2.len())
    }

    fn estimate_minimal(&self, sample: &[usize], models: &mut Vec<Self::Model>) {
        models.extend(eight_point_indexed(
            self.x1,
            self.x2,
            sample.iter().copied(),
        ));
    }

    fn estimate_nonminimal(&self, indices: &[usize], models: &mut Vec<Self::Model>) {
        models.extend(eight_point_indexed(
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

    #[test]
    fn eight_point_satisfies_epipolar_constraint() {
        let scene = TwoViewScene::new(11, 100, 0.0, 0.0);
        // Pixel coordinates exercise the Hartley normalisation.
        let (p1, p2) = scene.pixels();
        let f = eight_point(&p1, &p2).expect("fundamental matrix");
        assert!(f.determinant().abs() < 1e-12, "det {}", f.determinant());
        for (a, b) in p1.iter().zip(&p2) {
            let h1 = Vector3::new(a.x, a.y, 1.0);
            let h2 = Vector3::new(b.x, b.y, 1.0);
            // Relative to the size of the terms, for pixel coordinates of order 1000.
            let residual = h2.dot(&(f * h1)) / (h1.norm() * h2.norm());
            assert!(residual.abs() < 1e-12, "x2ᵀ F x1 / |x1| |x2| = {residual}");
            let distance = sampson_error(&f, a, b).sqrt();
            assert!(distance < 1e-3, "Sampson distance {distance} px");
        }
    }

    #[test]
    fn eight_point_rejects_duplicated_points() {
        let scene = TwoViewScene::new(12, 8, 0.0, 0.0);
        let x1 = vec![scene.x1[0]; 10];
        let x2 = vec![scene.x2[0]; 10];
        assert!(eight_point(&x1, &x2).is_none());
        assert!(eight_point(&scene.x1[..7], &scene.x2[..7]).is_none());
    }

    #[test]
    fn sampson_error_approximates_pixel_offset() {
        let scene = TwoViewScene::new(13, 20, 0.0, 0.0);
        let (p1, p2) = scene.pixels();
        let f = eight_point(&p1, &p2).expect("fundamental matrix");
        // Moving a point 2 px along its epipolar line's normal gives a Sampson distance of
        // at most about 2 px: the Sampson distance spreads the correction over both images.
        let line = f * Vector3::new(p1[0].x, p1[0].y, 1.0);
        let normal = Vector2::new(line.x, line.y).normalize();
        let moved = p2[0] + 2.0 * normal;
        let distance = sampson_error(&f, &p1[0], &moved).sqrt();
        assert!(distance <= 2.05, "distance {distance}");
        assert!(distance >= 0.5, "distance {distance}");
    }
}
