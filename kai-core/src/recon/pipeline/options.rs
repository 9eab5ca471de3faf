//! Settings of every stage of the reconstruction pipeline, as one value that the
//! registry's `recon.*` parameters fill (see `registry::pipeline_options`).

use crate::error::{Error, Result};
use crate::recon::dense::DenseOptions;
use crate::recon::export::gltf::Compression;
use crate::recon::mesh::lod::LodOptions;
use crate::recon::mesh::poisson::PoissonOptions;
use crate::recon::sfm::SfmOptions;

/// Clean-up of the dense points before meshing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloudOptions {
    /// Edge of the down-sampling voxels as a share of the cloud's bounding-box diagonal,
    /// so one setting suits scenes of any scale (SfM has no absolute scale); 0 keeps
    /// every point.
    pub voxel_size: f64,
    /// Neighbours whose mean distance decides whether a point is an outlier.
    pub outlier_neighbors: usize,
    /// Points whose mean neighbour distance exceeds the average by this many standard
    /// deviations are removed.
    pub outlier_std_ratio: f64,
    /// Neighbours of the plane fit that gives each point's normal.
    pub normal_neighbors: usize,
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            voxel_size: 0.002,
            outlier_neighbors: 20,
            outlier_std_ratio: 2.0,
            normal_neighbors: 30,
        }
    }
}

impl CloudOptions {
    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=0.1).contains(&self.voxel_size) {
            return Err(Error::invalid(
                "voxel_size",
                format!(
                    "{} is outside 0..=0.1 (a share of the scene diagonal)",
                    self.voxel_size
                ),
            ));
        }
        if !(2..=256).contains(&self.outlier_neighbors) {
            return Err(Error::invalid(
                "outlier_neighbors",
                format!("{} is outside 2..=256", self.outlier_neighbors),
            ));
        }
        if !(self.outlier_std_ratio > 0.0 && self.outlier_std_ratio.is_finite()) {
            return Err(Error::invalid(
                "outlier_std_ratio",
                format!("{} is not a positive number", self.outlier_std_ratio),
            ));
        }
        if !(3..=256).contains(&self.normal_neighbors) {
            return Err(Error::invalid(
                "normal_neighbors",
                format!("{} is outside 3..=256", self.normal_neighbors),
            ));
        }
        Ok(())
    }
}

/// Surface reconstruction and its clean-up.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshOptions {
    /// Screened Poisson settings.
    pub poisson: PoissonOptions,
    /// Vertices whose supporting point density is below this quantile are trimmed with
    /// their triangles, which removes the surface Poisson invents where no points are.
    pub density_trim: f64,
    /// Connected pieces with fewer than this share of the triangles are removed.
    pub min_component_share: f64,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            poisson: PoissonOptions::default(),
            density_trim: 0.05,
            min_component_share: 0.02,
        }
    }
}

impl MeshOptions {
    /// Checks the clean-up values, naming the first one out of range; Poisson checks its
    /// own settings when it runs.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=0.5).contains(&self.density_trim) {
            return Err(Error::invalid(
                "density_trim",
                format!("{} is outside 0..=0.5", self.density_trim),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_component_share) {
            return Err(Error::invalid(
                "min_component_share",
                format!("{} is outside 0..=1", self.min_component_share),
            ));
        }
        Ok(())
    }
}

/// Levels of detail: `levels` meshes, each keeping `ratio` of the previous one's
/// triangles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LodSettings {
    /// Number of levels, the full mesh included.
    pub levels: usize,
    /// Share of the previous level's triangles each level keeps.
    pub ratio: f64,
    /// Largest error simplification may introduce, as a share of the mesh extent.
    pub target_error: f64,
}

impl Default for LodSettings {
    fn default() -> Self {
        Self {
            levels: 3,
            ratio: 0.25,
            target_error: 0.01,
        }
    }
}

impl LodSettings {
    /// Returns the simplifier's options: ratios 1, `ratio`, `ratio`², ... of the full
    /// mesh.
    pub fn lod_options(&self) -> Result<LodOptions> {
        if !(1..=8).contains(&self.levels) {
            return Err(Error::invalid(
                "levels",
                format!("{} is outside 1..=8", self.levels),
            ));
        }
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            return Err(Error::invalid(
                "ratio",
                format!("{} is outside the open interval 0..1", self.ratio),
            ));
        }
        let options = LodOptions {
            ratios: (0..self.levels)
                .map(|level| self.ratio.powi(level as i32))
                .collect(),
            target_error: self.target_error,
            lock_border: false,
        };
        options.validate()?;
        Ok(options)
    }
}

/// Settings of a whole reconstruction, photos to model files.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    /// Structure from motion, screening included.
    pub sfm: SfmOptions,
    /// Multi-view stereo and depth-map fusion.
    pub dense: DenseOptions,
    /// Point clean-up and normals.
    pub cloud: CloudOptions,
    /// Surface reconstruction and clean-up.
    pub mesh: MeshOptions,
    /// Levels of detail.
    pub lod: LodSettings,
    /// Mesh compression of the GLB files.
    pub compression: Compression,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            sfm: SfmOptions::default(),
            // Depth maps at 800 px keep a 30-photo capture within minutes on a laptop;
            // the higher tiers raise it.
            dense: DenseOptions {
                max_image_size: 800,
                ..DenseOptions::default()
            },
            cloud: CloudOptions::default(),
            mesh: MeshOptions::default(),
            lod: LodSettings::default(),
            compression: Compression::Meshopt,
        }
    }
}

impl PipelineOptions {
    /// Checks the settings of every stage, so a bad value fails before hours of work.
    pub fn validate(&self) -> Result<()> {
        self.sfm.validate()?;
        self.dense.validate()?;
        self.cloud.validate()?;
        self.mesh.validate()?;
        self.lod.lod_options().map(|_| ())
    }
}
