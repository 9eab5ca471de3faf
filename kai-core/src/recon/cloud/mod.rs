//! Point clouds: a k-d tree for neighbour queries, and the clean-up steps that run between
//! dense reconstruction and meshing (down-sampling, outlier removal, normals).

mod kdtree;
mod metrics;
mod normals;
mod outliers;
mod voxel;

pub use kdtree::KdTree;
pub use metrics::{ChamferDistance, chamfer_distance};
pub use normals::{estimate_normals, orient_normals_consistent, orient_normals_towards};
pub use outliers::{radius_outliers, statistical_outliers};
pub use voxel::voxel_down_sample;

use nalgebra::Vector3;

use crate::error::{Error, Result};

/// Points with colours and optional normals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointCloud {
    /// Positions in world coordinates.
    pub positions: Vec<Vector3<f64>>,
    /// RGB colour of each point.
    pub colors: Vec<[u8; 3]>,
    /// Unit normal of each point, when known.
    pub normals: Option<Vec<Vector3<f64>>>,
}

impl PointCloud {
    /// Rounds positions and normals to 32-bit floats, the precision PLY files store, so
    /// the cloud equals what [`Self::write_ply`] and [`Self::read_ply`] give back.
    pub fn round_to_f32(&mut self) {
        let round = |v: &mut Vector3<f64>| *v = v.map(|x| f64::from(x as f32));
        self.positions.iter_mut().for_each(round);
        if let Some(normals) = &mut self.normals {
            normals.iter_mut().for_each(round);
        }
    }

    /// Returns the number of points.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Returns whether the cloud has no points.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Returns a cloud of the points at `indices`, in that order, with their colours and
    /// normals.
    ///
    /// # Panics
    ///
    /// Panics when an index is out of range, or when the colours or normals are shorter than
    /// the positions (which [`PointCloud::validate`] rejects).
    pub fn select(&self, indices: &[usize]) -> PointCloud {
        PointCloud {
            positions: indices.iter().map(|&i| self.positions[i]).collect(),
            colors: indices.iter().map(|&i| self.colors[i]).collect(),
            normals: self
                .normals
                .as_ref()
                .map(|normals| indices.iter().map(|&i| normals[i]).collect()),
        }
    }

    /// Returns the minimum and maximum corners of the axis-aligned box around the points, or
    /// `None` for an empty cloud.
    ///
    /// Non-finite coordinates are not skipped, so validate the cloud first.
    pub fn bounding_box(&self) -> Option<(Vector3<f64>, Vector3<f64>)> {
        let first = *self.positions.first()?;
        let corners = self
            .positions
            .iter()
            .fold((first, first), |(min, max), p| (min.inf(p), max.sup(p)));
        Some(corners)
    }

    /// Checks that there is one colour (and one normal, when normals are present) per
    /// position and that every position and normal is finite.
    pub fn validate(&self) -> Result<()> {
        if self.colors.len() != self.positions.len() {
            return Err(Error::invalid(
                "point cloud colors",
                format!(
                    "{} colors for {} positions",
                    self.colors.len(),
                    self.positions.len()
                ),
            ));
        }
        if let Some(index) = first_non_finite(&self.positions) {
            return Err(Error::invalid(
                "point cloud positions",
                format!(
                    "position {index} is {:?}, which is not finite",
                    self.positions[index]
                ),
            ));
        }
        if let Some(normals) = &self.normals {
            if normals.len() != self.positions.len() {
                return Err(Error::invalid(
                    "point cloud normals",
                    format!(
                        "{} normals for {} positions",
                        normals.len(),
                        self.positions.len()
                    ),
                ));
            }
            if let Some(index) = first_non_finite(normals) {
                return Err(Error::invalid(
                    "point cloud normals",
                    format!(
                        "normal {index} is {:?}, which is not finite",
                        normals[index]
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn first_non_finite(vectors: &[Vector3<f64>]) -> Option<usize> {
    vectors
        .iter()
        .position(|v| !v.iter().all(|c| c.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_points() -> PointCloud {
        PointCloud {
            positions: vec![
                Vector3::new(0.0, 1.0, 2.0),
                Vector3::new(-1.0, 5.0, 0.5),
                Vector3::new(3.0, -2.0, 1.0),
            ],
            colors: vec![[1, 2, 3], [4, 5, 6], [7, 8, 9]],
            normals: Some(vec![Vector3::x(), Vector3::y(), Vector3::z()]),
        }
    }

    #[test]
    fn select_keeps_order_and_attributes() {
        let cloud = three_points();
        let picked = cloud.select(&[2, 0, 2]);
        assert_eq!(
            picked.positions,
            vec![cloud.positions[2], cloud.positions[0], cloud.positions[2]]
        );
        assert_eq!(picked.colors, vec![[7, 8, 9], [1, 2, 3], [7, 8, 9]]);
        assert_eq!(
            picked.normals,
            Some(vec![Vector3::z(), Vector3::x(), Vector3::z()])
        );
        assert!(cloud.select(&[]).is_empty());
    }

    #[test]
    fn bounding_box_spans_points() {
        let (min, max) = three_points().bounding_box().unwrap();
        assert_eq!(min, Vector3::new(-1.0, -2.0, 0.5));
        assert_eq!(max, Vector3::new(3.0, 5.0, 2.0));
        assert_eq!(PointCloud::default().bounding_box(), None);
    }

    #[test]
    fn validate_rejects_bad_clouds() {
        assert!(three_points().validate().is_ok());
        assert!(PointCloud::default().validate().is_ok());

        let mut short_colors = three_points();
        short_colors.colors.pop();
        let message = short_colors.validate().unwrap_err().to_string();
        assert!(message.contains("2 colors for 3 positions"), "{message}");

        let mut short_normals = three_points();
        short_normals.normals.as_mut().unwrap().pop();
        let message = short_normals.validate().unwrap_err().to_string();
        assert!(message.contains("2 normals for 3 positions"), "{message}");

        let mut nan_position = three_points();
        nan_position.positions[1].y = f64::NAN;
        let message = nan_position.validate().unwrap_err().to_string();
        assert!(message.contains("position 1"), "{message}");

        let mut infinite_normal = three_points();
        infinite_normal.normals.as_mut().unwrap()[2].x = f64::INFINITY;
        let message = infinite_normal.validate().unwrap_err().to_string();
        assert!(message.contains("normal 2"), "{message}");
    }

    #[test]
    fn rounding_matches_a_ply_round_trip() {
        let mut cloud = three_points();
        cloud.positions[0] = Vector3::new(0.1, 1.0 / 3.0, std::f64::consts::PI);
        cloud.normals.as_mut().unwrap()[1] = Vector3::new(0.6, 0.8, 1e-9).normalize();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.ply");
        cloud
            .write_ply(&path, crate::recon::export::PlyFormat::BinaryLittleEndian)
            .unwrap();
        let read = PointCloud::read_ply(&path).unwrap();
        assert_ne!(
            read.positions, cloud.positions,
            "f64 values change in the file"
        );
        cloud.round_to_f32();
        assert_eq!(read.positions, cloud.positions);
        assert_eq!(read.normals, cloud.normals);
    }
}
