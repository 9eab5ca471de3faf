//! Triangle meshes: surface reconstruction from oriented points, clean-up and levels of
//! detail.

pub mod cleanup;
pub mod lod;
pub mod poisson;
mod topology;

pub use cleanup::{
    merge_duplicate_vertices, remove_degenerate_triangles, remove_non_manifold_edges,
    remove_small_components, trim_low_density,
};
pub use poisson::{PoissonOptions, PoissonSurface, poisson_reconstruct};

use nalgebra::Vector3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// An indexed triangle mesh with optional per-vertex normals and colours.
///
/// Positions are `f32`, as renderers and 3D file formats store them. Triangles wind
/// counter-clockwise seen from outside, so their right-hand normals point outwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriangleMesh {
    /// Vertex positions in world coordinates.
    pub positions: Vec<[f32; 3]>,
    /// Unit normal of each vertex, when known.
    pub normals: Option<Vec<[f32; 3]>>,
    /// RGB colour of each vertex, when known.
    pub colors: Option<Vec<[u8; 3]>>,
    /// Vertex indices of each triangle.
    pub triangles: Vec<[u32; 3]>,
}

impl TriangleMesh {
    /// Checks that normals and colours have one entry per vertex, that positions and
    /// normals are finite and that every triangle index names a vertex.
    pub fn validate(&self) -> Result<()> {
        let count = self.positions.len();
        if let Some(normals) = &self.normals {
            if normals.len() != count {
                return Err(Error::invalid(
                    "mesh normals",
                    format!("{} normals for {count} vertices", normals.len()),
                ));
            }
            if let Some(index) = normals
                .iter()
                .position(|n| !n.iter().all(|c| c.is_finite()))
            {
                return Err(Error::invalid(
                    "mesh normals",
                    format!("normal {index} is {:?}, not finite", normals[index]),
                ));
            }
        }
        if let Some(colors) = &self.colors
            && colors.len() != count
        {
            return Err(Error::invalid(
                "mesh colors",
                format!("{} colours for {count} vertices", colors.len()),
            ));
        }
        if let Some(index) = self
            .positions
            .iter()
            .position(|p| !p.iter().all(|c| c.is_finite()))
        {
            return Err(Error::invalid(
                "mesh positions",
                format!("vertex {index} is {:?}, not finite", self.positions[index]),
            ));
        }
        if let Some((index, triangle)) = self
            .triangles
            .iter()
            .enumerate()
            .find(|(_, t)| t.iter().any(|&v| v as usize >= count))
        {
            return Err(Error::invalid(
                "mesh triangles",
                format!("triangle {index} is {triangle:?}, but the mesh has {count} vertices"),
            ));
        }
        Ok(())
    }

    /// Returns the position of vertex `index` in double precision.
    pub fn position(&self, index: u32) -> Vector3<f64> {
        let p = self.positions[index as usize];
        Vector3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]))
    }

    /// Returns the right-hand normal of a triangle scaled to twice its area.
    fn weighted_normal(&self, triangle: &[u32; 3]) -> Vector3<f64> {
        let [a, b, c] = triangle.map(|v| self.position(v));
        (b - a).cross(&(c - a))
    }

    /// Sets each vertex normal to the area-weighted mean of its triangles' normals; a
    /// vertex that no triangle with area uses gets (0, 0, 0).
    pub fn compute_vertex_normals(&mut self) {
        let mut sums = vec![Vector3::zeros(); self.positions.len()];
        for triangle in &self.triangles {
            let normal = self.weighted_normal(triangle);
            for &v in triangle {
                sums[v as usize] += normal;
            }
        }
        let normals = sums
            .iter()
            .map(|n| {
                let unit = n.try_normalize(0.0).unwrap_or_else(Vector3::zeros);
                [unit.x as f32, unit.y as f32, unit.z as f32]
            })
            .collect();
        self.normals = Some(normals);
    }

    /// Returns the smallest and largest coordinates of the vertices, or `None` without
    /// vertices.
    pub fn bounding_box(&self) -> Option<(Vector3<f64>, Vector3<f64>)> {
        if self.positions.is_empty() {
            return None;
        }
        let mut low = self.position(0);
        let mut high = low;
        for index in 1..self.positions.len() as u32 {
            let p = self.position(index);
            low = low.inf(&p);
            high = high.sup(&p);
        }
        Some((low, high))
    }

    /// Returns the total area of the triangles.
    pub fn surface_area(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| 0.5 * self.weighted_normal(t).norm())
            .sum()
    }

    /// Returns `count` points drawn uniformly by area from the triangles, repeatable for a
    /// given `seed`; empty when the mesh has no area.
    pub fn sample_points(&self, count: usize, seed: u64) -> Vec<Vector3<f64>> {
        let mut cumulative = Vec::with_capacity(self.triangles.len());
        let mut total = 0.0;
        for triangle in &self.triangles {
            total += 0.5 * self.weighted_normal(triangle).norm();
            cumulative.push(total);
        }
        if total <= 0.0 {
            return Vec::new();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let target = rng.random::<f64>() * total;
                let index = cumulative
                    .partition_point(|&c| c <= target)
                    .min(cumulative.len() - 1);
                let [a, b, c] = self.triangles[index].map(|v| self.position(v));
                // Folding the unit square onto the triangle keeps the density uniform.
                let (mut u, mut v) = (rng.random::<f64>(), rng.random::<f64>());
                if u + v > 1.0 {
                    (u, v) = (1.0 - u, 1.0 - v);
                }
                a + (b - a) * u + (c - a) * v
            })
            .collect()
    }

    /// Removes vertices that no triangle uses, renumbering the triangles, and returns how
    /// many were removed.
    pub fn remove_unreferenced_vertices(&mut self) -> usize {
        let mut used = vec![false; self.positions.len()];
        for triangle in &self.triangles {
            for &v in triangle {
                used[v as usize] = true;
            }
        }
        self.keep_vertices(&used)
    }

    /// Keeps the vertices marked in `keep`, drops every triangle that uses another vertex,
    /// renumbers the rest and returns how many vertices were removed.
    pub(crate) fn keep_vertices(&mut self, keep: &[bool]) -> usize {
        let mut new_index = vec![u32::MAX; keep.len()];
        let mut next = 0u32;
        for (index, &kept) in keep.iter().enumerate() {
            if kept {
                new_index[index] = next;
                next += 1;
            }
        }
        let removed = keep.len() - next as usize;
        if removed == 0 {
            return 0;
        }
        retain_marked(&mut self.positions, keep);
        if let Some(normals) = &mut self.normals {
            retain_marked(normals, keep);
        }
        if let Some(colors) = &mut self.colors {
            retain_marked(colors, keep);
        }
        self.triangles
            .retain(|t| t.iter().all(|&v| keep[v as usize]));
        for triangle in &mut self.triangles {
            *triangle = triangle.map(|v| new_index[v as usize]);
        }
        removed
    }
}

