//! PLY files: point clouds and triangle meshes.
//!
//! One reader serves both: ASCII and binary files in either byte order, a `vertex`
//! element with `x y z`, optional `nx ny nz` and optional `red green blue` in any scalar
//! types, and a `face` element whose `vertex_indices` (or `vertex_index`) list contains
//! polygons, which are split into triangle fans. Other elements and properties are
//! skipped. Writers store coordinates and normals as float and colours as uchar.

mod body;
mod header;
mod writer;

use std::io::{BufReader, Write};
use std::path::Path;

use nalgebra::Vector3;

use crate::error::{Error, Result};
use crate::recon::cloud::PointCloud;
use crate::recon::export::{check_mesh, write_atomically};
use crate::recon::mesh::TriangleMesh;
use crate::recon::reconstruction::Reconstruction;

use body::PlyData;
use writer::{RowWriter, VertexProperties};

/// The encoding of a PLY file's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlyFormat {
    /// One vertex or face per text line.
    Ascii,
    /// Packed little-endian values, which are compact and fast to read.
    BinaryLittleEndian,
    /// Packed big-endian values, as some older tools write them.
    BinaryBigEndian,
}

/// Reads any PLY file into its vertices and triangles; errors name `path`.
fn read_file(path: &Path) -> Result<PlyData> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let length = file
        .metadata()
        .map_err(|e| Error::io("cannot read", path, e))?
        .len();
    let mut reader = BufReader::new(file);
    let fail = |reason: String| Error::invalid(format!("PLY file {}", path.display()), reason);
    let header = header::read_header(&mut reader).map_err(fail)?;
    body::read_body(reader, &header, length.saturating_sub(header.bytes)).map_err(fail)
}

impl PointCloud {
    /// Collects the 3D points of a reconstruction with their colours, without normals.
    pub fn from_reconstruction(reconstruction: &Reconstruction) -> Self {
        Self {
            positions: reconstruction.points.iter().map(|p| p.position).collect(),
            colors: reconstruction.points.iter().map(|p| p.color).collect(),
            normals: None,
        }
    }

    fn check(&self) -> Result<()> {
        if self.colors.len() != self.positions.len() {
            return Err(Error::invalid(
                "point cloud colors",
                format!(
                    "{} colours for {} points",
                    self.colors.len(),
                    self.positions.len()
                ),
            ));
        }
        if let Some(normals) = &self.normals
            && normals.len() != self.positions.len()
        {
            return Err(Error::invalid(
                "point cloud normals",
                format!(
                    "{} normals for {} points",
                    normals.len(),
                    self.positions.len()
                ),
            ));
        }
        Ok(())
    }

    /// Writes the cloud to `path` in `format`. Coordinates are stored as 32-bit floats,
    /// which keeps about 7 significant digits.
    pub fn write_ply(&self, path: &Path, format: PlyFormat) -> Result<()> {
        self.check()?;
        write_atomically(path, |mut out| self.write_to(&mut out, format))
    }

    fn write_to(&self, out: &mut impl Write, format: PlyFormat) -> std::io::Result<()> {
        let properties = VertexProperties {
            normals: self.normals.is_some(),
            colors: true,
        };
        writer::write_header(out, format, self.positions.len(), properties, None)?;
        let mut rows = RowWriter::new(out, format);
        for (index, (position, color)) in self.positions.iter().zip(&self.colors).enumerate() {
            for &value in position.iter() {
                rows.float(value as f32)?;
            }
            if let Some(normals) = &self.normals {
                for &value in normals[index].iter() {
                    rows.float(value as f32)?;
                }
            }
            for &channel in color {
                rows.uchar(channel)?;
            }
            rows.end_row()?;
        }
        rows.finish()
    }

    /// Reads the vertices of a PLY file (see the module documentation for what is
    /// accepted). Missing colours read as grey 128, and faces are ignored.
    pub fn read_ply(path: &Path) -> Result<Self> {
        let data = read_file(path)?;
        let count = data.positions.len();
        Ok(PointCloud {
            positions: data
                .positions
                .iter()
                .map(|p| Vector3::new(p[0], p[1], p[2]))
                .collect(),
            colors: data.colors.unwrap_or_else(|| vec![[128; 3]; count]),
            normals: data.normals.map(|normals| {
                normals
                    .iter()
                    .map(|n| Vector3::new(n[0], n[1], n[2]))
                    .collect()
            }),
        })
    }
}

impl TriangleMesh {
    /// Writes the mesh to `path` in `format`: positions and normals as float, colours as
    /// uchar and each triangle as a `uchar uint` list.
    pub fn write_ply(&self, path: &Path, format: PlyFormat) -> Result<()> {
        check_mesh(self)?;
        write_atomically(path, |mut out| self.write_ply_to(&mut out, format))
    }

