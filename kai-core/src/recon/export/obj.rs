//! Wavefront OBJ meshes with a material library beside them.
//!
//! Vertex colours are written as `v x y z r g b` with channels in 0..1, an extension of
//! the format that MeshLab and trimesh read. Faces are `f a//a b//b c//c` when the mesh
//! has normals (the normal index equals the vertex index) and `f a b c` otherwise.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::recon::export::{check_mesh, write_atomically};
use crate::recon::mesh::TriangleMesh;

/// Name of the one material the writer defines.
const MATERIAL_NAME: &str = "kai_surface";
/// Maximum length of one line in bytes.
const MAX_LINE_BYTES: u64 = 1 << 16;
/// Maximum corner count of one face polygon.
const MAX_FACE_CORNERS: usize = 1024;
/// Maximum count of `v`, `vt`, `vn` and triangles each (a billion), so the reader's
/// memory stays bounded on a corrupt or hostile file.
const MAX_ENTRIES: usize = 1_000_000_000;

impl TriangleMesh {
    /// Writes the mesh to `path` and a material library named after it (`model.obj` gets
    /// `model.mtl`) next to it. Coordinates are written with the shortest text that reads
    /// back to the same `f32`.
    pub fn write_obj(&self, path: &Path) -> Result<()> {
        check_mesh(self)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
            .ok_or_else(|| {
                Error::invalid(
                    "OBJ path",
                    format!(
                        "{} needs a file name without spaces, which names the material library",
                        path.display()
                    ),
                )
            })?;
        let library = format!("{stem}.mtl");
        let library_path = path.with_file_name(&library);
        write_material_library(&library_path)?;
        write_atomically(path, |mut out| self.write_obj_to(&mut out, &library))
    }

    fn write_obj_to(&self, out: &mut impl Write, library: &str) -> std::io::Result<()> {
        writeln!(out, "# written by kai")?;
        writeln!(out, "mtllib {library}")?;
        for (index, [x, y, z]) in self.positions.iter().enumerate() {
            match &self.colors {
                Some(colors) => {
                    let [r, g, b] = colors[index].map(|c| f32::from(c) / 255.0);
                    writeln!(out, "v {x} {y} {z} {r} {g} {b}")?;
                }
                None => writeln!(out, "v {x} {y} {z}")?,
            }
        }
        if let Some(normals) = &self.normals {
            for [x, y, z] in normals {
                writeln!(out, "vn {x} {y} {z}")?;
            }
        }
        writeln!(out, "usemtl {MATERIAL_NAME}")?;
        for triangle in &self.triangles {
            let [a, b, c] = triangle.map(|v| v + 1);
            if self.normals.is_some() {
                writeln!(out, "f {a}//{a} {b}//{b} {c}//{c}")?;
            } else {
                writeln!(out, "f {a} {b} {c}")?;
            }
        }
        Ok(())
    }

