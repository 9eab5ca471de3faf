//! The PLY header: the data encoding and the elements with their properties, in file
//! order.

use std::io::{BufRead, Read};

use super::PlyFormat;

/// Maximum header length in lines, so a file that is not PLY is not read to its end.
pub(super) const MAX_HEADER_LINES: usize = 1000;
/// Maximum length of one header line in bytes.
const MAX_HEADER_LINE_BYTES: u64 = 4096;
/// Maximum count of any element (a billion), so a corrupt header cannot request an absurd
/// allocation.
pub(super) const MAX_ELEMENT_COUNT: usize = 1_000_000_000;

/// Scalar property types of the PLY format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScalarKind {
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

    pub(super) fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    pub(super) fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    /// Decodes `bytes`, exactly [`Self::size`] long, in the given byte order. Every PLY
    /// scalar converts to `f64` without loss.
    pub(super) fn decode(self, bytes: &[u8], big_endian: bool) -> f64 {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        if big_endian {
            b[..bytes.len()].reverse();
        }
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

/// One property of an element: a scalar, or a list with its length type and item type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Property {
    Scalar {
        name: String,
        kind: ScalarKind,
    },
    List {
        name: String,
        length: ScalarKind,
        item: ScalarKind,
    },
}

impl Property {
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Scalar { name, .. } | Self::List { name, .. } => name,
        }
    }

    /// Bytes the property takes at least in a binary file (an empty list takes only its
    /// length).
    pub(super) fn min_binary_size(&self) -> usize {
        match self {
            Self::Scalar { kind, .. } => kind.size(),
            Self::List { length, .. } => length.size(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) count: usize,
    pub(super) properties: Vec<Property>,
}

impl Element {
    pub(super) fn scalar_index(&self, name: &str) -> Option<usize> {
        self.properties
            .iter()
            .position(|p| matches!(p, Property::Scalar { name: n, .. } if n == name))
    }
}

#[derive(Debug)]
pub(super) struct Header {
    pub(super) format: PlyFormat,
    pub(super) elements: Vec<Element>,
    /// Header length in lines, so ASCII errors can give file line numbers.
    pub(super) lines: usize,
    /// Header length in bytes, to compare the data the elements need with the file size.
    pub(super) bytes: u64,
}

/// Parses the header up to `end_header`. The error carries only the reason, without the
/// path.
pub(super) fn read_header(reader: &mut impl BufRead) -> std::result::Result<Header, String> {
    let mut format = None;
    let mut elements: Vec<Element> = Vec::new();
    let mut line = String::new();
    let mut bytes = 0u64;
    for number in 1..=MAX_HEADER_LINES {
        line.clear();
        let read = reader
            .by_ref()
            .take(MAX_HEADER_LINE_BYTES)
            .read_line(&mut line)
            .map_err(|e| format!("header line {number} cannot be read: {e}"))?;
        if read == 0 {
            return Err("ends before end_header".into());
        }
        bytes += read as u64;
        if !line.ends_with('\n') && read as u64 == MAX_HEADER_LINE_BYTES {
            return Err(format!(
                "header line {number} is longer than {MAX_HEADER_LINE_BYTES} bytes"
            ));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ply"] if number == 1 => {}
            _ if number == 1 => return Err("does not start with `ply`".into()),
            ["format", encoding, version] => {
                if *version != "1.0" {
                    return Err(format!("format version `{version}` is not supported"));
                }
                format = Some(match *encoding {
                    "ascii" => PlyFormat::Ascii,
                    "binary_little_endian" => PlyFormat::BinaryLittleEndian,
                    "binary_big_endian" => PlyFormat::BinaryBigEndian,
                    other => return Err(format!("format `{other}` is not supported")),
                });
            }
            ["comment", ..] | ["obj_info", ..] | [] => {}
            ["element", name, count] => {
                let count: usize = count.parse().map_err(|_| {
                    format!(
                        "header line {number}: element `{name}` count `{count}` is not a number"
                    )
                })?;
                if count > MAX_ELEMENT_COUNT {
                    return Err(format!(
                        "element `{name}` has {count} entries, which exceed the limit of \
                         {MAX_ELEMENT_COUNT}"
                    ));
                }
                if elements.iter().any(|e| e.name == *name) {
                    return Err(format!("element `{name}` is declared twice"));
                }
                elements.push(Element {
                    name: (*name).to_owned(),
                    count,
                    properties: Vec::new(),
                });
            }
            ["property", rest @ ..] => {
                let element = elements
                    .last_mut()
                    .ok_or_else(|| format!("header line {number}: property before any element"))?;
                let property = parse_property(rest)
                    .map_err(|reason| format!("header line {number}: {reason}"))?;
                if element
                    .properties
                    .iter()
                    .any(|p| p.name() == property.name())
                {
                    return Err(format!(
                        "element `{}` declares property `{}` twice",
                        element.name,
                        property.name()
                    ));
                }
                element.properties.push(property);
            }
            ["end_header"] => {
                let format = format.ok_or("has no format line")?;
                return Ok(Header {
                    format,
                    elements,
                    lines: number,
                    bytes,
                });
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

fn parse_property(words: &[&str]) -> std::result::Result<Property, String> {
    let kind = |name: &str| {
        ScalarKind::parse(name)
            .ok_or_else(|| format!("property type `{name}` is not a PLY scalar type"))
    };
    match words {
        ["list", length, item, name] => {
            let length = kind(length)?;
            if length.is_float() {
                return Err(format!("list `{name}` has a floating-point length type"));
            }
            Ok(Property::List {
                name: (*name).to_owned(),
                length,
                item: kind(item)?,
            })
        }
        [scalar, name] => Ok(Property::Scalar {
            name: (*name).to_owned(),
            kind: kind(scalar)?,
        }),
        _ => Err(format!("`property {}` is not valid PLY", words.join(" "))),
    }
}
