//! The PLY body: reads every element the header declares, keeps vertex positions,
//! normals and colours and the faces (fan-triangulated), and skips everything else.

use std::io::{BufRead, Read};

use super::PlyFormat;
use super::header::{Element, Header, Property, ScalarKind};

/// Maximum length of any list property, such as the vertex count of one face polygon.
pub(super) const MAX_LIST_LENGTH: usize = 1024;
/// Maximum length of one line of an ASCII body in bytes.
const MAX_ASCII_LINE_BYTES: u64 = 1 << 20;
/// Entries reserved up front at most, so the declared counts never drive an allocation by
/// themselves.
const MAX_RESERVED: usize = 1 << 22;

/// The vertices and faces of a PLY file.
#[derive(Debug, Default)]
pub(super) struct PlyData {
    pub(super) positions: Vec<[f64; 3]>,
    pub(super) normals: Option<Vec<[f64; 3]>>,
    pub(super) colors: Option<Vec<[u8; 3]>>,
    pub(super) triangles: Vec<[u32; 3]>,
}

/// Positions of the named vertex properties among an element's properties.
struct VertexLayout {
    position: [usize; 3],
    normal: Option<[usize; 3]>,
    color: Option<([usize; 3], ScalarKind)>,
}

impl VertexLayout {
    fn new(element: &Element) -> Result<Self, String> {
        let find_all = |names: [&str; 3]| -> Option<[usize; 3]> {
            Some([
                element.scalar_index(names[0])?,
                element.scalar_index(names[1])?,
                element.scalar_index(names[2])?,
            ])
        };
        let mut position = [0; 3];
        for (slot, axis) in position.iter_mut().zip(["x", "y", "z"]) {
            *slot = element
                .scalar_index(axis)
                .ok_or_else(|| format!("element `vertex` lacks scalar property `{axis}`"))?;
        }
        let color = find_all(["red", "green", "blue"]).map(|indices| {
            let kind = match &element.properties[indices[0]] {
                Property::Scalar { kind, .. } => *kind,
                Property::List { item, .. } => *item,
            };
            (indices, kind)
        });
        Ok(Self {
            position,
            normal: find_all(["nx", "ny", "nz"]),
            color,
        })
    }
}

/// Converts a colour channel to 8 bits: integer types hold 0..255 (16-bit types are
/// scaled from 0..65535), floating-point types hold 0..1.
fn color_channel(value: f64, kind: ScalarKind) -> u8 {
    let scaled = match kind {
        ScalarKind::F32 | ScalarKind::F64 => value * 255.0,
        ScalarKind::U16 | ScalarKind::I16 => value / 257.0,
        _ => value,
    };
    scaled.round().clamp(0.0, 255.0) as u8
}

/// Reads values one entry at a time in either encoding.
struct EntryReader<R> {
    reader: R,
    format: PlyFormat,
    /// Fields of the current ASCII line, and the next one to hand out.
    fields: Vec<String>,
    next_field: usize,
    /// File line number of the current ASCII line.
    line_number: usize,
    line: String,
}

impl<R: BufRead> EntryReader<R> {
    /// Moves to the next entry; returns false at the end of the file.
    fn begin_entry(&mut self) -> Result<bool, String> {
        match self.format {
            PlyFormat::Ascii => loop {
                self.line.clear();
                let read = self
                    .reader
                    .by_ref()
                    .take(MAX_ASCII_LINE_BYTES)
                    .read_line(&mut self.line)
                    .map_err(|e| format!("line {} cannot be read: {e}", self.line_number + 1))?;
                if read == 0 {
                    return Ok(false);
                }
                self.line_number += 1;
                if !self.line.ends_with('\n') && read as u64 == MAX_ASCII_LINE_BYTES {
                    return Err(format!(
                        "line {} is longer than {MAX_ASCII_LINE_BYTES} bytes",
                        self.line_number
                    ));
                }
                if self.line.trim().is_empty() {
                    continue;
                }
                self.fields.clear();
                self.fields
                    .extend(self.line.split_whitespace().map(str::to_owned));
                self.next_field = 0;
                return Ok(true);
            },
            PlyFormat::BinaryLittleEndian | PlyFormat::BinaryBigEndian => Ok(!self
                .reader
                .fill_buf()
                .map_err(|e| e.to_string())?
                .is_empty()),
        }
    }

