//! The index file: [`save`] writes it atomically, [`load`] checks it completely.
//!
//! Layout, all numbers little-endian:
//!
//! | field | size |
//! | --- | --- |
//! | magic `KAIVECIX` | 8 bytes |
//! | format version ([`FORMAT_VERSION`]) | u32 |
//! | dimension | u32 |
//! | metric: 0 cosine, 1 ip, 2 l2 | u8 |
//! | kind: 0 exact, 1 HNSW | u8 |
//! | reserved, zero | 2 bytes |
//! | m, ef_construction, ef_search (zero when exact) | 3 × u32 |
//! | seed, level generator state | 2 × u64 |
//! | max_deleted_fraction | f32 |
//! | slots, live vectors | 2 × u64 |
//! | strings in the metadata table | u64 |
//! | model name: length, UTF-8 bytes | u32 + bytes |
//! | metadata strings: length, UTF-8 bytes each | (u32 + bytes) × strings |
//! | vectors, slot after slot | f32 × slots × dimension |
//! | ids | u64 × slots |
//! | removed flags (0 or 1) | u8 × slots |
//! | material type codes, collection codes (`u32::MAX` when absent) | 2 × u32 × slots |
//! | tag counts, then total tags, then tag codes | u32 × slots + u64 + u32 × total |
//! | HNSW only: entry point (`u32::MAX` when empty), levels | u32 + u8 × slots |
//! | HNSW only: layer-0 lists, each a count and `2m` slots | u32 × slots × (2m + 1) |
//! | HNSW only: upper lists of each slot above level 0, per level a count and `m` slots | u32 × … |
//! | SHA-256 of every byte before it | 32 bytes |
//!
//! Removed slots are kept, because the graph links through them.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::MAX_MODEL_BYTES;
use super::VectorIndex;
use super::config::{HnswConfig, IndexConfig, IndexKind};
use super::filter::{CodedMetadata, MAX_METADATA_STRING_BYTES, MAX_TAGS, MetadataTable, NO_CODE};
use super::hnsw::{GraphParts, HnswGraph, MAX_LEVEL};
use super::metric::Metric;
use super::store::{MAX_VECTORS, VectorStore};
use super::vectors::MAX_DIMENSION;
use crate::error::{Error, Result};

/// The version of the index file format that this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: [u8; 8] = *b"KAIVECIX";
const CHECKSUM_BYTES: u64 = 32;
/// Values converted per write or read call.
const CHUNK_VALUES: usize = 16 * 1024;
const NO_SLOT: u32 = u32::MAX;

pub(super) fn save(index: &VectorIndex, path: &Path) -> Result<()> {
    let started = Instant::now();
    let write_error = |source| Error::io("cannot write vector index", path, source);
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };

    // The temporary file sits beside the target, so the rename below stays on one file
    // system and replaces the target in one step.
    let mut temporary = tempfile::Builder::new()
        .prefix(".kai-index-")
        .tempfile_in(folder)
        .map_err(write_error)?;
    {
        let mut writer = HashWriter {
            inner: BufWriter::with_capacity(1 << 20, temporary.as_file_mut()),
            hasher: Sha256::new(),
        };
        write_index(index, &mut writer).map_err(write_error)?;
        let digest = writer.hasher.finalize();
        writer.inner.write_all(&digest).map_err(write_error)?;
        writer.inner.flush().map_err(write_error)?;
    }

    temporary.as_file().sync_all().map_err(write_error)?;
    temporary
        .persist(path)
        .map_err(|error| write_error(error.error))?;
    sync_folder(folder).map_err(write_error)?;

    tracing::debug!(
        path = %path.display(),
        vectors = index.len(),
        seconds = started.elapsed().as_secs_f64(),
        "saved vector index"
    );
    Ok(())
}

/// Flushes the folder entry of a rename to disk, so the new file survives a crash.
#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Does nothing, because `File::open` cannot open a folder on Windows.
// NOTE: on Windows a crash right after `save` may therefore lose the rename.
#[cfg(not(unix))]
fn sync_folder(_folder: &Path) -> io::Result<()> {
    Ok(())
}

