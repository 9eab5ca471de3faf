//! Decodes GLB files: the container, the JSON document, buffer views (plain or
//! EXT_meshopt_compression) and the accessors of triangle primitives. Every offset,
//! length and count is checked before it is used, so a corrupt file yields an error and
//! never an absurd allocation.

use std::borrow::Cow;

use super::schema::{self, Accessor, BufferView, MeshoptView, Root};
use super::writer::{CHUNK_BIN, CHUNK_JSON, GLB_MAGIC, GLB_VERSION};
use super::{MESHOPT_EXTENSION, linear_to_srgb_u8};
use crate::recon::mesh::TriangleMesh;

/// Largest GLB file that is read (2 GiB).
pub(super) const MAX_GLB_BYTES: u64 = 2 << 30;
/// Largest JSON chunk (64 MiB); real documents of one mesh take a few kilobytes.
const MAX_JSON_BYTES: usize = 64 << 20;
/// Largest decoded size of one compressed buffer view (1 GiB), which bounds what a small
/// compressed file can make the decoder allocate.
const MAX_DECODED_BYTES: u64 = 1 << 30;
/// Largest byte stride of a compressed vertex buffer view that the reader decodes.
const MAX_MESHOPT_STRIDE: u64 = 64;

type Reason = String;

/// Splits a GLB file into its JSON chunk and its optional binary chunk.
pub(super) fn split_chunks(bytes: &[u8]) -> Result<(&[u8], Option<&[u8]>), Reason> {
    let word = |at: usize| -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    if bytes.len() < 12 {
        return Err(format!(
            "is {} bytes, shorter than the 12-byte GLB header",
            bytes.len()
        ));
    }
    if word(0) != GLB_MAGIC {
        return Err("does not start with the GLB magic `glTF`".into());
    }
    if word(4) != GLB_VERSION {
        return Err(format!(
            "has GLB container version {}, but only version 2 is supported",
            word(4)
        ));
    }
    let declared = word(8) as usize;
    if declared != bytes.len() {
        return Err(format!(
            "header declares {declared} bytes, but the file has {} (truncated or corrupt)",
            bytes.len()
        ));
    }

    let mut offset = 12;
    let mut json = None;
    let mut bin = None;
    let mut index = 0;
    while offset < bytes.len() {
        if bytes.len() - offset < 8 {
            return Err(format!("chunk {index} header is cut off at byte {offset}"));
        }
        let length = word(offset) as usize;
        let kind = word(offset + 4);
        let start = offset + 8;
        if length > bytes.len() - start {
            return Err(format!(
                "chunk {index} declares {length} bytes, but only {} remain",
                bytes.len() - start
            ));
        }
        let data = &bytes[start..start + length];
        match (index, kind) {
            (0, CHUNK_JSON) => {
                if length > MAX_JSON_BYTES {
                    return Err(format!(
                        "JSON chunk is {length} bytes, more than the limit of {MAX_JSON_BYTES}"
                    ));
                }
                json = Some(data);
            }
            (0, _) => return Err(format!("first chunk has type {kind:#x}, not JSON")),
            (1, CHUNK_BIN) => bin = Some(data),
            // The GLB specification requires readers to skip chunks of unknown types.
            _ => {}
        }
        offset = start + length.div_ceil(4) * 4;
        index += 1;
    }

    let json = json.ok_or("has no JSON chunk")?;
    Ok((json, bin))
}

pub(super) fn decode_glb(bytes: &[u8]) -> Result<TriangleMesh, Reason> {
    let (json, bin) = split_chunks(bytes)?;
    let root: Root = serde_json::from_slice(json)
        .map_err(|e| format!("JSON chunk is not a valid glTF document: {e}"))?;
    if !root.asset.version.starts_with("2.") {
        return Err(format!(
            "asset.version is `{}`, but only glTF 2.x is supported",
            root.asset.version
        ));
    }
    if let Some(other) = root
        .extensions_required
        .iter()
        .find(|e| *e != MESHOPT_EXTENSION)
    {
        return Err(format!(
            "requires extension `{other}`, which is not supported"
        ));
    }
    let document = Document::new(&root, bin)?;
    document.mesh()
}