    /// Reads an OBJ file's geometry: `v` (with optional colours), `vn` and `f` with any of
    /// the `v`, `v/vt`, `v//vn` and `v/vt/vn` forms and negative (relative) indices.
    /// Polygons are split into triangle fans. Texture coordinates, groups and materials
    /// are skipped.
    ///
    /// OBJ stores normals per face corner and the mesh per vertex, so a vertex used with
    /// different normals is duplicated. Normals are kept only when every corner has one.
    pub fn read_obj(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let fail = |line: usize, reason: String| {
            Error::invalid(
                format!("OBJ file {}", path.display()),
                format!("line {line}: {reason}"),
            )
        };
        let mut reader = BufReader::new(file);
        let mut parsed = ObjData::default();
        let mut line = String::new();
        let mut number = 0usize;
        loop {
            line.clear();
            let read = reader
                .by_ref()
                .take(MAX_LINE_BYTES)
                .read_line(&mut line)
                .map_err(|e| Error::io("cannot read", path, e))?;
            if read == 0 {
                break;
            }
            number += 1;
            if !line.ends_with('\n') && read as u64 == MAX_LINE_BYTES {
                return Err(fail(
                    number,
                    format!("is longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            parsed
                .parse_line(&line)
                .map_err(|reason| fail(number, reason))?;
        }
        Ok(parsed.into_mesh())
    }
}

fn write_material_library(path: &Path) -> Result<()> {
    // A plain matte white, so viewers show the vertex colours (or a neutral surface).
    let text = format!(
        "# written by kai\nnewmtl {MATERIAL_NAME}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
    );
    write_atomically(path, |out| out.write_all(text.as_bytes()))
}

/// One face corner: position index and optional normal index, both 0-based.
type Corner = (u32, Option<u32>);

#[derive(Debug, Default)]
struct ObjData {
    positions: Vec<[f32; 3]>,
    colors: Vec<[u8; 3]>,
    /// Whether any `v` line had colours; those without get white.
    any_color: bool,
    texture_coordinates: usize,
    normals: Vec<[f32; 3]>,
    triangles: Vec<[Corner; 3]>,
}

impl ObjData {
    fn parse_line(&mut self, line: &str) -> std::result::Result<(), String> {
        let content = line.split('#').next().unwrap_or_default();
        let mut words = content.split_whitespace();
        let Some(keyword) = words.next() else {
            return Ok(());
        };
        let values: Vec<&str> = words.collect();
        match keyword {
            "v" => {
                let numbers = parse_floats(&values, "v")?;
                if !matches!(numbers.len(), 3 | 4 | 6 | 7) {
                    return Err(format!(
                        "`v` has {} values; expected x y z, x y z w or x y z r g b",
                        numbers.len()
                    ));
                }
                self.check_room(self.positions.len(), "vertices")?;
                self.positions.push([numbers[0], numbers[1], numbers[2]]);
                if numbers.len() >= 6 {
                    // The colour follows x y z directly; a seventh value would be w.
                    let channel = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
                    self.colors.push([
                        channel(numbers[3]),
                        channel(numbers[4]),
                        channel(numbers[5]),
                    ]);
                    self.any_color = true;
                } else {
                    self.colors.push([255; 3]);
                }
            }
            "vn" => {
                let numbers = parse_floats(&values, "vn")?;
                if numbers.len() != 3 {
                    return Err(format!("`vn` has {} values; expected 3", numbers.len()));
                }
                self.check_room(self.normals.len(), "normals")?;
                self.normals.push([numbers[0], numbers[1], numbers[2]]);
            }
            "vt" => {
                parse_floats(&values, "vt")?;
                self.check_room(self.texture_coordinates, "texture coordinates")?;
                self.texture_coordinates += 1;
            }
            "f" => self.parse_face(&values)?,
            // Lines that carry no geometry: materials, groups, smoothing, and the rarely
            // used free-form and line elements.
            _ => {}
        }
        Ok(())
    }

    fn check_room(&self, count: usize, what: &str) -> std::result::Result<(), String> {
        if count >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} {what}"));
        }
        Ok(())
    }

    fn parse_face(&mut self, corners: &[&str]) -> std::result::Result<(), String> {
        if corners.len() < 3 {
            return Err(format!(
                "face has {} corners, and a face needs at least 3",
                corners.len()
            ));
        }
        if corners.len() > MAX_FACE_CORNERS {
            return Err(format!(
                "face has {} corners, more than the limit of {MAX_FACE_CORNERS}",
                corners.len()
            ));
        }
        let parsed: Vec<Corner> = corners
            .iter()
            .map(|corner| self.parse_corner(corner))
            .collect::<std::result::Result<_, _>>()?;
        self.check_room(self.triangles.len() + parsed.len(), "triangles")?;
        for k in 1..parsed.len() - 1 {
            self.triangles.push([parsed[0], parsed[k], parsed[k + 1]]);
        }
        Ok(())
    }

    fn parse_corner(&self, corner: &str) -> std::result::Result<Corner, String> {
        let mut parts = corner.split('/');
        let position = parts.next().unwrap_or_default();
        let texture = parts.next().filter(|t| !t.is_empty());
        let normal = parts.next().filter(|n| !n.is_empty());
        if parts.next().is_some() {
            return Err(format!(
                "face corner `{corner}` has more than three indices"
            ));
        }
        let position = resolve_index(position, self.positions.len(), "vertex", corner)?;
        if let Some(texture) = texture {
            resolve_index(
                texture,
                self.texture_coordinates,
                "texture coordinate",
                corner,
            )?;
        }
        let normal = normal
            .map(|n| resolve_index(n, self.normals.len(), "normal", corner))
            .transpose()?;
        Ok((position, normal))
    }

    /// Builds the mesh, giving each distinct (position, normal) pair one vertex. A file
    /// where every position has one normal keeps its vertex order.
    fn into_mesh(self) -> TriangleMesh {
        let with_normals = !self.triangles.is_empty()
            && self
                .triangles
                .iter()
                .all(|t| t.iter().all(|(_, n)| n.is_some()));
        let mut positions = self.positions.clone();
        let mut colors = self.colors.clone();
        // The normal chosen for each original position, and the copies made for the others.
        let mut normal_of: Vec<Option<u32>> = vec![None; positions.len()];
        let mut copies: HashMap<Corner, u32> = HashMap::new();
        let mut triangles = Vec::with_capacity(self.triangles.len());
        for triangle in &self.triangles {
            let mut out = [0u32; 3];
            for (slot, &(position, normal)) in out.iter_mut().zip(triangle) {
                *slot = if !with_normals {
                    position
                } else {
                    let chosen = &mut normal_of[position as usize];
                    match *chosen {
                        None => {
                            *chosen = normal;
                            position
                        }
                        Some(existing) if Some(existing) == normal => position,
                        Some(_) => *copies.entry((position, normal)).or_insert_with(|| {
                            positions.push(self.positions[position as usize]);
                            colors.push(self.colors[position as usize]);
                            normal_of.push(normal);
                            (positions.len() - 1) as u32
                        }),
                    }
                };
            }
            triangles.push(out);
        }
        let normals = with_normals.then(|| {
            normal_of
                .iter()
                .map(|n| n.map_or([0.0; 3], |n| self.normals[n as usize]))
                .collect()
        });
        TriangleMesh {
            positions,
            normals,
            colors: self.any_color.then_some(colors),
            triangles,
        }
    }
}

fn parse_floats(values: &[&str], keyword: &str) -> std::result::Result<Vec<f32>, String> {
    values
        .iter()
        .map(|text| {
            let value: f32 = text
                .parse()
                .map_err(|_| format!("`{keyword}` value `{text}` is not a number"))?;
            if !value.is_finite() {
                return Err(format!("`{keyword}` value `{text}` is not finite"));
            }
            Ok(value)
        })
        .collect()
}

/// Converts a 1-based (or negative, relative to the end) OBJ index to a 0-based one.
fn resolve_index(
    text: &str,
    count: usize,
    what: &str,
    corner: &str,
) -> std::result::Result<u32, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| format!("face corner `{corner}`: {what} index `{text}` is not an integer"))?;
    let resolved = match value {
        0 => {
            return Err(format!(
                "face corner `{corner}`: {what} index 0 is invalid, because OBJ indices start at 1"
            ));
        }
        v if v > 0 => v - 1,
        v => count as i64 + v,
    };
    if resolved < 0 || resolved >= count as i64 {
        return Err(format!(
            "face corner `{corner}`: {what} index {value} is out of range, because {count} \
             are defined before it"
        ));
    }
    Ok(resolved as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::export::test_meshes::{grid, sphere};

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let full = sphere(8, 11);
        let no_normals = TriangleMesh {
            normals: None,
            ..full.clone()
        };
        let no_colors = TriangleMesh {
            colors: None,
            ..full.clone()
        };
        for (name, mesh) in [
            ("full", full),
            ("no_normals", no_normals),
            ("no_colors", no_colors),
            ("grid", grid(7)),
        ] {
            let path = dir.path().join(format!("{name}.obj"));
            mesh.write_obj(&path).expect("written");
            let back = TriangleMesh::read_obj(&path).expect("read");
            assert_eq!(back, mesh, "{name}");
            let library = std::fs::read_to_string(dir.path().join(format!("{name}.mtl")))
                .expect("material library");
            assert!(library.contains("newmtl kai_surface"), "{library}");
        }
    }