fn write_index<W: Write>(index: &VectorIndex, out: &mut HashWriter<W>) -> io::Result<()> {
    let store = &index.store;
    let hnsw = index.config.hnsw_config();
    let strings = store.metadata().strings();

    out.bytes(&MAGIC)?;
    out.u32(FORMAT_VERSION)?;
    out.u32(index.dimension as u32)?;
    out.bytes(&[index.metric.code(), u8::from(hnsw.is_some()), 0, 0])?;
    let (m, ef_construction, ef_search, seed) = hnsw.map_or((0, 0, 0, 0), |hnsw| {
        (hnsw.m, hnsw.ef_construction, hnsw.ef_search, hnsw.seed)
    });
    out.u32(m as u32)?;
    out.u32(ef_construction as u32)?;
    out.u32(ef_search as u32)?;
    out.u64(seed)?;
    out.u64(index.graph.as_ref().map_or(0, HnswGraph::rng_state))?;
    out.bytes(&index.config.max_deleted_fraction.to_le_bytes())?;
    out.u64(store.slot_count() as u64)?;
    out.u64(store.live_count() as u64)?;
    out.u64(strings.len() as u64)?;
    out.text(&index.model)?;
    for text in strings {
        out.text(text)?;
    }

    out.values(store.vectors(), f32::to_le_bytes)?;
    out.values(store.ids(), u64::to_le_bytes)?;
    let flags: Vec<u8> = store
        .deleted()
        .iter()
        .map(|&deleted| u8::from(deleted))
        .collect();
    out.bytes(&flags)?;
    let rows = store.metadata().rows();
    let column = |field: fn(&CodedMetadata) -> u32| rows.iter().map(field).collect::<Vec<u32>>();
    out.values(&column(|row| row.material_type), u32::to_le_bytes)?;
    out.values(&column(|row| row.collection), u32::to_le_bytes)?;
    out.values(&column(|row| row.tags.len() as u32), u32::to_le_bytes)?;
    let tags: Vec<u32> = rows
        .iter()
        .flat_map(|row| row.tags.iter().copied())
        .collect();
    out.u64(tags.len() as u64)?;
    out.values(&tags, u32::to_le_bytes)?;

    if let Some(graph) = &index.graph {
        out.u32(graph.entry().unwrap_or(NO_SLOT))?;
        out.bytes(graph.levels())?;
        out.values(graph.layer0(), u32::to_le_bytes)?;
        for slot in 0..store.slot_count() as u32 {
            out.values(graph.upper(slot), u32::to_le_bytes)?;
        }
    }
    Ok(())
}

pub(super) fn load(path: &Path) -> Result<VectorIndex> {
    let started = Instant::now();
    let file =
        File::open(path).map_err(|source| Error::io("cannot open vector index", path, source))?;
    let length = file
        .metadata()
        .map_err(|source| Error::io("cannot read vector index", path, source))?
        .len();
    let mut reader = HashReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        remaining: length.saturating_sub(CHECKSUM_BYTES),
        path,
    };
    let index = read_index(&mut reader, length)?;

    if reader.remaining != 0 {
        return Err(reader.invalid(format!(
            "{} bytes follow the last section, before the checksum",
            reader.remaining
        )));
    }
    let expected = std::mem::take(&mut reader.hasher).finalize();
    let mut stored = [0u8; CHECKSUM_BYTES as usize];
    reader
        .inner
        .read_exact(&mut stored)
        .map_err(|source| Error::io("cannot read vector index", path, source))?;
    if stored[..] != expected[..] {
        return Err(reader.invalid(
            "the SHA-256 checksum does not match the content; the file is corrupt".into(),
        ));
    }
    tracing::debug!(
        path = %path.display(),
        vectors = index.len(),
        seconds = started.elapsed().as_secs_f64(),
        "loaded vector index"
    );
    Ok(index)
}