    /// Reads one scalar of `kind`; the error describes the problem without the context.
    fn scalar(&mut self, kind: ScalarKind) -> Result<f64, String> {
        match self.format {
            PlyFormat::Ascii => {
                let text = self
                    .fields
                    .get(self.next_field)
                    .ok_or_else(|| "is missing".to_owned())?;
                self.next_field += 1;
                parse_ascii(text, kind)
            }
            PlyFormat::BinaryLittleEndian | PlyFormat::BinaryBigEndian => {
                let mut bytes = [0u8; 8];
                let size = kind.size();
                self.reader
                    .read_exact(&mut bytes[..size])
                    .map_err(|_| "is cut off by the end of the file".to_owned())?;
                Ok(kind.decode(&bytes[..size], self.format == PlyFormat::BinaryBigEndian))
            }
        }
    }

    /// Names the current line in ASCII files, for error messages.
    fn location(&self) -> String {
        match self.format {
            PlyFormat::Ascii => format!("line {}: ", self.line_number),
            _ => String::new(),
        }
    }
}

fn parse_ascii(text: &str, kind: ScalarKind) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if kind.is_float() {
        return Ok(value);
    }
    let (min, max) = match kind {
        ScalarKind::I8 => (f64::from(i8::MIN), f64::from(i8::MAX)),
        ScalarKind::U8 => (0.0, f64::from(u8::MAX)),
        ScalarKind::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
        ScalarKind::U16 => (0.0, f64::from(u16::MAX)),
        ScalarKind::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        _ => (0.0, f64::from(u32::MAX)),
    };
    if value.fract() != 0.0 || value < min || value > max {
        return Err(format!("`{text}` is not a valid {kind:?} integer"));
    }
    Ok(value)
}

/// Checks that the declared counts fit in the bytes after the header, before anything is
/// allocated for them. ASCII values take at least two bytes each (a digit and a space).
fn check_sizes(header: &Header, data_bytes: u64) -> Result<(), String> {
    let mut needed = 0u64;
    for element in &header.elements {
        let per_entry: usize = match header.format {
            PlyFormat::Ascii => 2 * element.properties.len(),
            _ => element
                .properties
                .iter()
                .map(Property::min_binary_size)
                .sum(),
        };
        needed = needed.saturating_add((element.count as u64).saturating_mul(per_entry as u64));
    }
    if needed > data_bytes {
        return Err(format!(
            "the header declares elements that need at least {needed} bytes, but only \
             {data_bytes} bytes follow it (the file is truncated or the counts are wrong)"
        ));
    }
    Ok(())
}

