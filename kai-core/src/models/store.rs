//! The model directory: where model folders live, how a name resolves to a folder, and
//! checksum verification.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use crate::error::{Error, Result};

/// Files a Hugging Face-style BERT folder must contain.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// A folder that contains one sub-folder per model (`MODEL_DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    root: PathBuf,
}

/// A model folder found on disk, with its built-in manifest if it has one.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// The model name: the manifest's name, or the folder's name.
    pub name: String,
    /// The folder holding config.json, model.safetensors and tokenizer.json.
    pub path: PathBuf,
    /// The built-in manifest, for models kai fetches itself.
    pub manifest: Option<Manifest>,
}

/// The state of a model in the store, as `kai models list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// Every file is present with the expected checksum.
    Ready,
    /// The folder or some files are absent.
    Missing(Vec<String>),
    /// Some files differ from their checksums.
    Corrupt(Vec<String>),
    /// A folder without a manifest that has the required files.
    Unverified,
}

/// One row of [`ModelStore::list`].
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The model name.
    pub name: String,
    /// The model folder (it may not exist).
    pub path: PathBuf,
    /// The manifest, for built-in models.
    pub manifest: Option<Manifest>,
    /// Whether the model can be loaded.
    pub state: ModelState,
}

/// A model's state in the shape every surface reports it (`kai models list --json`, the
/// Python package): plain strings and numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    /// The model name.
    pub name: String,
    /// `ready`, `unverified`, `missing` or `corrupt`.
    pub state: &'static str,
    /// The missing or corrupt files, relative to the folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problem_files: Vec<String>,
    /// Whether kai has a manifest for the model.
    pub builtin: bool,
    /// `text-embedding` or `image-embedding`; folders without a manifest load as text
    /// models.
    pub task: &'static str,
    /// The vector length, for built-in models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<usize>,
    /// The licence, for built-in models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The model folder.
    pub path: String,
}

impl From<ModelEntry> for ModelSummary {
    fn from(entry: ModelEntry) -> Self {
        let (state, problem_files) = match entry.state {
            ModelState::Ready => ("ready", Vec::new()),
            ModelState::Unverified => ("unverified", Vec::new()),
            ModelState::Missing(files) => ("missing", files),
            ModelState::Corrupt(files) => ("corrupt", files),
        };
        let manifest = entry.manifest;
        Self {
            name: entry.name,
            state,
            problem_files,
            builtin: manifest.is_some(),
            task: match manifest.as_ref().map(|m| m.task) {
                Some(super::manifest::Task::ImageEmbedding) => "image-embedding",
                Some(super::manifest::Task::TextEmbedding) | None => "text-embedding",
            },
            dimension: manifest.as_ref().map(|m| m.dimension),
            license: manifest.map(|m| m.license),
            path: entry.path.display().to_string(),
        }
    }
}

impl ModelStore {
    /// Opens the model directory at `root`; the folder need not exist yet.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens the folder named by `MODEL_DIR`, else [`ModelStore::default_root`].
    pub fn from_env() -> Self {
        match std::env::var_os("MODEL_DIR") {
            Some(dir) if !dir.is_empty() => Self::new(dir),
            _ => Self::new(Self::default_root()),
        }
    }

    /// Returns the user cache folder for models: `$XDG_CACHE_HOME/kai/models` on Linux,
    /// the platform's cache folder elsewhere, or `./kai-models` when there is none.
    pub fn default_root() -> PathBuf {
        match dirs::cache_dir() {
            Some(cache) => cache.join("kai").join("models"),
            None => PathBuf::from("kai-models"),
        }
    }

    /// Returns the model directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the folder a model of this name lives in.
    pub fn folder(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Resolves a model given by built-in name, by folder name under the root, or by the
    /// path of a Hugging Face-style folder, and checks its files.
    ///
    /// Built-in models are verified against their manifest's checksums; other folders are
    /// checked for the files a BERT model needs.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Model`] naming each missing or corrupt file and the command that
    /// repairs it, and [`Error::NotFound`] for a name that matches nothing.
    pub fn resolve(&self, model: &str) -> Result<ModelFolder> {
        if model.trim().is_empty() {
            return Err(Error::invalid(
                "model",
                "the name is empty; give a built-in model name or a model folder",
            ));
        }
        if let Some(manifest) = Manifest::find(model) {
            let path = self.folder(&manifest.name);
            check_state(&manifest.name, &path, &verify(&manifest, &path)?)?;
            return Ok(ModelFolder {
                name: manifest.name.clone(),
                path,
                manifest: Some(manifest),
            });
        }

        // A bare name is looked up in the model directory first, so an entry of the same
        // name in the working directory cannot shadow it. Otherwise it is taken as a path.
        let bare_name = !model.contains(['/', '\\']);
        let as_path = Path::new(model);
        let path = if bare_name && self.folder(model).is_dir() {
            self.folder(model)
        } else if as_path.is_dir() {
            as_path.to_path_buf()
        } else if as_path.exists() {
            return Err(Error::invalid(
                "model",
                format!("{model} is a file, not a model folder"),
            ));
        } else {
            return Err(Error::NotFound {
                what: "model",
                name: model.to_owned(),
                hint: format!(
                    " (neither a built-in model ({}) nor a folder; fetch a built-in model \
                     with `kai models fetch NAME` or pass a Hugging Face-style folder)",
                    Manifest::builtin_names().join(", ")
                ),
            });
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| model.to_owned());
        check_state(&name, &path, &hf_folder_state(&path))?;
        Ok(ModelFolder {
            name,
            path,
            manifest: None,
        })
    }

    /// Lists the built-in models with their state, then every other model folder found
    /// under the root.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] when the root exists but cannot be read.
    pub fn list(&self) -> Result<Vec<ModelEntry>> {
        let builtin = Manifest::builtin();
        let mut entries = Vec::new();
        for manifest in &builtin {
            let path = self.folder(&manifest.name);
            entries.push(ModelEntry {
                name: manifest.name.clone(),
                state: verify(manifest, &path)?,
                path,
                manifest: Some(manifest.clone()),
            });
        }

        let read = match fs::read_dir(&self.root) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
            Err(err) => return Err(Error::io("cannot list model directory", &self.root, err)),
        };
        let mut others = Vec::new();
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let known = builtin.iter().any(|m| m.name == name);
            if known || name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let state = hf_folder_state(&entry.path());
            if state == ModelState::Unverified {
                others.push(ModelEntry {
                    name,
                    path: entry.path(),
                    manifest: None,
                    state,
                });
            }
        }
        others.sort_by(|a, b| a.name.cmp(&b.name));
        entries.extend(others);
        Ok(entries)
    }
}