fn read_index<R: Read>(input: &mut HashReader<'_, R>, length: u64) -> Result<VectorIndex> {
    let mut magic = [0u8; 8];
    if length < MAGIC.len() as u64 + CHECKSUM_BYTES {
        return Err(input.invalid(format!(
            "the file is {length} bytes long, too short for a vector index"
        )));
    }
    input.read(&mut magic, "the magic bytes")?;
    if magic != MAGIC {
        return Err(input.invalid(format!(
            "not a kai vector index: it starts with {magic:02x?}, not {MAGIC:02x?}"
        )));
    }
    let version = input.u32("the format version")?;
    if version != FORMAT_VERSION {
        return Err(input.invalid(format!(
            "format version {version} is not supported; this build reads version {FORMAT_VERSION}"
        )));
    }

    let dimension = input.u32("the dimension")? as usize;
    if !(1..=MAX_DIMENSION).contains(&dimension) {
        return Err(input.invalid(format!(
            "dimension {dimension} is outside 1..={MAX_DIMENSION}"
        )));
    }
    let mut codes = [0u8; 4];
    input.read(&mut codes, "the metric and kind")?;
    let metric = Metric::from_code(codes[0])
        .ok_or_else(|| input.invalid(format!("metric code {} is unknown", codes[0])))?;
    let (m, ef_construction, ef_search) = (
        input.u32("m")? as usize,
        input.u32("ef_construction")? as usize,
        input.u32("ef_search")? as usize,
    );
    let seed = input.u64("the seed")?;
    let rng_state = input.u64("the generator state")?;
    let max_deleted_fraction = f32::from_le_bytes(input.array("max_deleted_fraction")?);
    let kind = match codes[1] {
        0 => IndexKind::Exact,
        1 => IndexKind::Hnsw(HnswConfig {
            m,
            ef_construction,
            ef_search,
            seed,
        }),
        other => return Err(input.invalid(format!("index kind code {other} is unknown"))),
    };
    let config = IndexConfig {
        kind,
        max_deleted_fraction,
    };
    config
        .validate()
        .map_err(|error| input.invalid(format!("the stored configuration is invalid: {error}")))?;

    let slot_count = input.count("the slot count", MAX_VECTORS)?;
    let live_count = input.count("the live vector count", slot_count)?;
    let string_count = input.count("the string count", u32::MAX as usize)?;
    let model = input.text("the model name", MAX_MODEL_BYTES)?;
    let strings = read_strings(input, string_count)?;

    let vectors = input.values(
        slot_count.saturating_mul(dimension),
        "the vectors",
        f32::from_le_bytes,
    )?;
    if let Some(position) = vectors.iter().position(|x| !x.is_finite()) {
        return Err(input.invalid(format!(
            "component {} of slot {} is not finite",
            position % dimension,
            position / dimension
        )));
    }
    let ids = input.values(slot_count, "the ids", u64::from_le_bytes)?;
    let deleted = read_flags(input, slot_count, live_count)?;
    check_unique_ids(input, &ids, &deleted)?;
    let rows = read_metadata(input, slot_count, string_count)?;
    let metadata = MetadataTable::from_parts(strings, rows, &deleted);
    let store = VectorStore::from_parts(dimension, vectors, ids, deleted, metadata);

    let graph = match config.hnsw_config() {
        None => None,
        Some(hnsw) => Some(read_graph(input, hnsw, slot_count, rng_state)?),
    };
    Ok(VectorIndex::from_parts(
        dimension, metric, config, model, store, graph,
    ))
}

fn read_strings<R: Read>(input: &mut HashReader<'_, R>, count: usize) -> Result<Vec<String>> {
    // Each string takes at least its 4-byte length, which bounds the count by the file.
    input.check_available(count as u64 * 4, "the metadata strings")?;
    let mut strings = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    for _ in 0..count {
        let text = input.text("a metadata string", MAX_METADATA_STRING_BYTES)?;
        if !seen.insert(text.clone()) {
            return Err(input.invalid(format!("metadata string `{text}` is stored twice")));
        }
        strings.push(text);
    }
    Ok(strings)
}