/// The parsed document with the data of each buffer.
struct Document<'a> {
    root: &'a Root,
    /// Contents of each buffer; `None` for a meshopt fallback buffer, which has none.
    buffers: Vec<Option<&'a [u8]>>,
}

impl<'a> Document<'a> {
    fn new(root: &'a Root, bin: Option<&'a [u8]>) -> Result<Self, Reason> {
        let mut buffers = Vec::with_capacity(root.buffers.len());
        for (index, buffer) in root.buffers.iter().enumerate() {
            let is_fallback = buffer
                .extensions
                .meshopt
                .as_ref()
                .is_some_and(|m| m.fallback);
            let data = match (&buffer.uri, index, is_fallback) {
                (Some(uri), ..) => {
                    let uri_prefix: String = uri.chars().take(40).collect();
                    return Err(format!(
                        "buffer {index} has uri `{uri_prefix}`, but only data inside the GLB is supported"
                    ));
                }
                (None, _, true) => None,
                (None, 0, false) => {
                    let bin =
                        bin.ok_or("buffer 0 has no data, because the file has no BIN chunk")?;
                    if buffer.byte_length > bin.len() as u64 {
                        return Err(format!(
                            "buffer 0 declares {} bytes, but the BIN chunk has {}",
                            buffer.byte_length,
                            bin.len()
                        ));
                    }
                    Some(&bin[..buffer.byte_length as usize])
                }
                (None, _, false) => {
                    return Err(format!("buffer {index} has neither a uri nor GLB data"));
                }
            };
            buffers.push(data);
        }
        Ok(Self { root, buffers })
    }