/// Compares a model folder with its manifest, hashing every file.
///
/// # Errors
///
/// Returns [`Error::Io`] when a present file cannot be read.
pub fn verify(manifest: &Manifest, folder: &Path) -> Result<ModelState> {
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    for file in &manifest.files {
        let path = folder.join(&file.path);
        if !path.is_file() {
            missing.push(file.path.clone());
        } else if sha256_file(&path)? != file.sha256 {
            corrupt.push(file.path.clone());
        }
    }
    Ok(if !missing.is_empty() {
        ModelState::Missing(missing)
    } else if !corrupt.is_empty() {
        ModelState::Corrupt(corrupt)
    } else {
        ModelState::Ready
    })
}

/// Returns the hex-encoded SHA-256 of a file's content.
///
/// # Errors
///
/// Returns [`Error::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|err| Error::io("cannot open", path, err))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|err| Error::io("cannot read", path, err))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hf_folder_state(path: &Path) -> ModelState {
    let missing: Vec<String> = REQUIRED_FILES
        .iter()
        .filter(|file| !path.join(file).is_file())
        .map(|file| (*file).to_owned())
        .collect();
    if missing.is_empty() {
        ModelState::Unverified
    } else {
        ModelState::Missing(missing)
    }
}

/// Turns a state that cannot be loaded into an error naming the files and the fix.
fn check_state(name: &str, path: &Path, state: &ModelState) -> Result<()> {
    let builtin = Manifest::find(name).is_some();
    let fix = if builtin {
        format!("run `kai models fetch {name}` (or `python3 models/fetch.py {name}`)")
    } else {
        "copy the complete Hugging Face model folder there".to_owned()
    };
    match state {
        ModelState::Ready | ModelState::Unverified => Ok(()),
        ModelState::Missing(_) if !path.is_dir() => Err(Error::model(
            name,
            format!("not installed: {} does not exist; {fix}", path.display()),
        )),
        ModelState::Missing(files) => Err(Error::model(
            name,
            format!("missing {} in {}; {fix}", files.join(", "), path.display()),
        )),
        ModelState::Corrupt(files) => Err(Error::model(
            name,
            format!(
                "{} in {} does not match the manifest checksum (corrupt or partly written); {fix}",
                files.join(", "),
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_builtin_names_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let err = store.resolve("all-minilm-l6-v2").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::ModelNotFound);
        let message = err.to_string();
        assert!(message.contains("does not exist"), "{message}");
        assert!(
            message.contains("kai models fetch all-minilm-l6-v2"),
            "{message}"
        );

        std::fs::create_dir_all(store.folder("all-minilm-l6-v2")).unwrap();
        let message = store.resolve("all-minilm-l6-v2").unwrap_err().to_string();
        assert!(message.contains("model.safetensors"), "{message}");
    }

    #[test]
    fn unknown_name_lists_builtin_models() {
        let dir = tempfile::tempdir().unwrap();
        let err = ModelStore::new(dir.path())
            .resolve("no-such-model")
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert!(err.to_string().contains("all-minilm-l6-v2"), "{err}");
    }

    #[test]
    fn hf_folder_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("my-bert");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("config.json"), "{}").unwrap();
        fs::write(folder.join("tokenizer.json"), "{}").unwrap();
        let err = ModelStore::new(dir.path()).resolve("my-bert").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::ModelNotFound);
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }

    #[test]
    fn list_shows_builtin_and_extra_folders() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("extra");
        fs::create_dir(&folder).unwrap();
        for file in REQUIRED_FILES {
            fs::write(folder.join(file), "x").unwrap();
        }
        let entries = ModelStore::new(dir.path()).list().unwrap();
        let builtin = Manifest::builtin();
        assert_eq!(entries.len(), builtin.len() + 1);
        for (entry, manifest) in entries.iter().zip(&builtin) {
            assert_eq!(entry.name, manifest.name);
            assert!(matches!(entry.state, ModelState::Missing(_)));
        }
        let extra = entries.last().unwrap();
        assert_eq!(extra.name, "extra");
        assert_eq!(extra.state, ModelState::Unverified);
    }
}