fn read_flags<R: Read>(
    input: &mut HashReader<'_, R>,
    slot_count: usize,
    live_count: usize,
) -> Result<Vec<bool>> {
    let flags = input.values(slot_count, "the removal flags", |[byte]: [u8; 1]| byte)?;
    if let Some(slot) = flags.iter().position(|&flag| flag > 1) {
        return Err(input.invalid(format!("slot {slot} has removal flag {}", flags[slot])));
    }
    let live = flags.iter().filter(|&&flag| flag == 0).count();
    if live != live_count {
        return Err(input.invalid(format!(
            "the header counts {live_count} live vectors but the flags mark {live}"
        )));
    }
    Ok(flags.into_iter().map(|flag| flag == 1).collect())
}

fn check_unique_ids<R: Read>(
    input: &HashReader<'_, R>,
    ids: &[u64],
    deleted: &[bool],
) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for (&id, &is_deleted) in ids.iter().zip(deleted) {
        if !is_deleted && !seen.insert(id) {
            return Err(input.invalid(format!("id {id} is stored twice")));
        }
    }
    Ok(())
}

fn read_metadata<R: Read>(
    input: &mut HashReader<'_, R>,
    slot_count: usize,
    string_count: usize,
) -> Result<Vec<CodedMetadata>> {
    let material_types = input.values(slot_count, "the material type codes", u32::from_le_bytes)?;
    let collections = input.values(slot_count, "the collection codes", u32::from_le_bytes)?;
    let tag_counts = input.values(slot_count, "the tag counts", u32::from_le_bytes)?;
    let total_tags = input.count("the tag total", usize::MAX)?;
    let counted: u64 = tag_counts.iter().map(|&count| u64::from(count)).sum();
    if counted != total_tags as u64 {
        return Err(input.invalid(format!(
            "the tag counts add up to {counted}, but the tag total is {total_tags}"
        )));
    }
    if let Some(slot) = tag_counts
        .iter()
        .position(|&count| count as usize > MAX_TAGS)
    {
        return Err(input.invalid(format!("slot {slot} has {} tags", tag_counts[slot])));
    }
    let tags = input.values(total_tags, "the tag codes", u32::from_le_bytes)?;
    let optional_valid = |code: &&u32| **code == NO_CODE || (**code as usize) < string_count;
    let bad_field = material_types
        .iter()
        .chain(&collections)
        .find(|code| !optional_valid(code));
    let bad_tag = tags.iter().find(|&&code| code as usize >= string_count);
    if let Some(code) = bad_field.or(bad_tag) {
        return Err(input.invalid(format!(
            "metadata code {code} does not name one of the {string_count} strings"
        )));
    }

    let mut rows = Vec::with_capacity(slot_count);
    let mut next_tag = 0;
    for slot in 0..slot_count {
        let count = tag_counts[slot] as usize;
        rows.push(CodedMetadata {
            material_type: material_types[slot],
            collection: collections[slot],
            tags: tags[next_tag..next_tag + count].into(),
        });
        next_tag += count;
    }
    Ok(rows)
}

fn read_graph<R: Read>(
    input: &mut HashReader<'_, R>,
    hnsw: &HnswConfig,
    slot_count: usize,
    rng_state: u64,
) -> Result<HnswGraph> {
    let entry = input.u32("the entry point")?;
    let levels = input.values(slot_count, "the levels", |[byte]: [u8; 1]| byte)?;
    if let Some(slot) = levels
        .iter()
        .position(|&level| usize::from(level) > MAX_LEVEL)
    {
        return Err(input.invalid(format!("slot {slot} has level {}", levels[slot])));
    }
    let layer0 = input.values(
        slot_count.saturating_mul(2 * hnsw.m + 1),
        "the layer-0 links",
        u32::from_le_bytes,
    )?;
    let mut upper = Vec::with_capacity(slot_count);
    for &level in &levels {
        let links = input.values(
            usize::from(level) * (hnsw.m + 1),
            "the upper-layer links",
            u32::from_le_bytes,
        )?;
        upper.push(links.into_boxed_slice());
    }
    let parts = GraphParts {
        rng_state,
        levels,
        layer0,
        upper,
        entry: (entry != NO_SLOT).then_some(entry),
    };
    HnswGraph::from_parts(hnsw, slot_count, parts).map_err(|problem| input.invalid(problem))
}

