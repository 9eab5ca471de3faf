//! Encodes a mesh as GLB: JSON chunk, binary chunk, and with meshopt compression a
//! fallback buffer that has a length but no contents.

use serde_json::{Value, json};

use super::schema::{ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER, FLOAT, TRIANGLES};
use super::schema::{UNSIGNED_INT, UNSIGNED_SHORT};
use super::srgb_to_linear_u16;
use super::{Compression, GlbOptions, MESHOPT_EXTENSION};
use crate::error::{Error, Result};
use crate::recon::export::check_mesh;
use crate::recon::mesh::TriangleMesh;

/// GLB magic "glTF", container version, and the chunk types "JSON" and "BIN\0".
pub(super) const GLB_MAGIC: u32 = 0x4654_6C67;
pub(super) const GLB_VERSION: u32 = 2;
pub(super) const CHUNK_JSON: u32 = 0x4E4F_534A;
pub(super) const CHUNK_BIN: u32 = 0x004E_4942;

/// Normals whose length differs from 1 by more than this are rescaled on writing; the
/// Khronos validator reports lengths off by more than 0.0005.
const UNIT_TOLERANCE: f32 = 1e-5;

/// One buffer view with the accessor that reads it.
struct View {
    /// The primitive attribute the view contains, or `None` for the indices.
    attribute: Option<&'static str>,
    data: Vec<u8>,
    /// Bytes per element: the vertex stride, or the index size.
    element_size: usize,
    count: usize,
    is_index: bool,
    accessor: Value,
}

/// Vertex arrays and indices ready to store, in the order the file will have them.
struct Arrays {
    positions: Vec<[f32; 3]>,
    normals: Option<Vec<[f32; 3]>>,
    colors: Option<Vec<[u8; 3]>>,
    indices: Vec<u32>,
}

pub(super) fn encode_glb(mesh: &TriangleMesh, options: &GlbOptions) -> Result<Vec<u8>> {
    check_mesh(mesh)?;
    if mesh.triangles.is_empty() {
        return Err(Error::invalid(
            "mesh",
            "has no triangles, and glTF accessors cannot be empty",
        ));
    }
    let mut arrays = Arrays {
        positions: mesh.positions.clone(),
        normals: mesh.normals.as_ref().map(|n| n.iter().map(unit).collect()),
        colors: mesh.colors.clone(),
        indices: mesh.triangles.iter().flatten().copied().collect(),
    };
    if options.compression == Compression::Meshopt {
        arrays = optimize_for_codec(arrays);
    }
    let views = build_views(&arrays);
    let (json, bin) = match options.compression {
        Compression::None => layout_plain(views),
        Compression::Meshopt => layout_meshopt(views)?,
    };
    let text = serde_json::to_vec(&json)
        .map_err(|e| Error::Internal(format!("glTF JSON encoding failed: {e}")))?;
    assemble(text, bin)
}