/// Keeps the entries of `values` whose flag in `keep` is set.
fn retain_marked<T>(values: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    values.retain(|_| *flags.next().unwrap_or(&false));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a unit cube with outward-facing triangles.
    pub(crate) fn cube() -> TriangleMesh {
        let positions = (0..8)
            .map(|i| [(i & 1) as f32, ((i >> 1) & 1) as f32, ((i >> 2) & 1) as f32])
            .collect();
        let triangles = vec![
            [0, 2, 1],
            [1, 2, 3],
            [4, 5, 6],
            [5, 7, 6],
            [0, 1, 4],
            [1, 5, 4],
            [2, 6, 3],
            [3, 6, 7],
            [0, 4, 2],
            [2, 4, 6],
            [1, 3, 5],
            [3, 7, 5],
        ];
        TriangleMesh {
            positions,
            normals: None,
            colors: None,
            triangles,
        }
    }

    #[test]
    fn cube_measures() {
        let mut mesh = cube();
        mesh.validate().unwrap();
        assert!((mesh.surface_area() - 6.0).abs() < 1e-12);
        let (low, high) = mesh.bounding_box().unwrap();
        assert_eq!(low, Vector3::zeros());
        assert_eq!(high, Vector3::repeat(1.0));
        assert!(mesh.is_edge_manifold());
        assert!(mesh.is_watertight());
        mesh.compute_vertex_normals();
        // Corner (1, 1, 1) gets the mean of three outward face normals.
        let n = mesh.normals.as_ref().unwrap()[7];
        let expected = 1.0 / 3f32.sqrt();
        for c in n {
            assert!((c - expected).abs() < 1e-6, "{n:?}");
        }
    }

    #[test]
    fn samples_lie_on_the_surface() {
        let mesh = cube();
        let points = mesh.sample_points(2000, 7);
        assert_eq!(points.len(), 2000);
        assert_eq!(points, mesh.sample_points(2000, 7));
        let mut on_top = 0;
        for p in &points {
            let on_face = p.iter().any(|&c| c.abs() < 1e-9 || (c - 1.0).abs() < 1e-9);
            assert!(on_face, "{p:?}");
            on_top += usize::from((p.z - 1.0).abs() < 1e-9);
        }
        // One face in six: 333 expected, binomial standard deviation about 17.
        assert!((250..420).contains(&on_top), "{on_top}");
        assert!(TriangleMesh::default().sample_points(5, 1).is_empty());
    }

    #[test]
    fn validate_names_bad_parts() {
        let mut mesh = cube();
        mesh.triangles.push([0, 1, 8]);
        let message = mesh.validate().unwrap_err().to_string();
        assert!(message.contains("triangle 12"), "{message}");
        let mut mesh = cube();
        mesh.positions[3][1] = f32::NAN;
        assert!(
            mesh.validate()
                .unwrap_err()
                .to_string()
                .contains("vertex 3")
        );
        let mut mesh = cube();
        mesh.colors = Some(vec![[0, 0, 0]; 7]);
        assert!(
            mesh.validate()
                .unwrap_err()
                .to_string()
                .contains("7 colours")
        );
        let mut mesh = cube();
        mesh.normals = Some(vec![[0.0, 0.0, 1.0]; 9]);
        assert!(
            mesh.validate()
                .unwrap_err()
                .to_string()
                .contains("9 normals")
        );
    }

    #[test]
    fn unreferenced_vertices_are_removed() {
        let mut mesh = cube();
        mesh.positions.insert(0, [5.0, 5.0, 5.0]);
        for t in &mut mesh.triangles {
            *t = t.map(|v| v + 1);
        }
        mesh.colors = Some((0..9).map(|i| [i as u8, 0, 0]).collect());
        assert_eq!(mesh.remove_unreferenced_vertices(), 1);
        assert_eq!(mesh.positions.len(), 8);
        assert_eq!(mesh.colors.as_ref().unwrap()[0], [1, 0, 0]);
        assert_eq!(mesh.triangles, cube().triangles);
        assert_eq!(mesh.remove_unreferenced_vertices(), 0);
    }
}
