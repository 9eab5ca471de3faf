//! Binary glTF 2.0 (GLB) meshes, optionally compressed with EXT_meshopt_compression.
//!
//! The writer stores one mesh with one triangle primitive: `POSITION` and `NORMAL` as
//! float `VEC3`, `COLOR_0` as linear normalized unsigned short `VEC4` (opaque) and
//! indices as unsigned short or unsigned int. With [`Compression::Meshopt`] every buffer view is
//! encoded with meshoptimizer's vertex and index codecs. The uncompressed data then lives
//! only in a fallback buffer without contents, so the extension is required to read the
//! file. The reader takes the same subset back, from any writer.

mod reader;
mod schema;
mod writer;

use std::path::Path;

use crate::error::{Error, Result};
use crate::recon::export::write_atomically;
use crate::recon::mesh::TriangleMesh;

/// The name of the glTF extension for meshoptimizer-compressed buffer views.
pub(super) const MESHOPT_EXTENSION: &str = "EXT_meshopt_compression";

/// Compression of the buffer views in a GLB file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Plain little-endian arrays, which every glTF reader loads.
    #[default]
    None,
    /// meshoptimizer's vertex and index codecs (EXT_meshopt_compression, no filters),
    /// which readers such as three.js and Babylon.js decode with the meshoptimizer
    /// decoder. Vertices are reordered for the GPU's vertex cache first, and vertices
    /// that no triangle uses are dropped.
    Meshopt,
}

/// Settings of [`TriangleMesh::write_glb`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlbOptions {
    /// Compression of the buffer views.
    pub compression: Compression,
}

impl TriangleMesh {
    /// Writes the mesh as one GLB file. Normals are rescaled to unit length where they
    /// are not already, as glTF requires, and a zero normal is written as +Z. Fails on a
    /// mesh without triangles, because glTF accessors cannot be empty.
    pub fn write_glb(&self, path: &Path, options: &GlbOptions) -> Result<()> {
        let bytes = writer::encode_glb(self, options)?;
        write_atomically(path, |out| out.write_all(&bytes))
    }

    /// Reads the triangles of every mesh in a GLB file into one mesh, decoding
    /// EXT_meshopt_compression buffer views. Node transforms are not applied, and files
    /// with external buffers, sparse accessors or other required extensions are rejected.
    pub fn read_glb(path: &Path) -> Result<Self> {
        let fail = |reason: String| Error::invalid(format!("GLB file {}", path.display()), reason);
        let length = std::fs::metadata(path)
            .map_err(|e| Error::io("cannot open", path, e))?
            .len();
        if length > reader::MAX_GLB_BYTES {
            return Err(fail(format!(
                "is {length} bytes, more than the limit of {} bytes",
                reader::MAX_GLB_BYTES
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        reader::decode_glb(&bytes).map_err(fail)
    }
}

/// Converts an 8-bit sRGB channel to a linear 16-bit one (IEC 61966-2-1 transfer
/// function), as glTF stores vertex colours.
pub(super) fn srgb_to_linear_u16(channel: u8) -> u16 {
    let encoded = f64::from(channel) / 255.0;
    let linear = if encoded <= 0.04045 {
        encoded / 12.92
    } else {
        ((encoded + 0.055) / 1.055).powf(2.4)
    };
    (linear * 65535.0).round() as u16
}

/// Converts a linear channel in 0..1 to 8-bit sRGB, the inverse of
/// [`srgb_to_linear_u16`]; values outside 0..1 are clamped.
pub(super) fn linear_to_srgb_u8(linear: f64) -> u8 {
    let linear = linear.clamp(0.0, 1.0);
    let encoded = if linear <= 0.0031308 {
        linear * 12.92
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    };
    (encoded * 255.0).round() as u8
}

#[cfg(test)]
mod tests;