fn unit(normal: &[f32; 3]) -> [f32; 3] {
    let length = normal.iter().map(|v| v * v).sum::<f32>().sqrt();
    if (length - 1.0).abs() <= UNIT_TOLERANCE {
        *normal
    } else if length > 0.0 {
        normal.map(|v| v / length)
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// Reorders triangles for the vertex cache and vertices for fetch locality, as the
/// meshopt codecs compress such data best. Unreferenced vertices are dropped.
fn optimize_for_codec(arrays: Arrays) -> Arrays {
    let vertex_count = arrays.positions.len();
    let mut indices = meshopt::optimize_vertex_cache(&arrays.indices, vertex_count);
    let remap = meshopt::optimize_vertex_fetch_remap(&indices, vertex_count);
    let used = remap.iter().filter(|&&r| r != u32::MAX).count();
    fn apply<T: Copy + Default>(values: &[T], remap: &[u32], used: usize) -> Vec<T> {
        let mut out = vec![T::default(); used];
        for (value, &target) in values.iter().zip(remap) {
            if target != u32::MAX {
                out[target as usize] = *value;
            }
        }
        out
    }
    for index in &mut indices {
        *index = remap[*index as usize];
    }
    Arrays {
        positions: apply(&arrays.positions, &remap, used),
        normals: arrays.normals.as_deref().map(|n| apply(n, &remap, used)),
        colors: arrays.colors.as_deref().map(|c| apply(c, &remap, used)),
        indices,
    }
}

fn floats_to_bytes(values: &[[f32; 3]]) -> Vec<u8> {
    values
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn build_views(arrays: &Arrays) -> Vec<View> {
    let count = arrays.positions.len();
    let mut min = [f32::INFINITY; 3];
    let mut max = [f32::NEG_INFINITY; 3];
    for position in &arrays.positions {
        for axis in 0..3 {
            min[axis] = min[axis].min(position[axis]);
            max[axis] = max[axis].max(position[axis]);
        }
    }
    let mut views = vec![View {
        attribute: Some("POSITION"),
        data: floats_to_bytes(&arrays.positions),
        element_size: 12,
        count,
        is_index: false,
        accessor: json!({"componentType": FLOAT, "count": count, "type": "VEC3",
            "min": min, "max": max}),
    }];
    if let Some(normals) = &arrays.normals {
        views.push(View {
            attribute: Some("NORMAL"),
            data: floats_to_bytes(normals),
            element_size: 12,
            count,
            is_index: false,
            accessor: json!({"componentType": FLOAT, "count": count, "type": "VEC3"}),
        });
    }
    if let Some(colors) = &arrays.colors {
        // glTF vertex colours are linear, and 16 bits keep every 8-bit sRGB value
        // distinct after the conversion, so the colours read back exactly. VEC4 keeps
        // the attribute 4-byte aligned, as vertex attributes must be.
        let data = colors
            .iter()
            .flat_map(|&[r, g, b]| {
                [
                    srgb_to_linear_u16(r),
                    srgb_to_linear_u16(g),
                    srgb_to_linear_u16(b),
                    u16::MAX,
                ]
            })
            .flat_map(u16::to_le_bytes)
            .collect();
        views.push(View {
            attribute: Some("COLOR_0"),
            data,
            element_size: 8,
            count,
            is_index: false,
            accessor: json!({"componentType": UNSIGNED_SHORT, "normalized": true,
                "count": count, "type": "VEC4"}),
        });
    }
    // The largest value of each index type is reserved for primitive restart.
    let (data, element_size, component_type) = if count <= usize::from(u16::MAX) {
        let data = arrays
            .indices
            .iter()
            .flat_map(|&i| (i as u16).to_le_bytes())
            .collect();
        (data, 2, UNSIGNED_SHORT)
    } else {
        let data = arrays
            .indices
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect();
        (data, 4, UNSIGNED_INT)
    };
    views.push(View {
        attribute: None,
        data,
        element_size,
        count: arrays.indices.len(),
        is_index: true,
        accessor: json!({"componentType": component_type, "count": arrays.indices.len(),
            "type": "SCALAR"}),
    });
    views
}

fn padded_len(length: usize) -> usize {
    length.div_ceil(4) * 4
}

/// Builds the JSON around the buffer views: scene, node, mesh with one primitive, a
/// plain material that shows the vertex colours, and one accessor per view.
fn document(views: &[View], buffer_views: Vec<Value>, buffers: Vec<Value>) -> Value {
    let mut attributes = serde_json::Map::new();
    for (index, view) in views.iter().enumerate() {
        if let Some(name) = view.attribute {
            attributes.insert(name.to_owned(), json!(index));
        }
    }
    let accessors: Vec<Value> = views
        .iter()
        .enumerate()
        .map(|(index, view)| {
            let mut accessor = view.accessor.clone();
            accessor["bufferView"] = json!(index);
            accessor
        })
        .collect();
    json!({
        "asset": {"version": "2.0", "generator": "kai"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{
            "attributes": attributes,
            "indices": views.len() - 1,
            "mode": TRIANGLES,
            "material": 0,
        }]}],
        "materials": [{
            "name": "kai_surface",
            "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                "metallicFactor": 0.0, "roughnessFactor": 1.0},
        }],
        "accessors": accessors,
        "bufferViews": buffer_views,
        "buffers": buffers,
    })
}

fn target(view: &View) -> u32 {
    if view.is_index {
        ELEMENT_ARRAY_BUFFER
    } else {
        ARRAY_BUFFER
    }
}

/// Stores every view uncompressed in the binary chunk, each 4-byte aligned.
fn layout_plain(views: Vec<View>) -> (Value, Vec<u8>) {
    let mut bin = Vec::new();
    let mut buffer_views = Vec::new();
    for view in &views {
        let mut entry = json!({"buffer": 0, "byteOffset": bin.len(),
            "byteLength": view.data.len(), "target": target(view)});
        if !view.is_index {
            entry["byteStride"] = json!(view.element_size);
        }
        buffer_views.push(entry);
        bin.extend_from_slice(&view.data);
        bin.resize(padded_len(bin.len()), 0);
    }
    let buffers = vec![json!({"byteLength": bin.len()})];
    (document(&views, buffer_views, buffers), bin)
}

/// Stores every view meshopt-encoded in the binary chunk (buffer 0). The views point
/// into buffer 1, the fallback buffer, which has a length but no data because the
/// extension is required.
fn layout_meshopt(views: Vec<View>) -> Result<(Value, Vec<u8>)> {
    let mut bin = Vec::new();
    let mut fallback_length = 0usize;
    let mut buffer_views = Vec::new();
    for view in &views {
        let (encoded, mode) = if view.is_index {
            let indices: Vec<u32> = match view.element_size {
                2 => view
                    .data
                    .chunks_exact(2)
                    .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                _ => view
                    .data
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            };
            let vertex_count = views[0].count;
            (
                meshopt::encode_index_buffer(&indices, vertex_count),
                "TRIANGLES",
            )
        } else {
            (encode_vertices(&view.data, view.element_size), "ATTRIBUTES")
        };
        let encoded = encoded.map_err(|e| {
            Error::Internal(format!("meshopt encoding of a buffer view failed: {e}"))
        })?;
        let mut entry = json!({"buffer": 1, "byteOffset": fallback_length,
        "byteLength": view.data.len(), "target": target(view),
        "extensions": {MESHOPT_EXTENSION: {
            "buffer": 0, "byteOffset": bin.len(), "byteLength": encoded.len(),
            "byteStride": view.element_size, "count": view.count, "mode": mode,
        }}});
        if !view.is_index {
            entry["byteStride"] = json!(view.element_size);
        }
        buffer_views.push(entry);
        bin.extend_from_slice(&encoded);
        bin.resize(padded_len(bin.len()), 0);
        fallback_length += padded_len(view.data.len());
    }
    let buffers = vec![
        json!({"byteLength": bin.len()}),
        json!({"byteLength": fallback_length,
            "extensions": {MESHOPT_EXTENSION: {"fallback": true}}}),
    ];
    let mut json = document(&views, buffer_views, buffers);
    json["extensionsUsed"] = json!([MESHOPT_EXTENSION]);
    json["extensionsRequired"] = json!([MESHOPT_EXTENSION]);
    Ok((json, bin))
}

/// Encodes vertex data with codec version 0, the version that EXT_meshopt_compression
/// specifies (newer meshoptimizer releases default to version 1, which only
/// KHR_meshopt_compression allows).
fn encode_vertices(data: &[u8], stride: usize) -> meshopt::Result<Vec<u8>> {
    fn encode<const WORDS: usize>(data: &[u8]) -> meshopt::Result<Vec<u8>> {
        // Native-endian words keep the bytes in memory exactly as in the file.
        let elements: Vec<[u32; WORDS]> = data
            .chunks_exact(WORDS * 4)
            .map(|element| {
                std::array::from_fn(|w| {
                    let b = &element[w * 4..w * 4 + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                })
            })
            .collect();
        meshopt::encode_vertex_buffer_level(&elements, 2, Some(0))
    }
    match stride {
        4 => encode::<1>(data),
        8 => encode::<2>(data),
        12 => encode::<3>(data),
        _ => Err(meshopt::Error::Config(format!(
            "vertex stride {stride} is not one the writer produces"
        ))),
    }
}

/// Wraps the JSON text and the binary data in the GLB container: a 12-byte header, then
/// each chunk with its length and type, padded to 4 bytes (JSON with spaces, binary
/// with zeros).
pub(super) fn assemble(mut json: Vec<u8>, mut bin: Vec<u8>) -> Result<Vec<u8>> {
    json.resize(padded_len(json.len()), b' ');
    bin.resize(padded_len(bin.len()), 0);
    let has_bin = !bin.is_empty();
    let total = 12 + 8 + json.len() + if has_bin { 8 + bin.len() } else { 0 };
    if total > u32::MAX as usize {
        return Err(Error::invalid(
            "mesh",
            format!("needs {total} bytes as GLB, more than the format's 4 GiB limit"),
        ));
    }
    let mut out = Vec::with_capacity(total);
    out.extend(GLB_MAGIC.to_le_bytes());
    out.extend(GLB_VERSION.to_le_bytes());
    out.extend((total as u32).to_le_bytes());
    out.extend((json.len() as u32).to_le_bytes());
    out.extend(CHUNK_JSON.to_le_bytes());
    out.extend(json);
    if has_bin {
        out.extend((bin.len() as u32).to_le_bytes());
        out.extend(CHUNK_BIN.to_le_bytes());
        out.extend(bin);
    }
    Ok(out)
}