/// Reads the body after `header`. `data_bytes` is the file's length after the header.
pub(super) fn read_body(
    reader: impl BufRead,
    header: &Header,
    data_bytes: u64,
) -> Result<PlyData, String> {
    check_sizes(header, data_bytes)?;
    let vertex_element = header
        .elements
        .iter()
        .find(|e| e.name == "vertex")
        .ok_or("has no `vertex` element")?;
    let layout = VertexLayout::new(vertex_element)?;
    let vertex_count = vertex_element.count;
    let reserved = vertex_count.min(MAX_RESERVED);
    let mut data = PlyData {
        positions: Vec::with_capacity(reserved),
        normals: layout.normal.map(|_| Vec::with_capacity(reserved)),
        colors: layout.color.map(|_| Vec::with_capacity(reserved)),
        triangles: Vec::new(),
    };
    let mut entries = EntryReader {
        reader,
        format: header.format,
        fields: Vec::new(),
        next_field: 0,
        line_number: header.lines,
        line: String::new(),
    };
    for element in &header.elements {
        let face_list = (element.name == "face")
            .then(|| {
                element.properties.iter().position(|p| {
                    matches!(p, Property::List { name, .. }
                        if name == "vertex_indices" || name == "vertex_index")
                })
            })
            .flatten();
        if element.name == "face" && face_list.is_none() && element.count > 0 {
            return Err(
                "element `face` has no list property `vertex_indices` or `vertex_index`".into(),
            );
        }
        let mut values = vec![0.0f64; element.properties.len()];
        let mut list = Vec::new();
        let mut polygon = Vec::new();
        for index in 0..element.count {
            if !entries.begin_entry()? {
                return Err(format!(
                    "ends after {index} of {} `{}` entries",
                    element.count, element.name
                ));
            }
            let location = entries.location();
            for (position, property) in element.properties.iter().enumerate() {
                let context = |reason: String| {
                    format!(
                        "{location}`{}` {index} property `{}` {reason}",
                        element.name,
                        property.name()
                    )
                };
                match property {
                    Property::Scalar { kind, .. } => {
                        values[position] = entries.scalar(*kind).map_err(context)?;
                    }
                    Property::List { length, item, .. } => {
                        let count = entries.scalar(*length).map_err(context)?;
                        if count < 0.0 || count > MAX_LIST_LENGTH as f64 {
                            return Err(context(format!(
                                "has {count} items, outside 0..={MAX_LIST_LENGTH}"
                            )));
                        }
                        list.clear();
                        for _ in 0..count as usize {
                            list.push(entries.scalar(*item).map_err(context)?);
                        }
                        if face_list == Some(position) {
                            polygon.clear();
                            polygon.extend_from_slice(&list);
                        }
                    }
                }
            }
            if element.name == "vertex" {
                push_vertex(&mut data, &layout, &values)
                    .map_err(|reason| format!("{location}vertex {index} {reason}"))?;
            } else if face_list.is_some() {
                push_face(&mut data.triangles, &polygon, vertex_count)
                    .map_err(|reason| format!("{location}face {index} {reason}"))?;
            }
        }
    }
    Ok(data)
}

fn push_vertex(data: &mut PlyData, layout: &VertexLayout, values: &[f64]) -> Result<(), String> {
    let position = layout.position.map(|i| values[i]);
    if !position.iter().all(|v| v.is_finite()) {
        return Err("has a coordinate that is not finite".into());
    }
    data.positions.push(position);
    if let (Some(indices), Some(normals)) = (layout.normal, &mut data.normals) {
        let normal = indices.map(|i| values[i]);
        if !normal.iter().all(|v| v.is_finite()) {
            return Err("has a normal component that is not finite".into());
        }
        normals.push(normal);
    }
    if let (Some((indices, kind)), Some(colors)) = (layout.color, &mut data.colors) {
        colors.push(indices.map(|i| color_channel(values[i], kind)));
    }
    Ok(())
}

/// Appends the polygon as a triangle fan around its first vertex.
fn push_face(
    triangles: &mut Vec<[u32; 3]>,
    polygon: &[f64],
    vertex_count: usize,
) -> Result<(), String> {
    if polygon.len() < 3 {
        return Err(format!(
            "has {} vertex indices, and a face needs at least 3",
            polygon.len()
        ));
    }
    for &index in polygon {
        if index.fract() != 0.0 || index < 0.0 || index >= vertex_count as f64 {
            return Err(format!(
                "vertex index {index} is out of range for {vertex_count} vertices"
            ));
        }
    }
    for k in 1..polygon.len() - 1 {
        triangles.push([polygon[0] as u32, polygon[k] as u32, polygon[k + 1] as u32]);
    }
    Ok(())
}
