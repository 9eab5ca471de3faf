//! Writes PLY headers and rows in any of the three encodings.

use std::io::{self, Write};

use super::PlyFormat;

/// The vertex properties a file stores besides `x y z`.
#[derive(Debug, Clone, Copy)]
pub(super) struct VertexProperties {
    pub(super) normals: bool,
    pub(super) colors: bool,
}

/// Writes the header: `x y z` (and `nx ny nz`) as float, `red green blue` as uchar, and
/// faces as `list uchar uint vertex_indices` when `faces` is given.
pub(super) fn write_header(
    out: &mut impl Write,
    format: PlyFormat,
    vertices: usize,
    properties: VertexProperties,
    faces: Option<usize>,
) -> io::Result<()> {
    let format_name = match format {
        PlyFormat::Ascii => "ascii",
        PlyFormat::BinaryLittleEndian => "binary_little_endian",
        PlyFormat::BinaryBigEndian => "binary_big_endian",
    };
    writeln!(out, "ply\nformat {format_name} 1.0\ncomment written by kai")?;
    writeln!(out, "element vertex {vertices}")?;
    writeln!(out, "property float x\nproperty float y\nproperty float z")?;
    if properties.normals {
        writeln!(
            out,
            "property float nx\nproperty float ny\nproperty float nz"
        )?;
    }
    if properties.colors {
        writeln!(
            out,
            "property uchar red\nproperty uchar green\nproperty uchar blue"
        )?;
    }
    if let Some(faces) = faces {
        writeln!(out, "element face {faces}")?;
        writeln!(out, "property list uchar uint vertex_indices")?;
    }
    writeln!(out, "end_header")
}

/// Writes the values of one row after another; ASCII rows are space-separated lines.
pub(super) struct RowWriter<W> {
    out: W,
    format: PlyFormat,
    row_started: bool,
}

impl<W: Write> RowWriter<W> {
    pub(super) fn new(out: W, format: PlyFormat) -> Self {
        Self {
            out,
            format,
            row_started: false,
        }
    }

    fn separate(&mut self) -> io::Result<()> {
        if self.row_started {
            self.out.write_all(b" ")?;
        }
        self.row_started = true;
        Ok(())
    }

    /// Writes a float; ASCII uses the shortest text that reads back to the same `f32`.
    pub(super) fn float(&mut self, value: f32) -> io::Result<()> {
        match self.format {
            PlyFormat::Ascii => {
                self.separate()?;
                write!(self.out, "{value}")
            }
            PlyFormat::BinaryLittleEndian => self.out.write_all(&value.to_le_bytes()),
            PlyFormat::BinaryBigEndian => self.out.write_all(&value.to_be_bytes()),
        }
    }

    pub(super) fn uchar(&mut self, value: u8) -> io::Result<()> {
        match self.format {
            PlyFormat::Ascii => {
                self.separate()?;
                write!(self.out, "{value}")
            }
            _ => self.out.write_all(&[value]),
        }
    }

    pub(super) fn uint(&mut self, value: u32) -> io::Result<()> {
        match self.format {
            PlyFormat::Ascii => {
                self.separate()?;
                write!(self.out, "{value}")
            }
            PlyFormat::BinaryLittleEndian => self.out.write_all(&value.to_le_bytes()),
            PlyFormat::BinaryBigEndian => self.out.write_all(&value.to_be_bytes()),
        }
    }

    pub(super) fn end_row(&mut self) -> io::Result<()> {
        self.row_started = false;
        if self.format == PlyFormat::Ascii {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}
