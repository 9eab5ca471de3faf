//! The files the pipeline's stages read and write, named in one place so the `kai recon`
//! subcommands, the reconstruction jobs and the Argo workflow agree.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Quality screening report of `kai recon screen`: JSON, see `ScreeningReport`.
pub const SCREENING_FILE: &str = "screening.json";
/// Folder of the sparse model of `kai recon sfm`: COLMAP text files and points.ply.
pub const SPARSE_DIR: &str = "sparse";
/// Dense points of `kai recon dense`: binary PLY with positions, normals and colours.
pub const DENSE_FILE: &str = "dense.ply";
/// Mesh of `kai recon mesh`: binary PLY with positions, normals, colours and faces.
pub const MESH_FILE: &str = "mesh.ply";
/// Folder of the levels of detail of `kai recon lod`: lod0.ply (the full mesh),
/// lod1.ply, ...
pub const LOD_DIR: &str = "lod";

/// Creates the folder `dir` and its parents. Fails with [`Error::InvalidInput`] naming the
/// path when it, or a folder above it, is a file.
pub fn create_folder(dir: &Path) -> Result<()> {
    if let Some(file) = dir.ancestors().find(|p| p.is_file()) {
        return Err(Error::invalid(
            "output",
            format!("{} is a file, not a folder", file.display()),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))
}

/// Checks that `path` can be written as a file: it is no folder and no folder above it is
/// a file. Runs check their outputs first, so a bad path fails before minutes of work.
pub fn check_output_file(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::invalid(
            "output",
            format!(
                "{} is a folder; give a file name such as model.glb",
                path.display()
            ),
        ));
    }
    if let Some(file) = path.ancestors().skip(1).find(|p| p.is_file()) {
        return Err(Error::invalid(
            "output",
            format!("{} is a file, not a folder", file.display()),
        ));
    }
    Ok(())
}

/// Returns the file of level `level` inside a [`LOD_DIR`] folder.
pub fn lod_file(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("lod{level}.ply"))
}

/// A model file format, chosen by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// Binary glTF 2.0.
    Glb,
    /// Binary little-endian PLY.
    Ply,
    /// Wavefront OBJ with an MTL material file.
    Obj,
}

impl ModelFormat {
    /// Picks the format from `path`'s extension (`.glb`, `.ply` or `.obj`, any case).
    pub fn from_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("glb") => Ok(Self::Glb),
            Some("ply") => Ok(Self::Ply),
            Some("obj") => Ok(Self::Obj),
            _ => Err(Error::invalid(
                "output",
                format!(
                    "{} has no .glb, .ply or .obj extension, which chooses the model format",
                    path.display()
                ),
            )),
        }
    }
}

/// Returns the file of level `level` for the model file `output`: `output` itself for
/// level 0 (the full mesh), and `NAME.lodN.EXT` next to it for the coarser levels, so
/// `model.glb` comes with `model.lod1.glb`, `model.lod2.glb`, ...
pub fn level_file(output: &Path, level: usize) -> PathBuf {
    if level == 0 {
        return output.to_path_buf();
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(extension) => format!("{stem}.lod{level}.{}", extension.to_string_lossy()),
        None => format!("{stem}.lod{level}"),
    };
    output.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_sit_next_to_the_model() {
        let output = Path::new("out/model.glb");
        assert_eq!(level_file(output, 0), Path::new("out/model.glb"));
        assert_eq!(level_file(output, 2), Path::new("out/model.lod2.glb"));
        assert_eq!(lod_file(Path::new("w/lod"), 1), Path::new("w/lod/lod1.ply"));
    }

    #[test]
    fn model_format_follows_extension() {
        assert_eq!(
            ModelFormat::from_path(Path::new("a.GLB")).unwrap(),
            ModelFormat::Glb
        );
        assert_eq!(
            ModelFormat::from_path(Path::new("a.obj")).unwrap(),
            ModelFormat::Obj
        );
        let err = ModelFormat::from_path(Path::new("model.stl")).unwrap_err();
        assert!(err.to_string().contains("model.stl"), "{err}");
    }

    #[test]
    fn output_checks_name_the_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "kept").unwrap();
        let err = check_output_file(&file.join("model.glb"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("file is a file, not a folder"), "{err}");
        let err = check_output_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        check_output_file(&dir.path().join("new").join("model.glb")).unwrap();
        check_output_file(&file).unwrap();
        let err = create_folder(&file.join("lod")).unwrap_err().to_string();
        assert!(err.contains("file is a file, not a folder"), "{err}");
    }
}
