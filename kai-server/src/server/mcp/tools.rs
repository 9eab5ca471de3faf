//! The nine tools. Each parses its arguments, calls the same [`AppState`] methods as the
//! REST routes, and returns the output as structured content plus the same JSON as text.
//! A failure of any kind is a tool result with `isError` and the error's message, so an
//! agent can read what to change. Protocol errors, such as an unknown tool, are rmcp's.

use std::future::Future;

use axum::body::Bytes;
use kai_core::Error;
use kai_core::catalog::{MaterialFilter, SearchQuery, SearchResults};
use kai_core::image::QualityReport;
use kai_core::recognize::{Recognition, RecognizeOptions};
use kai_core::recon::jobs::ReconJob;
use kai_core::recon::sfm::SfmInput;
use kai_core::registry::{ParameterSet, SuggestOptions, SuggestTarget, Suggestion};
use rmcp::model::{CallToolResult, ContentBlock, Extensions, JsonObject};
use rmcp::{tool, tool_router};
use serde::Serialize;

use super::KaiMcp;
use super::arguments::{input_schema, parse};
use super::base64;
use super::inputs::{
    EmbedTextArgs, GetParametersArgs, GetReconstructionFileArgs, GetReconstructionJobArgs,
    MAX_TEXTS, QualityArgs, RecognizeArgs, SearchArgs, SubmitReconstructionArgs, SuggestArgs,
};
use super::outputs::{EmbeddingsOutput, ReconFileOutput};
use super::schemas::output_schema;
use crate::server::error::{ApiError, ApiResult};
use crate::server::ops::request_id::REQUEST_ID;
use crate::server::routes::recon::{content_type, options_of_set};
use crate::server::state::blocking;

/// Largest file `get_reconstruction_file` returns (as base64, a third larger); GLB levels
/// of detail of a phone-sized model are far smaller.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Results `search_materials` returns when `topK` is absent, as `kai search` does.
const DEFAULT_SEARCH_TOP_K: usize = 10;

#[tool_router(router = tool_router, vis = "pub(super)")]
impl KaiMcp {
    /// Recognizes the building or interior material in a photo: the closest catalog
    /// materials with their similarity, and the probability of each material type (wood,
    /// stone, tile, metal, fabric, …). `unknown` is true when no catalog material is close.
    #[tool(
        input_schema = input_schema::<RecognizeArgs>(),
        output_schema = output_schema::<Recognition>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn recognize_material(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish("recognize_material", &extensions, self.recognize(arguments)).await
    }

    /// Searches the material catalog by words, by a photo, or both, with optional filters
    /// on material type, tags and collection, and paging.
    #[tool(
        input_schema = input_schema::<SearchArgs>(),
        output_schema = output_schema::<SearchResults>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_materials(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish("search_materials", &extensions, self.search(arguments)).await
    }

    /// Embeds texts with the catalog's sentence-embedding model, for similarity
    /// comparisons or for `suggest_parameters`.
    #[tool(
        input_schema = input_schema::<EmbedTextArgs>(),
        output_schema = output_schema::<EmbeddingsOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn embed_text(&self, arguments: JsonObject, extensions: Extensions) -> CallToolResult {
        finish("embed_text", &extensions, self.embed(arguments)).await
    }

    /// Checks a photo for blur, exposure, contrast, noise and resolution before
    /// recognition or reconstruction: the measurements, a score from 0 to 1, the failed
    /// rules and whether the photo passed.
    #[tool(
        input_schema = input_schema::<QualityArgs>(),
        output_schema = output_schema::<QualityReport>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn assess_image_quality(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish("assess_image_quality", &extensions, self.quality(arguments)).await
    }

    /// Returns a version of a parameter set from the parameter registry: its values as
    /// written, author, note and creation time.
    #[tool(
        input_schema = input_schema::<GetParametersArgs>(),
        output_schema = output_schema::<ParameterSet>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_parameters(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish("get_parameters", &extensions, self.parameters(arguments)).await
    }

    /// Suggests the parameter set version that performed best on catalog materials
    /// similar to a material or an embedding, with the recorded results behind the
    /// choice. Without such results it falls back to the default set.
    #[tool(
        input_schema = input_schema::<SuggestArgs>(),
        output_schema = output_schema::<Suggestion>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn suggest_parameters(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish("suggest_parameters", &extensions, self.suggest(arguments)).await
    }