    fn write_ply_to(&self, out: &mut impl Write, format: PlyFormat) -> std::io::Result<()> {
        let properties = VertexProperties {
            normals: self.normals.is_some(),
            colors: self.colors.is_some(),
        };
        let vertices = self.positions.len();
        writer::write_header(
            out,
            format,
            vertices,
            properties,
            Some(self.triangles.len()),
        )?;
        let mut rows = RowWriter::new(out, format);
        for index in 0..vertices {
            for value in self.positions[index] {
                rows.float(value)?;
            }
            if let Some(normals) = &self.normals {
                for value in normals[index] {
                    rows.float(value)?;
                }
            }
            if let Some(colors) = &self.colors {
                for channel in colors[index] {
                    rows.uchar(channel)?;
                }
            }
            rows.end_row()?;
        }
        for triangle in &self.triangles {
            rows.uchar(3)?;
            for &vertex in triangle {
                rows.uint(vertex)?;
            }
            rows.end_row()?;
        }
        rows.finish()
    }

    /// Reads a PLY mesh (see the module documentation for what is accepted). A file
    /// without a `face` element reads as a mesh without triangles.
    pub fn read_ply(path: &Path) -> Result<Self> {
        let data = read_file(path)?;
        let narrow = |v: &[f64; 3]| v.map(|x| x as f32);
        let positions: Vec<[f32; 3]> = data.positions.iter().map(narrow).collect();
        if let Some(vertex) = positions
            .iter()
            .position(|p| !p.iter().all(|v| v.is_finite()))
        {
            return Err(Error::invalid(
                format!("PLY file {}", path.display()),
                format!("vertex {vertex} has a coordinate beyond the float range"),
            ));
        }
        Ok(TriangleMesh {
            positions,
            normals: data.normals.map(|n| n.iter().map(narrow).collect()),
            colors: data.colors,
            triangles: data.triangles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(normals: bool) -> PointCloud {
        let positions: Vec<Vector3<f64>> = (0..50)
            .map(|i| {
                let t = f64::from(i);
                Vector3::new(t * 0.25 - 3.0, (t * 0.7).sin() * 2.0, 1.0 / (t + 1.0))
            })
            .collect();
        let colors = (0..50u8).map(|i| [i, 255 - i, i.wrapping_mul(7)]).collect();
        let normals = normals.then(|| {
            positions
                .iter()
                .map(|p| {
                    if p.norm() > 0.0 {
                        p.normalize()
                    } else {
                        Vector3::z()
                    }
                })
                .collect()
        });
        PointCloud {
            positions,
            colors,
            normals,
        }
    }

    fn assert_close(a: &PointCloud, b: &PointCloud) {
        assert_eq!(a.positions.len(), b.positions.len());
        assert_eq!(a.colors, b.colors);
        for (p, q) in a.positions.iter().zip(&b.positions) {
            assert!((p - q).norm() < 1e-5 * (1.0 + p.norm()), "{p:?} vs {q:?}");
        }
        assert_eq!(a.normals.is_some(), b.normals.is_some());
        if let (Some(n), Some(m)) = (&a.normals, &b.normals) {
            for (p, q) in n.iter().zip(m) {
                assert!((p - q).norm() < 1e-6);
            }
        }
    }

    #[test]
    fn round_trip_both_formats_with_and_without_normals() {
        let dir = tempfile::tempdir().expect("temporary folder");
        for format in [
            PlyFormat::Ascii,
            PlyFormat::BinaryLittleEndian,
            PlyFormat::BinaryBigEndian,
        ] {
            for normals in [false, true] {
                let original = cloud(normals);
                let path = dir.path().join(format!("{format:?}-{normals}.ply"));
                original.write_ply(&path, format).expect("written");
                let back = PointCloud::read_ply(&path).expect("read");
                assert_close(&original, &back);
            }
        }
    }

    #[test]
    fn binary_layout_is_packed() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("cloud.ply");
        cloud(false)
            .write_ply(&path, PlyFormat::BinaryLittleEndian)
            .expect("written");
        let bytes = std::fs::read(&path).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        let header_end = text.find("end_header\n").expect("header") + "end_header\n".len();
        // Three floats and three bytes per vertex.
        assert_eq!(bytes.len() - header_end, 50 * 15);
        assert!(text.starts_with("ply\nformat binary_little_endian 1.0\n"));
    }

    #[test]
    fn mismatched_lengths_are_rejected() {
        let mut bad = cloud(false);
        bad.colors.pop();
        let dir = tempfile::tempdir().expect("temporary folder");
        let err = bad
            .write_ply(&dir.path().join("x.ply"), PlyFormat::Ascii)
            .unwrap_err();
        assert!(
            err.to_string().contains("49 colours for 50 points"),
            "{err}"
        );
    }

    #[test]
    fn malformed_files_are_rejected() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let cases: [(&str, &[u8], &str); 5] = [
            ("not ply", b"hello\n", "does not start with `ply`"),
            ("truncated header", b"ply\nformat ascii 1.0\n", "ends before end_header"),
            (
                "short body",
                b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1.0000 2.0000 3.0000\n",
                "ends after 1 of 2 `vertex` entries",
            ),
            (
                "bad number",
                b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 zz 3\n",
                "line 8: `vertex` 0 property `y` `zz` is not a number",
            ),
            (
                "huge count",
                b"ply\nformat binary_little_endian 1.0\nelement vertex 99999999999\nproperty float x\nend_header\n",
                "exceed the limit",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(format!("{}.ply", name.replace(' ', "_")));
            std::fs::write(&path, bytes).expect("written");
            let err = PointCloud::read_ply(&path).expect_err(name);
            assert!(err.to_string().contains(expected), "{name}: {err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        }
    }

    use crate::recon::export::test_meshes::sphere;

    const FORMATS: [PlyFormat; 3] = [
        PlyFormat::Ascii,
        PlyFormat::BinaryLittleEndian,
        PlyFormat::BinaryBigEndian,
    ];

    #[test]
    fn mesh_round_trip_is_exact() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let full = sphere(9, 14);
        let bare = TriangleMesh {
            normals: None,
            colors: None,
            ..full.clone()
        };
        for format in FORMATS {
            for (name, mesh) in [("full", &full), ("bare", &bare)] {
                let path = dir.path().join(format!("{name}-{format:?}.ply"));
                mesh.write_ply(&path, format).expect("written");
                let back = TriangleMesh::read_ply(&path).expect("read");
                assert_eq!(&back, mesh, "{name} {format:?}");
            }
        }
    }

    #[test]
    fn mesh_reads_as_point_cloud() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("mesh.ply");
        let mesh = sphere(5, 6);
        mesh.write_ply(&path, PlyFormat::BinaryLittleEndian)
            .expect("written");
        let cloud = PointCloud::read_ply(&path).expect("read");
        assert_eq!(cloud.positions.len(), mesh.positions.len());
        assert!(cloud.normals.is_some());
    }

    /// A file in the style of other tools: double coordinates, float colours in 0..1,
    /// an alpha channel, an extra property and element, quads and a pentagon.
    #[test]
    fn foreign_layout_is_read_and_fanned() {
        let text = "ply\nformat ascii 1.0\ncomment other tool\n\
            element vertex 5\nproperty double x\nproperty double y\nproperty double z\n\
            property float quality\nproperty float red\nproperty float green\n\
            property float blue\nproperty float alpha\n\
            element face 2\nproperty uchar flags\nproperty list ushort int vertex_index\n\
            element edge 1\nproperty int vertex1\nproperty int vertex2\nend_header\n\
            0 0 0 9 1 0 0 1\n1 0 0 9 0 1 0 1\n1 1 0 9 0 0 1 1\n0 1 0 9 1 1 1 1\n\
            0.5 2 0 9 0.5 0.5 0.5 1\n\
            7 4 0 1 2 3\n7 5 0 1 2 4 3\n0 1\n";
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("foreign.ply");
        std::fs::write(&path, text).expect("written");
        let mesh = TriangleMesh::read_ply(&path).expect("read");
        assert_eq!(mesh.positions.len(), 5);
        assert_eq!(mesh.positions[4], [0.5, 2.0, 0.0]);
        assert_eq!(
            mesh.triangles,
            vec![[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 4], [0, 4, 3]]
        );
        let colors = mesh.colors.expect("colours");
        assert_eq!(colors[0], [255, 0, 0]);
        assert_eq!(colors[4], [128, 128, 128]);
        assert!(mesh.normals.is_none());
    }

    #[test]
    fn binary_big_endian_with_other_types() {
        let mut bytes = b"ply\nformat binary_big_endian 1.0\nelement vertex 3\n\
            property short x\nproperty int y\nproperty double z\n\
            element face 1\nproperty list uint ushort vertex_indices\nend_header\n"
            .to_vec();
        for (x, y, z) in [(1i16, -2i32, 0.5f64), (300, 4, -1.25), (-7, 70000, 3.0)] {
            bytes.extend(x.to_be_bytes());
            bytes.extend(y.to_be_bytes());
            bytes.extend(z.to_be_bytes());
        }
        bytes.extend(3u32.to_be_bytes());
        for index in [2u16, 1, 0] {
            bytes.extend(index.to_be_bytes());
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("be.ply");
        std::fs::write(&path, bytes).expect("written");
        let mesh = TriangleMesh::read_ply(&path).expect("read");
        assert_eq!(
            mesh.positions,
            vec![[1.0, -2.0, 0.5], [300.0, 4.0, -1.25], [-7.0, 70000.0, 3.0]]
        );
        assert_eq!(mesh.triangles, vec![[2, 1, 0]]);
    }

    #[test]
    fn malformed_meshes_are_rejected() {
        let header = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n\
            property float y\nproperty float z\nelement face 1\n\
            property list uchar int vertex_indices\nend_header\n";
        let vertices = "0 0 0\n1 0 0\n0 1 0\n";
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "index out of range",
                format!("{header}{vertices}3 0 1 3\n").into_bytes(),
                "line 13: face 0 vertex index 3 is out of range for 3 vertices",
            ),
            (
                "negative index",
                format!("{header}{vertices}3 0 -1 2\n").into_bytes(),
                "vertex index -1 is out of range",
            ),
            (
                "two-vertex face",
                format!("{header}{vertices}2 0 1\n").into_bytes(),
                "face 0 has 2 vertex indices, and a face needs at least 3",
            ),
            (
                "NaN coordinate",
                format!("{header}0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n").into_bytes(),
                "line 11: vertex 1 has a coordinate that is not finite",
            ),
            (
                "missing face",
                format!("{header}0.0 0.0 0.0\n1.0 0.0 0.0\n0.0 1.0 0.0\n").into_bytes(),
                "ends after 0 of 1 `face` entries",
            ),
            (
                "missing value",
                format!("{header}0 0 0\n1 0\n0 1 0\n3 0 1 2\n").into_bytes(),
                "line 11: `vertex` 1 property `z` is missing",
            ),
            (
                "list too long",
                format!(
                    "{}{vertices}2000 0 1 2\n",
                    header.replace("list uchar int", "list ushort int")
                )
                .into_bytes(),
                "property `vertex_indices` has 2000 items, outside 0..=1024",
            ),
            (
                "uchar out of range",
                b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n\
                  property float z\nproperty uchar red\nend_header\n0 0 0 300\n"
                    .to_vec(),
                "property `red` `300` is not a valid U8 integer",
            ),
            (
                "count beyond the data",
                b"ply\nformat binary_little_endian 1.0\nelement vertex 100000000\n\
                  property float x\nproperty float y\nproperty float z\nend_header\n\
                  \0\0\0\0"
                    .to_vec(),
                "need at least 1200000000 bytes, but only 4 bytes follow",
            ),
            (
                "truncated binary",
                {
                    let mut bytes = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n\
                        property float x\nproperty float y\nproperty float z\n\
                        property uchar red\nend_header\n"
                        .to_vec();
                    bytes.extend([0u8; 13]);
                    let mut cut = bytes.clone();
                    cut.truncate(bytes.len() - 3);
                    cut
                },
                "need at least 13 bytes, but only 10 bytes follow",
            ),
            (
                "no vertex element",
                b"ply\nformat ascii 1.0\nelement point 0\nproperty float x\nend_header\n".to_vec(),
                "has no `vertex` element",
            ),
            (
                "face without index list",
                b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n\
                  property float z\nelement face 1\nproperty int a\nend_header\n5\n"
                    .to_vec(),
                "element `face` has no list property",
            ),
            (
                "bad format",
                b"ply\nformat binary_middle_endian 1.0\nend_header\n".to_vec(),
                "format `binary_middle_endian` is not supported",
            ),
            (
                "unknown type",
                b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n".to_vec(),
                "header line 4: property type `quad` is not a PLY scalar type",
            ),
            (
                "long header",
                {
                    let mut text = String::from("ply\nformat ascii 1.0\n");
                    for _ in 0..2000 {
                        text.push_str("comment filler\n");
                    }
                    text.into_bytes()
                },
                "header is longer than 1000 lines",
            ),
        ];
        let dir = tempfile::tempdir().expect("temporary folder");
        for (name, bytes, expected) in cases {
            let path = dir.path().join(format!("{}.ply", name.replace(' ', "_")));
            std::fs::write(&path, bytes).expect("written");
            let err = TriangleMesh::read_ply(&path).expect_err(name);
            assert!(err.to_string().contains(expected), "{name}: {err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn invalid_mesh_is_not_written() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut mesh = sphere(4, 5);
        mesh.triangles.push([0, 1, 999]);
        let err = mesh
            .write_ply(&dir.path().join("bad.ply"), PlyFormat::Ascii)
            .expect_err("index out of range");
        assert!(err.to_string().contains("refers to vertex 999"), "{err}");
        let mut mesh = sphere(4, 5);
        mesh.positions[2][1] = f32::NAN;
        let err = mesh
            .write_ply(&dir.path().join("nan.ply"), PlyFormat::Ascii)
            .expect_err("NaN");
        assert!(
            err.to_string().contains("vertex 2 has a coordinate"),
            "{err}"
        );
    }
}
