//! The arguments of each tool. Their doc comments become the descriptions in the tools'
//! input schemas, which agents read to call them.

use kai_core::catalog::MAX_TOP_K;
use kai_core::image::QualityThresholds;
use schemars::JsonSchema;
use serde::Deserialize;

/// Maximum texts one `embed_text` call embeds, which bounds the size of its output. By
/// estimate, a 384-dimensional vector takes 8 KB of JSON, and the result carries it twice.
pub const MAX_TEXTS: usize = 256;

/// Arguments of `recognize_material`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecognizeArgs {
    /// The photo as base64 (standard or URL-safe alphabet; a `data:image/...;base64,`
    /// prefix is accepted): JPEG, PNG, WebP, BMP or TIFF.
    pub image_base64: String,
    /// Materials returned, 1 to 100 (default 5).
    #[schemars(range(min = 1, max = 100))]
    pub top_k: Option<usize>,
    /// Words describing the material, such as "oak floorboards", fused into the ranking.
    pub hint: Option<String>,
}

/// Arguments of `search_materials`. Give `query`, `imageBase64` or both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchArgs {
    /// Words to search for in names, descriptions, tags and types, and by meaning.
    pub query: Option<String>,
    /// A photo to find similar materials to, as base64.
    pub image_base64: Option<String>,
    /// Only materials of this type, such as `wood`, `stone`, `tile` or `metal`.
    pub material_type: Option<String>,
    /// Only materials that have every one of these tags.
    pub tags: Option<Vec<String>>,
    /// Only materials of this collection id.
    pub collection: Option<String>,
    /// Results returned, 1 to 1000 (default 10).
    #[schemars(range(min = 1, max = MAX_TOP_K))]
    pub top_k: Option<usize>,
    /// Results skipped before the first one returned, for paging (default 0).
    pub offset: Option<usize>,
}

/// Arguments of `embed_text`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbedTextArgs {
    /// The texts to embed, 1 to 256 of them.
    #[schemars(length(min = 1, max = MAX_TEXTS))]
    pub texts: Vec<String>,
}

/// Arguments of `assess_image_quality`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QualityArgs {
    /// The photo as base64.
    pub image_base64: String,
    /// Limits that replace the defaults of the quality rules. Rules not named keep
    /// their default.
    #[schemars(schema_with = "thresholds_schema")]
    #[serde(default)]
    pub thresholds: Option<QualityThresholds>,
}

/// Arguments of `get_parameters`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetParametersArgs {
    /// The parameter set, such as `standard`, `premium` or `enterprise`.
    pub name: String,
    /// The set's scope: a material type or collection id. Omit it for the unscoped set.
    pub scope: Option<String>,
    /// The version to return (default: the current one).
    pub version: Option<u32>,
}

/// Arguments of `suggest_parameters`. Give `materialId` or `embedding`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestArgs {
    /// A catalog material to suggest parameters for.
    pub material_id: Option<String>,
    /// An embedding to suggest parameters for: an image embedding of the catalog's image
    /// model or a text embedding from `embed_text`, distinguished by dimension.
    pub embedding: Option<Vec<f32>>,
    /// The recorded metric that ranks set versions (default `score`).
    pub metric: Option<String>,
    /// Whether a higher metric is better, as for accuracy (default true). Use false
    /// for errors and durations.
    pub higher_is_better: Option<bool>,
}

/// One photo of `submit_reconstruction`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhotoArg {
    /// The photo's file name, such as `IMG_0001.jpg`, unique within the job. The model
    /// names the image by it.
    pub name: String,
    /// The photo as base64: JPEG, PNG, WebP, BMP or TIFF.
    pub data: String,
}

/// Arguments of `submit_reconstruction`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmitReconstructionArgs {
    /// Photos of one object or scene taken from around it with overlap between
    /// neighbours: at least 2, at most the server's `KAI_RECON_MAX_IMAGES` (default 200).
    pub images: Vec<PhotoArg>,
    /// The parameter set whose `recon.*` values configure the reconstruction, such as
    /// `standard`, `premium` or `enterprise` (default: the server's default set).
    pub set: Option<String>,
}

/// Arguments of `get_reconstruction_job`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetReconstructionJobArgs {
    /// The job id that `submit_reconstruction` returned.
    pub id: String,
}

/// Arguments of `get_reconstruction_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetReconstructionFileArgs {
    /// The job id that `submit_reconstruction` returned.
    pub id: String,
    /// A name from the succeeded job's `files`, such as `model.glb`.
    pub name: String,
}

fn thresholds_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    super::schemas::nullable_input_schema::<QualityThresholds>()
}