    /// Starts a 3D reconstruction of an object from photos taken around it: camera poses
    /// (structure from motion), dense points, a textured-by-colour mesh and its levels of
    /// detail as GLB files. Returns the queued job at once; poll it with
    /// `get_reconstruction_job` until `status` is `succeeded` or `failed`.
    #[tool(
        input_schema = input_schema::<SubmitReconstructionArgs>(),
        output_schema = output_schema::<ReconJob>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn submit_reconstruction(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish(
            "submit_reconstruction",
            &extensions,
            self.submit_reconstruction_job(arguments),
        )
        .await
    }

    /// Returns a reconstruction job: `status` (queued, running, succeeded, failed), the
    /// running `stage`, `progress` from 0 to 1, and once it finished either `result`
    /// (registered photos, points, mean reprojection error, photos left out and why, and
    /// under `model` the dense points and each level of detail) or `error`. `files` lists
    /// the outputs: fetch one with `get_reconstruction_file`, or over HTTP from
    /// `/api/recon/jobs/{id}/files/{name}`.
    #[tool(
        input_schema = input_schema::<GetReconstructionJobArgs>(),
        output_schema = output_schema::<ReconJob>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_reconstruction_job(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish(
            "get_reconstruction_job",
            &extensions,
            self.reconstruction_job(arguments),
        )
        .await
    }

    /// Returns one output file of a succeeded reconstruction job as base64, such as the
    /// model `model.glb` or a coarser level `model.lod1.glb` (GLB, glTF 2.0 binary), the
    /// mesh `mesh.ply` or the COLMAP text files. Files over the tool's size limit are
    /// refused with the HTTP path to download them from instead.
    #[tool(
        input_schema = input_schema::<GetReconstructionFileArgs>(),
        output_schema = output_schema::<ReconFileOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_reconstruction_file(
        &self,
        arguments: JsonObject,
        extensions: Extensions,
    ) -> CallToolResult {
        finish(
            "get_reconstruction_file",
            &extensions,
            self.reconstruction_file(arguments),
        )
        .await
    }
}

impl KaiMcp {
    async fn recognize(&self, arguments: JsonObject) -> ApiResult<Recognition> {
        let args: RecognizeArgs = parse(arguments)?;
        let image = self.image_bytes("imageBase64", args.image_base64).await?;
        let defaults = RecognizeOptions::default();
        let options = RecognizeOptions {
            top_k: args.top_k.unwrap_or(defaults.top_k),
            hint: args.hint,
            ..defaults
        };
        self.state.recognize(image, options).await
    }

    async fn search(&self, arguments: JsonObject) -> ApiResult<SearchResults> {
        let args: SearchArgs = parse(arguments)?;
        let image = match args.image_base64 {
            Some(text) => {
                let bytes = self.image_bytes("imageBase64", text).await?;
                let state = self.state.clone();
                Some(blocking(move || state.decode(&bytes)).await?)
            }
            None => None,
        };
        // Types and tags are stored in lower case.
        let filter = MaterialFilter {
            material_type: args.material_type.map(|t| t.to_lowercase()),
            collection_id: args.collection,
            tags: args
                .tags
                .unwrap_or_default()
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
        };
        let query = SearchQuery {
            text: args.query,
            image,
            filter,
            top_k: args.top_k.unwrap_or(DEFAULT_SEARCH_TOP_K),
            offset: args.offset.unwrap_or(0),
            weights: Default::default(),
        };
        let results = self.state.search(query).await?;
        Ok(SearchResults { results })
    }

    async fn embed(&self, arguments: JsonObject) -> ApiResult<EmbeddingsOutput> {
        let args: EmbedTextArgs = parse(arguments)?;
        if args.texts.is_empty() || args.texts.len() > MAX_TEXTS {
            return Err(Error::invalid(
                "texts",
                format!(
                    "must hold 1 to {MAX_TEXTS} texts, got {}; split larger batches",
                    args.texts.len()
                ),
            )
            .into());
        }
        let vectors = self.state.embed_text(args.texts).await?;
        let model = self
            .state
            .config()
            .store_options(self.state.device().clone())
            .text_model;
        Ok(EmbeddingsOutput {
            model,
            dimension: vectors.dimension(),
            vectors: vectors.to_vecs(),
        })
    }

    async fn quality(&self, arguments: JsonObject) -> ApiResult<QualityReport> {
        let args: QualityArgs = parse(arguments)?;
        let image = self.image_bytes("imageBase64", args.image_base64).await?;
        let thresholds = args.thresholds.unwrap_or_default();
        self.state.quality(image, thresholds).await
    }

    async fn parameters(&self, arguments: JsonObject) -> ApiResult<ParameterSet> {
        let args: GetParametersArgs = parse(arguments)?;
        let registry = self.state.registry();
        blocking(move || registry.get(&args.name, args.scope.as_deref(), args.version)).await
    }

