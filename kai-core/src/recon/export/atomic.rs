//! Output files written beside their destination and renamed over it once complete, so a
//! failed or interrupted write leaves the previous file as it was.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes the temporary files of concurrent writes from one process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Writes `path` with `body` through a temporary file in the same folder. The temporary
/// file replaces `path` only after `body` succeeded and the data reached the disk, and is
/// removed when anything fails.
pub(crate) fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let temporary = temporary_path(path);
    let written = write_new(&temporary, path, body).and_then(|()| {
        std::fs::rename(&temporary, path).map_err(|e| Error::io("cannot write", path, e))
    });
    if written.is_err() {
        // The temporary file may not exist when creating it failed.
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn write_new(
    temporary: &Path,
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    // File::create keeps the usual permissions (the process umask), which a file from
    // the tempfile crate would not.
    let file = File::create(temporary).map_err(|e| Error::io("cannot create", path, e))?;
    let mut out = BufWriter::new(file);
    body(&mut out)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write", path, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io("cannot write", path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io("cannot write", path, e))
}

/// Returns a hidden file name next to `path`, unique within this process.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let serial = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{serial}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ply");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, |out| out.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(entries(dir.path()), ["model.ply"]);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ply");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomically(&path, |out| {
            out.write_all(&[7; 100_000])?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("model.ply"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            entries(dir.path()),
            ["model.ply"],
            "the temporary file is removed"
        );
    }

    #[test]
    fn write_into_missing_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("model.ply");
        let err = write_atomically(&path, |out| out.write_all(b"x")).unwrap_err();
        assert!(err.to_string().contains("missing/model.ply"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }
}
