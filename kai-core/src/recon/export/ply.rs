//! PLY point clouds: `x y z` as float, `red green blue` as uchar and optionally
//! `nx ny nz` as float, in ASCII or binary little-endian form.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use nalgebra::Vector3;

use crate::error::{Error, Result};
use crate::recon::reconstruction::Reconstruction;

/// Maximum vertex count that [`PointCloud::read_ply`] accepts (a billion), so a corrupt
/// header cannot request an absurd allocation.
const MAX_VERTICES: usize = 1_000_000_000;
/// Maximum header length that [`PointCloud::read_ply`] reads, in lines.
const MAX_HEADER_LINES: usize = 1000;

/// The encoding of a PLY file's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlyFormat {
    /// One vertex per text line.
    Ascii,
    /// Packed little-endian values, which are compact and fast to read.
    BinaryLittleEndian,
}

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
        let file = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
        let mut out = BufWriter::new(file);
        self.write_to(&mut out, format)
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("cannot write", path, e))
    }

    fn write_to(&self, out: &mut impl Write, format: PlyFormat) -> std::io::Result<()> {
        let format_name = match format {
            PlyFormat::Ascii => "ascii",
            PlyFormat::BinaryLittleEndian => "binary_little_endian",
        };
        writeln!(out, "ply\nformat {format_name} 1.0\ncomment written by kai")?;
        writeln!(out, "element vertex {}", self.positions.len())?;
        writeln!(out, "property float x\nproperty float y\nproperty float z")?;
        if self.normals.is_some() {
            writeln!(
                out,
                "property float nx\nproperty float ny\nproperty float nz"
            )?;
        }
        writeln!(
            out,
            "property uchar red\nproperty uchar green\nproperty uchar blue"
        )?;
        writeln!(out, "end_header")?;
        for (index, (position, color)) in self.positions.iter().zip(&self.colors).enumerate() {
            let normal = self.normals.as_ref().map(|normals| normals[index]);
            let floats: Vec<f32> = position
                .iter()
                .chain(normal.iter().flat_map(|n| n.iter()))
                .map(|&v| v as f32)
                .collect();
            match format {
                PlyFormat::Ascii => {
                    let text: Vec<String> = floats.iter().map(|v| v.to_string()).collect();
                    writeln!(
                        out,
                        "{} {} {} {}",
                        text.join(" "),
                        color[0],
                        color[1],
                        color[2]
                    )?;
                }
                PlyFormat::BinaryLittleEndian => {
                    for value in floats {
                        out.write_all(&value.to_le_bytes())?;
                    }
                    out.write_all(color)?;
                }
            }
        }
        Ok(())
    }

    /// Reads a PLY file with one `vertex` element whose scalar properties include
    /// `x y z` and optionally `red green blue` and `nx ny nz`. Missing colours read as
    /// grey 128, and other scalar properties are skipped. ASCII and binary little-endian
    /// files are supported, and elements after the vertices are ignored.
    pub fn read_ply(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let mut reader = BufReader::new(file);
        let fail = |reason: String| Error::invalid(format!("PLY file {}", path.display()), reason);

        let header = read_header(&mut reader).map_err(fail)?;
        let count = header.vertices;
        let mut cloud = PointCloud {
            positions: Vec::with_capacity(count.min(1 << 24)),
            colors: Vec::with_capacity(count.min(1 << 24)),
            normals: header.has_normals().then(Vec::new),
        };
        let mut values = vec![0.0f64; header.properties.len()];
        let mut line = String::new();
        for vertex in 0..count {
            match header.format {
                PlyFormat::Ascii => {
                    line.clear();
                    let read = reader
                        .read_line(&mut line)
                        .map_err(|e| Error::io("cannot read", path, e))?;
                    if read == 0 {
                        return Err(fail(format!("ends after {vertex} of {count} vertices")));
                    }
                    let mut fields = line.split_whitespace();
                    for (slot, property) in values.iter_mut().zip(&header.properties) {
                        let text = fields.next().ok_or_else(|| {
                            fail(format!("vertex {vertex} lacks property {}", property.name))
                        })?;
                        *slot = text.parse::<f64>().map_err(|_| {
                            fail(format!(
                                "vertex {vertex}: {} `{text}` is not a number",
                                property.name
                            ))
                        })?;
                    }
                }
                PlyFormat::BinaryLittleEndian => {
                    for (slot, property) in values.iter_mut().zip(&header.properties) {
                        let mut bytes = [0u8; 8];
                        let size = property.kind.size();
                        reader
                            .read_exact(&mut bytes[..size])
                            .map_err(|_| fail(format!("ends inside vertex {vertex} of {count}")))?;
                        *slot = property.kind.decode(&bytes[..size]);
                    }
                }
            }
            let get = |name: &str| header.index(name).map(|i| values[i]);
            let position = Vector3::new(
                get("x").unwrap_or(0.0),
                get("y").unwrap_or(0.0),
                get("z").unwrap_or(0.0),
            );
            if !position.iter().all(|v| v.is_finite()) {
                return Err(fail(format!(
                    "vertex {vertex} has a coordinate that is not finite"
                )));
            }
            cloud.positions.push(position);
            let channel = |name: &str| get(name).map_or(128, |v| v.clamp(0.0, 255.0) as u8);
            cloud
                .colors
                .push([channel("red"), channel("green"), channel("blue")]);
            if let Some(normals) = &mut cloud.normals {
                normals.push(Vector3::new(
                    get("nx").unwrap_or(0.0),
                    get("ny").unwrap_or(0.0),
                    get("nz").unwrap_or(0.0),
                ));
            }
        }
        Ok(cloud)
    }
}