    async fn suggest(&self, arguments: JsonObject) -> ApiResult<Suggestion> {
        let args: SuggestArgs = parse(arguments)?;
        let target = match (args.material_id, args.embedding) {
            (Some(id), None) => SuggestTarget::Material(id),
            (None, Some(embedding)) => SuggestTarget::Embedding(embedding),
            (Some(_), Some(_)) => {
                return Err(
                    Error::invalid("materialId", "give materialId or embedding, not both").into(),
                );
            }
            (None, None) => {
                return Err(Error::invalid(
                    "materialId",
                    "is missing; give materialId or embedding",
                )
                .into());
            }
        };
        let defaults = SuggestOptions::default();
        let options = SuggestOptions {
            metric: args.metric.unwrap_or(defaults.metric),
            higher_is_better: args.higher_is_better.unwrap_or(defaults.higher_is_better),
        };
        let state = self.state.clone();
        blocking(move || {
            let registry = state.registry();
            registry.suggest(&state.catalog(), &target, &options)
        })
        .await
    }

    async fn submit_reconstruction_job(&self, arguments: JsonObject) -> ApiResult<ReconJob> {
        let args: SubmitReconstructionArgs = parse(arguments)?;
        let max_images = self.state.recon().max_images();
        if args.images.len() > max_images {
            return Err(Error::invalid(
                "images",
                format!(
                    "has {} photos, above the limit of {max_images} per job \
                     (KAI_RECON_MAX_IMAGES); send fewer photos",
                    args.images.len()
                ),
            )
            .into());
        }
        let options = options_of_set(&self.state, args.set).await?;
        let limits = *self.state.image_limits();
        let queue = self.state.recon().clone();
        blocking(move || {
            let mut inputs = Vec::with_capacity(args.images.len());
            for (index, photo) in args.images.into_iter().enumerate() {
                let name = format!("images[{index}].data");
                let bytes = base64::decode(&name, &photo.data, limits.max_encoded_bytes)?;
                inputs.push(SfmInput::from_bytes(photo.name, bytes));
            }
            queue.submit(inputs, options, limits)
        })
        .await
    }

    async fn reconstruction_job(&self, arguments: JsonObject) -> ApiResult<ReconJob> {
        let args: GetReconstructionJobArgs = parse(arguments)?;
        Ok(self.state.recon().get(&args.id)?)
    }

    async fn reconstruction_file(&self, arguments: JsonObject) -> ApiResult<ReconFileOutput> {
        let args: GetReconstructionFileArgs = parse(arguments)?;
        let queue = self.state.recon().clone();
        blocking(move || {
            let path = queue.file(&args.id, &args.name)?;
            let size = std::fs::metadata(&path)
                .map_err(|err| Error::io("cannot read", &path, err))?
                .len();
            if size > MAX_FILE_BYTES {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "{} has {size} bytes, above the {MAX_FILE_BYTES} bytes this tool \
                         returns; download it over HTTP from /api/recon/jobs/{}/files/{}",
                        args.name, args.id, args.name
                    ),
                ));
            }
            let bytes = std::fs::read(&path).map_err(|err| Error::io("cannot read", &path, err))?;
            Ok(ReconFileOutput {
                mime_type: content_type(&args.name).to_owned(),
                size: bytes.len() as u64,
                data_base64: base64::encode(&bytes),
                name: args.name,
                id: args.id,
            })
        })
        .await
    }

    /// Decodes a base64 image argument on the blocking pool, bounded by
    /// `KAI_MAX_IMAGE_BYTES`.
    async fn image_bytes(&self, name: &'static str, text: String) -> ApiResult<Bytes> {
        let max_bytes = self.state.image_limits().max_encoded_bytes;
        blocking(move || base64::decode(name, &text, max_bytes).map(Bytes::from)).await
    }
}

/// Awaits a tool's outcome and turns it into the tool result, logging a failure once.
async fn finish<T: Serialize>(
    tool: &'static str,
    extensions: &Extensions,
    outcome: impl Future<Output = ApiResult<T>>,
) -> CallToolResult {
    let value = outcome.await.and_then(|output| {
        serde_json::to_value(output).map_err(|err| {
            ApiError::from(Error::Internal(format!(
                "cannot encode the {tool} output: {err}"
            )))
        })
    });
    match value {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => {
            let request_id = extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.headers.get(&REQUEST_ID))
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-");
            if err.status.is_server_error() {
                tracing::error!(tool, request_id, code = err.code, error = %err.message, "MCP tool failed");
            } else {
                tracing::info!(tool, request_id, code = err.code, error = %err.message, "MCP tool call rejected");
            }
            CallToolResult::error(vec![ContentBlock::text(err.message)])
        }
    }
}