    #[test]
    fn written_text_uses_library_and_material() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("model.obj");
        sphere(3, 4).write_obj(&path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("mtllib model.mtl\n"), "{text}");
        assert!(text.contains("usemtl kai_surface\n"), "{text}");
        assert!(text.contains("\nv 0 0 1 1 0 0\n"), "{text}");
        assert!(text.contains("\nf 1//1 2//2 3//3\n"), "{text}");
    }

    #[test]
    fn foreign_forms_are_read() {
        let text = "# a quad and a triangle\nmtllib x.mtl\no thing\n\
            v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0 # trailing comment\n\
            vt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\nvn 0 0 -1\n\
            g part\nusemtl x\ns off\n\
            f 1/1/1 2/2/1 3/3/1 4/1/1\n\
            f -4//-1 -2//-1 -3//-1\n";
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("foreign.obj");
        std::fs::write(&path, text).expect("written");
        let mesh = TriangleMesh::read_obj(&path).expect("read");
        // Vertices 1..3 appear with both normals, so the second triangle uses copies.
        assert_eq!(mesh.positions.len(), 7);
        assert_eq!(mesh.triangles, vec![[0, 1, 2], [0, 2, 3], [4, 5, 6]]);
        assert_eq!(mesh.positions[5], [1.0, 1.0, 0.0]);
        let normals = mesh.normals.expect("normals");
        assert_eq!(normals[0], [0.0, 0.0, 1.0]);
        assert_eq!(normals[6], [0.0, 0.0, -1.0]);
        assert!(mesh.colors.is_none());
    }

    #[test]
    fn malformed_files_are_rejected() {
        let three = "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "index out of range",
                format!("{three}f 1 2 4\n"),
                "line 4: face corner `4`: vertex index 4 is out of range, because 3 are defined",
            ),
            (
                "relative index out of range",
                format!("{three}f -1 -2 -4\n"),
                "vertex index -4 is out of range",
            ),
            (
                "zero index",
                format!("{three}f 0 1 2\n"),
                "vertex index 0 is invalid, because OBJ indices start at 1",
            ),
            (
                "normal out of range",
                format!("{three}vn 0 0 1\nf 1//1 2//2 3//1\n"),
                "line 5: face corner `2//2`: normal index 2 is out of range",
            ),
            (
                "NaN coordinate",
                "v 0 0 0\nv nan 0 0\n".to_owned(),
                "line 2: `v` value `nan` is not finite",
            ),
            (
                "not a number",
                "v 0 0 zero\n".to_owned(),
                "line 1: `v` value `zero` is not a number",
            ),
            ("two values", "v 0 0\n".to_owned(), "`v` has 2 values"),
            (
                "short face",
                format!("{three}f 1 2\n"),
                "face has 2 corners, and a face needs at least 3",
            ),
            (
                "huge face",
                format!("{three}f {}\n", "1 ".repeat(2000)),
                "face has 2000 corners, more than the limit of 1024",
            ),
            (
                "long line",
                format!("# {}\n", "x".repeat(70_000)),
                "line 1: is longer than 65536 bytes",
            ),
        ];
        let dir = tempfile::tempdir().expect("temporary folder");
        for (name, text, expected) in cases {
            let path = dir.path().join(format!("{}.obj", name.replace(' ', "_")));
            std::fs::write(&path, text).expect("written");
            let err = TriangleMesh::read_obj(&path).expect_err(name);
            assert!(err.to_string().contains(expected), "{name}: {err}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn path_with_space_is_rejected() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let err = sphere(3, 4)
            .write_obj(&dir.path().join("my model.obj"))
            .expect_err("space in name");
        assert!(err.to_string().contains("without spaces"), "{err}");
    }
}