    /// Returns the bytes of buffer view `index`, decoded when compressed.
    fn view_bytes(&self, index: usize) -> Result<Cow<'a, [u8]>, Reason> {
        let view = self
            .root
            .buffer_views
            .get(index)
            .ok_or_else(|| format!("buffer view {index} does not exist"))?;
        if let Some(compressed) = &view.extensions.meshopt {
            return self
                .decode_meshopt(view, compressed)
                .map(Cow::Owned)
                .map_err(|reason| format!("buffer view {index}: {reason}"));
        }
        let data = self
            .buffer_range(view.buffer, view.byte_offset, view.byte_length)
            .map_err(|reason| format!("buffer view {index}: {reason}"))?;
        Ok(Cow::Borrowed(data))
    }

    fn buffer_range(&self, buffer: usize, offset: u64, length: u64) -> Result<&'a [u8], Reason> {
        let data = self
            .buffers
            .get(buffer)
            .ok_or_else(|| format!("buffer {buffer} does not exist"))?
            .ok_or_else(|| {
                format!("refers to fallback buffer {buffer}, which has no data, without being compressed")
            })?;
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= data.len() as u64);
        let Some(end) = end else {
            return Err(format!(
                "bytes {offset}..{} lie outside buffer {buffer} of {} bytes",
                offset.saturating_add(length),
                data.len()
            ));
        };
        Ok(&data[offset as usize..end as usize])
    }

    fn decode_meshopt(
        &self,
        view: &BufferView,
        compressed: &MeshoptView,
    ) -> Result<Vec<u8>, Reason> {
        let source = self.buffer_range(
            compressed.buffer,
            compressed.byte_offset,
            compressed.byte_length,
        )?;
        let (stride, count) = (compressed.byte_stride, compressed.count);
        if compressed.filter != "NONE" {
            return Err(format!(
                "meshopt filter `{}` is not supported (only NONE)",
                compressed.filter
            ));
        }
        let decoded_length = stride.saturating_mul(count);
        if decoded_length > MAX_DECODED_BYTES {
            return Err(format!(
                "decodes to {decoded_length} bytes, more than the limit of {MAX_DECODED_BYTES}"
            ));
        }
        if decoded_length != view.byte_length {
            return Err(format!(
                "count {count} times byteStride {stride} does not match byteLength {}",
                view.byte_length
            ));
        }
        let count = count as usize;
        let failed = |e: meshopt::Error| {
            format!(
                "meshopt data cannot be decoded, so the file is corrupt or truncated ({e} from the meshoptimizer decoder)"
            )
        };
        match (compressed.mode.as_str(), stride) {
            ("ATTRIBUTES", s) if s % 4 == 0 && (4..=MAX_MESHOPT_STRIDE).contains(&s) => {
                decode_vertices(source, count, s as usize).map_err(failed)
            }
            ("ATTRIBUTES", s) => Err(format!(
                "vertex byteStride {s} is not a multiple of 4 in 4..={MAX_MESHOPT_STRIDE}"
            )),
            ("TRIANGLES", _) if !count.is_multiple_of(3) => {
                Err(format!("TRIANGLES count {count} is not a multiple of 3"))
            }
            ("TRIANGLES" | "INDICES", 2) => {
                let indices: Vec<u16> = if compressed.mode == "TRIANGLES" {
                    meshopt::decode_index_buffer(source, count).map_err(failed)?
                } else {
                    meshopt::decode_index_sequence(source, count).map_err(failed)?
                };
                Ok(indices.iter().flat_map(|i| i.to_le_bytes()).collect())
            }
            ("TRIANGLES" | "INDICES", 4) => {
                let indices: Vec<u32> = if compressed.mode == "TRIANGLES" {
                    meshopt::decode_index_buffer(source, count).map_err(failed)?
                } else {
                    meshopt::decode_index_sequence(source, count).map_err(failed)?
                };
                Ok(indices.iter().flat_map(|i| i.to_le_bytes()).collect())
            }
            ("TRIANGLES" | "INDICES", s) => Err(format!("index byteStride {s} is not 2 or 4")),
            (mode, _) => Err(format!("meshopt mode `{mode}` is not supported")),
        }
    }

    /// Checks the type and bounds of accessor `index` and returns its elements.
    fn accessor_elements(
        &self,
        index: usize,
        allowed: &[(u32, &str)],
    ) -> Result<(Elements<'a>, &'a Accessor), Reason> {
        let accessor = self
            .root
            .accessors
            .get(index)
            .ok_or_else(|| format!("accessor {index} does not exist"))?;
        let context = |reason: String| format!("accessor {index}: {reason}");
        if !allowed
            .iter()
            .any(|&(component, kind)| component == accessor.component_type && kind == accessor.kind)
        {
            return Err(context(format!(
                "component type {} with type {} is not valid here",
                accessor.component_type, accessor.kind
            )));
        }
        if accessor.sparse.is_some() {
            return Err(context("sparse accessors are not supported".into()));
        }

        let view_index = accessor
            .buffer_view
            .ok_or_else(|| context("has no buffer view".into()))?;
        let data = self.view_bytes(view_index).map_err(context)?;

        // view_bytes has checked that the view exists.
        let view = &self.root.buffer_views[view_index];
        let component_size: u64 = match accessor.component_type {
            schema::UNSIGNED_BYTE => 1,
            schema::UNSIGNED_SHORT => 2,
            _ => 4,
        };
        let components: u64 = match accessor.kind.as_str() {
            "SCALAR" => 1,
            "VEC3" => 3,
            _ => 4,
        };
        let element_size = component_size * components;
        let stride = view.byte_stride.unwrap_or(element_size);
        if stride < element_size {
            return Err(context(format!(
                "byteStride {stride} is smaller than the element size {element_size}"
            )));
        }

        let count = accessor.count;
        if count == 0 {
            return Err(context("count is 0".into()));
        }
        let end = (count - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(accessor.byte_offset))
            .and_then(|v| v.checked_add(element_size));
        if end.is_none_or(|end| end > data.len() as u64) {
            return Err(context(format!(
                "{count} elements of {element_size} bytes every {stride} bytes from offset {} \
                 do not fit in buffer view {view_index} of {} bytes",
                accessor.byte_offset,
                data.len()
            )));
        }

        let elements = Elements {
            data,
            offset: accessor.byte_offset as usize,
            stride: stride as usize,
            size: element_size as usize,
            count: count as usize,
        };
        Ok((elements, accessor))
    }

    fn read_vec3(&self, index: usize) -> Result<Vec<[f32; 3]>, Reason> {
        let (elements, _) = self.accessor_elements(index, &[(schema::FLOAT, "VEC3")])?;
        Ok(elements
            .iter()
            .map(|e| {
                std::array::from_fn(|c| {
                    f32::from_le_bytes([e[4 * c], e[4 * c + 1], e[4 * c + 2], e[4 * c + 3]])
                })
            })
            .collect())
    }

    fn read_colors(&self, index: usize) -> Result<Vec<[u8; 3]>, Reason> {
        let allowed = [
            (schema::FLOAT, "VEC3"),
            (schema::FLOAT, "VEC4"),
            (schema::UNSIGNED_BYTE, "VEC3"),
            (schema::UNSIGNED_BYTE, "VEC4"),
            (schema::UNSIGNED_SHORT, "VEC3"),
            (schema::UNSIGNED_SHORT, "VEC4"),
        ];
        let (elements, accessor) = self.accessor_elements(index, &allowed)?;
        if accessor.component_type != schema::FLOAT && !accessor.normalized {
            return Err(format!(
                "accessor {index}: integer colours must be normalized"
            ));
        }
        let linear = |e: &[u8], c: usize| -> f64 {
            match accessor.component_type {
                schema::UNSIGNED_BYTE => f64::from(e[c]) / 255.0,
                schema::UNSIGNED_SHORT => {
                    f64::from(u16::from_le_bytes([e[2 * c], e[2 * c + 1]])) / 65535.0
                }
                _ => f64::from(f32::from_le_bytes([
                    e[4 * c],
                    e[4 * c + 1],
                    e[4 * c + 2],
                    e[4 * c + 3],
                ])),
            }
        };
        Ok(elements
            .iter()
            .map(|e| std::array::from_fn(|c| linear_to_srgb_u8(linear(e, c))))
            .collect())
    }

    fn read_indices(&self, index: usize) -> Result<Vec<u32>, Reason> {
        let allowed = [
            (schema::UNSIGNED_BYTE, "SCALAR"),
            (schema::UNSIGNED_SHORT, "SCALAR"),
            (schema::UNSIGNED_INT, "SCALAR"),
        ];
        let (elements, _) = self.accessor_elements(index, &allowed)?;
        Ok(elements
            .iter()
            .map(|e| match e.len() {
                1 => u32::from(e[0]),
                2 => u32::from(u16::from_le_bytes([e[0], e[1]])),
                _ => u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            })
            .collect())
    }

    /// Merges the triangle primitives of all meshes. Normals and colours are kept only
    /// when every primitive has them.
    fn mesh(&self) -> Result<TriangleMesh, Reason> {
        let primitives: Vec<_> = self
            .root
            .meshes
            .iter()
            .enumerate()
            .flat_map(|(m, mesh)| {
                mesh.primitives
                    .iter()
                    .enumerate()
                    .map(move |(p, prim)| (m, p, prim))
            })
            .collect();
        if primitives.is_empty() {
            return Err("contains no mesh primitives".into());
        }
        let keep_normals = primitives
            .iter()
            .all(|(_, _, p)| p.attributes.contains_key("NORMAL"));
        let keep_colors = primitives
            .iter()
            .all(|(_, _, p)| p.attributes.contains_key("COLOR_0"));
        let mut out = TriangleMesh {
            normals: keep_normals.then(Vec::new),
            colors: keep_colors.then(Vec::new),
            ..TriangleMesh::default()
        };
        for (m, p, primitive) in primitives {
            let context = |reason: String| format!("mesh {m} primitive {p}: {reason}");
            let mode = primitive.mode.unwrap_or(schema::TRIANGLES);
            if mode != schema::TRIANGLES {
                return Err(context(format!(
                    "mode {mode} is not supported (only triangles, 4)"
                )));
            }
            let position_accessor = *primitive
                .attributes
                .get("POSITION")
                .ok_or_else(|| context("has no POSITION attribute".into()))?;
            let positions = self.read_vec3(position_accessor).map_err(context)?;
            if let Some(vertex) = positions
                .iter()
                .position(|p| !p.iter().all(|v| v.is_finite()))
            {
                return Err(context(format!(
                    "vertex {vertex} has a coordinate that is not finite"
                )));
            }
            let vertex_count = positions.len();
            let attribute_count = |name: &str, count: usize| {
                if count == vertex_count {
                    Ok(())
                } else {
                    Err(context(format!(
                        "{name} has {count} elements for {vertex_count} vertices"
                    )))
                }
            };
            if let Some(normals) = &mut out.normals {
                let read = self
                    .read_vec3(primitive.attributes["NORMAL"])
                    .map_err(context)?;
                attribute_count("NORMAL", read.len())?;
                if read.iter().any(|n| !n.iter().all(|v| v.is_finite())) {
                    return Err(context("NORMAL has a value that is not finite".into()));
                }
                normals.extend(read);
            }
            if let Some(colors) = &mut out.colors {
                let read = self
                    .read_colors(primitive.attributes["COLOR_0"])
                    .map_err(context)?;
                attribute_count("COLOR_0", read.len())?;
                colors.extend(read);
            }
            let indices = match primitive.indices {
                Some(accessor) => self.read_indices(accessor).map_err(context)?,
                None => (0..vertex_count as u32).collect(),
            };
            if indices.len() % 3 != 0 {
                return Err(context(format!(
                    "{} indices are not a multiple of 3",
                    indices.len()
                )));
            }
            if let Some(bad) = indices.iter().find(|&&i| i as usize >= vertex_count) {
                return Err(context(format!(
                    "index {bad} is out of range for {vertex_count} vertices"
                )));
            }
            let base = u32::try_from(out.positions.len())
                .ok()
                .filter(|b| b.checked_add(vertex_count as u32).is_some())
                .ok_or_else(|| {
                    context("the meshes have more vertices than 32-bit indices hold".into())
                })?;
            out.triangles.extend(
                indices
                    .chunks_exact(3)
                    .map(|t| [t[0] + base, t[1] + base, t[2] + base]),
            );
            out.positions.extend(positions);
        }
        Ok(out)
    }
}

