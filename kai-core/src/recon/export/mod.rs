//! Writing reconstructions in formats other tools read: COLMAP's text model (with a
//! reader for round trips and for COLMAP's own output), PLY point clouds and meshes, OBJ
//! meshes and binary glTF (GLB) meshes, optionally compressed with EXT_meshopt_compression.
//!
//! Every reader bounds what a file can make it allocate and names the file and the place
//! in it when it rejects one.

mod atomic;
pub mod colmap;
pub mod gltf;
pub mod obj;
pub mod ply;

pub use colmap::{read_colmap_text, write_colmap_text};
pub use gltf::{Compression, GlbOptions};
pub use ply::PlyFormat;

pub(crate) use atomic::write_atomically;

use crate::error::{Error, Result};
use crate::recon::mesh::TriangleMesh;

/// Checks what every writer relies on: attribute lengths match the vertex count, values
/// are finite and triangle indices are in range.
pub(crate) fn check_mesh(mesh: &TriangleMesh) -> Result<()> {
    let count = mesh.positions.len();
    if count > u32::MAX as usize {
        return Err(Error::invalid(
            "mesh",
            format!("{count} vertices exceed the 32-bit index range"),
        ));
    }

    if let Some(normals) = &mesh.normals
        && normals.len() != count
    {
        return Err(Error::invalid(
            "mesh normals",
            format!("{} normals for {count} vertices", normals.len()),
        ));
    }
    if let Some(colors) = &mesh.colors
        && colors.len() != count
    {
        return Err(Error::invalid(
            "mesh colors",
            format!("{} colours for {count} vertices", colors.len()),
        ));
    }

    if let Some(vertex) = mesh
        .positions
        .iter()
        .position(|p| !p.iter().all(|v| v.is_finite()))
    {
        return Err(Error::invalid(
            "mesh positions",
            format!("vertex {vertex} has a coordinate that is not finite"),
        ));
    }
    if let Some(normals) = &mesh.normals
        && let Some(vertex) = normals
            .iter()
            .position(|n| !n.iter().all(|v| v.is_finite()))
    {
        return Err(Error::invalid(
            "mesh normals",
            format!("vertex {vertex} has a normal that is not finite"),
        ));
    }

    for (index, triangle) in mesh.triangles.iter().enumerate() {
        if let Some(&vertex) = triangle.iter().find(|&&v| v as usize >= count) {
            return Err(Error::invalid(
                "mesh triangles",
                format!("triangle {index} refers to vertex {vertex}, but the mesh has {count}"),
            ));
        }
    }
    Ok(())
}

/// Meshes for the format and level-of-detail tests.
#[cfg(test)]
pub(crate) mod test_meshes {
    use crate::recon::mesh::TriangleMesh;

    /// Builds a UV sphere of radius 1 with `rings` latitude bands and `segments`
    /// longitude segments, outward normals and colours that vary over the surface.
    pub(crate) fn sphere(rings: u32, segments: u32) -> TriangleMesh {
        let mut positions = Vec::new();
        let mut normals = Vec::new();
        let mut colors = Vec::new();
        positions.push([0.0, 0.0, 1.0]);
        normals.push([0.0, 0.0, 1.0]);
        colors.push([255, 0, 0]);

        for ring in 1..rings {
            let theta = std::f32::consts::PI * ring as f32 / rings as f32;
            for segment in 0..segments {
                let phi = std::f32::consts::TAU * segment as f32 / segments as f32;
                let p = [
                    theta.sin() * phi.cos(),
                    theta.sin() * phi.sin(),
                    theta.cos(),
                ];
                positions.push(p);
                normals.push(p);
                colors.push([
                    (ring * 255 / rings) as u8,
                    (segment * 255 / segments) as u8,
                    128,
                ]);
            }
        }

        let south = positions.len() as u32;
        positions.push([0.0, 0.0, -1.0]);
        normals.push([0.0, 0.0, -1.0]);
        colors.push([0, 0, 255]);

        let at = |ring: u32, segment: u32| 1 + (ring - 1) * segments + segment % segments;
        let mut triangles = Vec::new();
        for segment in 0..segments {
            triangles.push([0, at(1, segment), at(1, segment + 1)]);
            triangles.push([south, at(rings - 1, segment + 1), at(rings - 1, segment)]);
        }
        for ring in 1..rings - 1 {
            for segment in 0..segments {
                let (a, b) = (at(ring, segment), at(ring, segment + 1));
                let (c, d) = (at(ring + 1, segment), at(ring + 1, segment + 1));
                triangles.push([a, c, d]);
                triangles.push([a, d, b]);
            }
        }
        TriangleMesh {
            positions,
            normals: Some(normals),
            colors: Some(colors),
            triangles,
        }
    }

    /// Builds a flat `n` by `n` grid of quads in the unit square, split into triangles,
    /// with an open border and no normals or colours.
    pub(crate) fn grid(n: u32) -> TriangleMesh {
        let mut positions = Vec::new();
        for y in 0..=n {
            for x in 0..=n {
                positions.push([x as f32 / n as f32, y as f32 / n as f32, 0.0]);
            }
        }
        let at = |x: u32, y: u32| y * (n + 1) + x;
        let mut triangles = Vec::new();
        for y in 0..n {
            for x in 0..n {
                triangles.push([at(x, y), at(x + 1, y), at(x + 1, y + 1)]);
                triangles.push([at(x, y), at(x + 1, y + 1), at(x, y + 1)]);
            }
        }
        TriangleMesh {
            positions,
            normals: None,
            colors: None,
            triangles,
        }
    }
}