/// Scalar property types of the PLY format.
#[derive(Debug, Clone, Copy)]
enum ScalarKind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl ScalarKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// Decodes little-endian `bytes`, exactly [`Self::size`] long.
    fn decode(self, bytes: &[u8]) -> f64 {
        let array = |n: usize| -> [u8; 8] {
            let mut out = [0u8; 8];
            out[..n].copy_from_slice(&bytes[..n]);
            out
        };
        let b = array(self.size());
        match self {
            Self::I8 => f64::from(b[0] as i8),
            Self::U8 => f64::from(b[0]),
            Self::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            Self::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
            Self::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::U32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::F64 => f64::from_le_bytes(b),
        }
    }
}

#[derive(Debug)]
struct Property {
    name: String,
    kind: ScalarKind,
}

#[derive(Debug)]
struct Header {
    format: PlyFormat,
    vertices: usize,
    properties: Vec<Property>,
}

impl Header {
    fn index(&self, name: &str) -> Option<usize> {
        self.properties.iter().position(|p| p.name == name)
    }

    fn has_normals(&self) -> bool {
        ["nx", "ny", "nz"].iter().all(|n| self.index(n).is_some())
    }
}

/// Parses the header up to `end_header`. The error carries only the reason, without the
/// path.
fn read_header(reader: &mut impl BufRead) -> std::result::Result<Header, String> {
    let mut format = None;
    let mut vertices = None;
    let mut properties = Vec::new();
    let mut current_is_vertex = false;
    let mut seen_vertex = false;
    let mut line = String::new();
    for number in 1..=MAX_HEADER_LINES {
        line.clear();
        let read = reader
            .by_ref()
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| format!("header line {number} cannot be read: {e}"))?;
        if read == 0 {
            return Err("ends before end_header".into());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ply"] if number == 1 => {}
            _ if number == 1 => return Err("does not start with `ply`".into()),
            ["format", "ascii", _] => format = Some(PlyFormat::Ascii),
            ["format", "binary_little_endian", _] => format = Some(PlyFormat::BinaryLittleEndian),
            ["format", other, ..] => return Err(format!("format `{other}` is not supported")),
            ["comment", ..] | ["obj_info", ..] | [] => {}
            ["element", name, count] => {
                if seen_vertex {
                    // Elements after the vertices are not read.
                    current_is_vertex = false;
                    continue;
                }
                if *name != "vertex" {
                    return Err(format!(
                        "element `{name}` before the vertices is not supported"
                    ));
                }
                let count: usize = count
                    .parse()
                    .map_err(|_| format!("vertex count `{count}` is not a number"))?;
                if count > MAX_VERTICES {
                    return Err(format!(
                        "{count} vertices exceed the limit of {MAX_VERTICES}"
                    ));
                }
                vertices = Some(count);
                current_is_vertex = true;
                seen_vertex = true;
            }
            ["property", "list", ..] if current_is_vertex => {
                return Err("list properties on vertices are not supported".into());
            }
            ["property", kind, name] if current_is_vertex => {
                let kind = ScalarKind::parse(kind)
                    .ok_or_else(|| format!("property type `{kind}` is not a PLY scalar type"))?;
                properties.push(Property {
                    name: (*name).to_owned(),
                    kind,
                });
            }
            ["property", ..] => {}
            ["end_header"] => {
                let format = format.ok_or("has no format line")?;
                let vertices = vertices.ok_or("has no vertex element")?;
                let header = Header {
                    format,
                    vertices,
                    properties,
                };
                for axis in ["x", "y", "z"] {
                    if header.index(axis).is_none() {
                        return Err(format!("vertices lack property `{axis}`"));
                    }
                }
                return Ok(header);
            }
            _ => {
                return Err(format!(
                    "header line {number} `{}` is not valid PLY",
                    line.trim_end()
                ));
            }
        }
    }
    Err(format!("header is longer than {MAX_HEADER_LINES} lines"))
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
        for format in [PlyFormat::Ascii, PlyFormat::BinaryLittleEndian] {
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
                b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n",
                "ends after 1 of 2 vertices",
            ),
            (
                "bad number",
                b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 zz 3\n",
                "y `zz` is not a number",
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
}