/// The elements of an accessor inside its buffer view's bytes.
struct Elements<'a> {
    data: Cow<'a, [u8]>,
    offset: usize,
    stride: usize,
    size: usize,
    count: usize,
}

impl Elements<'_> {
    /// Iterates over the little-endian bytes of each element.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.count).map(|i| {
            let start = self.offset + i * self.stride;
            &self.data[start..start + self.size]
        })
    }
}

/// Decodes a meshopt vertex stream whose elements are `stride` bytes.
fn decode_vertices(source: &[u8], count: usize, stride: usize) -> meshopt::Result<Vec<u8>> {
    /// One element as 32-bit words; the decoder writes `size_of` bytes per element.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    struct Element<const WORDS: usize>([u32; WORDS]);
    impl<const WORDS: usize> Default for Element<WORDS> {
        fn default() -> Self {
            Self([0; WORDS])
        }
    }
    fn decode<const WORDS: usize>(source: &[u8], count: usize) -> meshopt::Result<Vec<u8>> {
        let elements: Vec<Element<WORDS>> = meshopt::decode_vertex_buffer(source, count)?;
        // Native-endian words hold the decoded bytes exactly as the codec wrote them.
        Ok(elements
            .iter()
            .flat_map(|e| e.0)
            .flat_map(u32::to_ne_bytes)
            .collect())
    }
    match stride / 4 {
        1 => decode::<1>(source, count),
        2 => decode::<2>(source, count),
        3 => decode::<3>(source, count),
        4 => decode::<4>(source, count),
        5 => decode::<5>(source, count),
        6 => decode::<6>(source, count),
        7 => decode::<7>(source, count),
        8 => decode::<8>(source, count),
        9 => decode::<9>(source, count),
        10 => decode::<10>(source, count),
        11 => decode::<11>(source, count),
        12 => decode::<12>(source, count),
        13 => decode::<13>(source, count),
        14 => decode::<14>(source, count),
        15 => decode::<15>(source, count),
        _ => decode::<16>(source, count),
    }
}