/// A writer that feeds every byte it writes to a SHA-256 hasher.
struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashWriter<W> {
    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }

    fn u32(&mut self, value: u32) -> io::Result<()> {
        self.bytes(&value.to_le_bytes())
    }

    fn u64(&mut self, value: u64) -> io::Result<()> {
        self.bytes(&value.to_le_bytes())
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        self.u32(text.len() as u32)?;
        self.bytes(text.as_bytes())
    }

    /// Writes `values` in chunks; `to_bytes` is generic so the conversion inlines.
    fn values<T: Copy, const N: usize>(
        &mut self,
        values: &[T],
        to_bytes: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        let mut buffer = Vec::with_capacity(CHUNK_VALUES.min(values.len()) * N);
        for chunk in values.chunks(CHUNK_VALUES) {
            buffer.clear();
            for &value in chunk {
                buffer.extend_from_slice(&to_bytes(value));
            }
            self.bytes(&buffer)?;
        }
        Ok(())
    }
}

/// A reader that feeds every byte it reads to a SHA-256 hasher and rejects any read
/// beyond `remaining`, the bytes left before the checksum, before allocating for it.
struct HashReader<'a, R: Read> {
    inner: R,
    hasher: Sha256,
    remaining: u64,
    path: &'a Path,
}

impl<R: Read> HashReader<'_, R> {
    fn invalid(&self, problem: String) -> Error {
        Error::io(
            "invalid vector index file",
            self.path,
            io::Error::new(io::ErrorKind::InvalidData, problem),
        )
    }

    fn check_available(&self, bytes: u64, section: &str) -> Result<()> {
        if bytes > self.remaining {
            return Err(self.invalid(format!(
                "the file is truncated or its counts are corrupt: {section} need {bytes} bytes, \
                 but {} remain before the checksum",
                self.remaining
            )));
        }
        Ok(())
    }

    fn read(&mut self, buffer: &mut [u8], section: &str) -> Result<()> {
        self.check_available(buffer.len() as u64, section)?;
        self.inner
            .read_exact(buffer)
            .map_err(|source| Error::io("cannot read vector index", self.path, source))?;
        self.hasher.update(&*buffer);
        self.remaining -= buffer.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self, section: &str) -> Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.read(&mut bytes, section)?;
        Ok(bytes)
    }

    fn u32(&mut self, section: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(section)?))
    }

    fn u64(&mut self, section: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(section)?))
    }

    /// Reads a u64 count and checks it against `max`.
    fn count(&mut self, section: &str, max: usize) -> Result<usize> {
        let count = self.u64(section)?;
        match usize::try_from(count) {
            Ok(count) if count <= max => Ok(count),
            _ => Err(self.invalid(format!("{section} {count} exceeds the maximum {max}"))),
        }
    }

    fn text(&mut self, section: &str, max_bytes: usize) -> Result<String> {
        let length = self.u32(section)? as usize;
        if length > max_bytes {
            return Err(self.invalid(format!(
                "{section} is {length} bytes long; the maximum is {max_bytes}"
            )));
        }
        let mut bytes = vec![0u8; length];
        self.read(&mut bytes, section)?;
        String::from_utf8(bytes).map_err(|_| self.invalid(format!("{section} is not UTF-8")))
    }

    /// Reads `count` values of `N` bytes each, after checking that the file is long
    /// enough for them.
    fn values<T, const N: usize>(
        &mut self,
        count: usize,
        section: &str,
        from_bytes: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let bytes = (count as u64).saturating_mul(N as u64);
        self.check_available(bytes, section)?;
        let mut values = Vec::with_capacity(count);
        let mut buffer = vec![0u8; CHUNK_VALUES.min(count) * N];
        let mut left = count;
        while left > 0 {
            let take = left.min(CHUNK_VALUES);
            let chunk = &mut buffer[..take * N];
            self.read(chunk, section)?;
            let (arrays, _) = chunk.as_chunks::<N>();
            values.extend(arrays.iter().map(|&array| from_bytes(array)));
            left -= take;
        }
        Ok(values)
    }
}
