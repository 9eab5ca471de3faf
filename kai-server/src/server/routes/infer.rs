//! The inference routes: texture classification, recognition, text and image embeddings
//! and photo quality.
//!
//! Bodies have the shapes of `kai recognize --json`, `kai embed … --json` and `kai quality
//! --json`. Photos come as multipart file fields named `image` and options as text fields
//! beside them. Text embeddings take JSON. Concurrent model calls are batched (see
//! [`crate::server::batch`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use kai_core::Error;
use kai_core::embed::Prediction;
use kai_core::image::{QualityReport, QualityThresholds};
use kai_core::recognize::{ClassConfidence, Recognition, RecognizeOptions};
use kai_core::registry::{Values, quality_thresholds, recognize_options};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Form, FormSpec, MultipartBody, QueryParams};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::state::blocking;

/// Material classes `POST /api/classify-texture` returns.
pub const TEXTURE_CLASSES: usize = 5;
/// Texts one `POST /api/embed/text` request may embed.
pub const MAX_TEXTS: usize = 256;
/// Maximum bytes of one text. The text model reads at most 256 tokens, which are far fewer
/// bytes, so a longer text only costs tokenizer time.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Photos one `POST /api/embed/image` request may embed.
pub const MAX_IMAGES: usize = 32;
/// Maximum ImageNet classes listed per photo.
pub const MAX_LABELS: usize = 100;
/// ImageNet classes listed per photo when the request names no `topK`, as `kai embed
/// image` does.
pub const DEFAULT_LABELS: usize = 5;

/// Text fields that pick a registry parameter set for a route's options.
const REGISTRY_FIELDS: [&str; 2] = ["parameterSet", "scope"];
const RECOGNIZE_FIELDS: [&str; 7] = [
    "topK",
    "hint",
    "hintWeight",
    "minResolution",
    "unknownThreshold",
    "parameterSet",
    "scope",
];
/// The threshold fields of `POST /api/quality`: [`QualityThresholds`] in camelCase.
const THRESHOLD_FIELDS: [&str; 11] = [
    "minSharpness",
    "shadowLevel",
    "maxShadowsClipped",
    "highlightLevel",
    "maxHighlightsClipped",
    "minMeanBrightness",
    "maxMeanBrightness",
    "minContrast",
    "maxNoise",
    "minShortSide",
    "minMegapixels",
];

/// Returns the inference routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(classify_texture))
        .routes(routes!(recognize))
        .routes(routes!(embed_text))
        .routes(routes!(embed_image))
        .routes(routes!(quality))
}

/// The multipart form of `POST /api/classify-texture`, for the API document only.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PhotoUpload {
    /// The photo: JPEG, PNG, WebP, BMP or TIFF.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

/// The multipart form of `POST /api/recognize`, for the API document only.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RecognizeUpload {
    /// The photo: JPEG, PNG, WebP, BMP or TIFF.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Materials returned, 1 to 100 (default 5).
    top_k: Option<u32>,
    /// Text describing the material, fused into the material ranking.
    hint: Option<String>,
    /// Share of the hint's similarity in the material score, 0 to 1 (default 0.3).
    hint_weight: Option<f32>,
    /// Photos whose shorter side has fewer pixels are rejected (default 64).
    min_resolution: Option<u32>,
    /// Below this cosine similarity to the nearest catalog image the photo is `unknown`
    /// (default 0.3).
    unknown_threshold: Option<f32>,
    /// A registry parameter set whose `recognition.*` values replace the defaults. The
    /// fields above still override them.
    parameter_set: Option<String>,
    /// The scope, such as a material type, whose version of `parameterSet` applies
    /// before the unscoped one.
    scope: Option<String>,
}

/// The multipart form of `POST /api/embed/image`, for the API document only.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ImageEmbedUpload {
    /// The photos, one file field each, at most 32.
    #[schema(value_type = Vec<String>, format = Binary)]
    image: Vec<Vec<u8>>,
    /// The image model's name (default `efficientnet-lite0`).
    model: Option<String>,
    /// ImageNet classes listed per photo, 0 to 100 (default 5).
    top_k: Option<u32>,
}

/// The multipart form of `POST /api/quality`, for the API document only.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct QualityUpload {
    /// The photo: JPEG, PNG, WebP, BMP or TIFF.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Any field of the thresholds, each as its own form field.
    #[serde(flatten)]
    thresholds: Option<QualityThresholds>,
    /// A registry parameter set whose `quality.*` values replace the default thresholds.
    /// Threshold fields still override them.
    parameter_set: Option<String>,
    /// The scope whose version of `parameterSet` applies before the unscoped one.
    scope: Option<String>,
}

/// The material classes of a texture photo.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TextureClasses {
    /// The five most probable material types, most probable first.
    pub classes: Vec<ClassConfidence>,
    /// Whether the photo is too far from every catalog image to name a material.
    pub unknown: bool,
    /// Wall time of the recognition, in milliseconds.
    pub processing_time_ms: f64,
}

/// The texts of `POST /api/embed/text`: `texts`, or one `text`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedTextRequest {
    /// Texts to embed, at most 256 of at most 64 KiB each.
    #[serde(default)]
    pub texts: Option<Vec<String>>,
    /// One text to embed, in place of `texts`.
    #[serde(default)]
    pub text: Option<String>,
    /// The text model's name (default `all-minilm-l6-v2`). Any model in the model
    /// directory loads on first use.
    #[serde(default)]
    pub model: Option<String>,
}

/// Text embeddings, as `kai embed text --json` prints them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextEmbeddingsResponse {
    /// The model name.
    pub model: String,
    /// The length of each vector.
    pub dimension: usize,
    /// One vector per text, in request order.
    pub vectors: Vec<Vec<f32>>,
}

/// Image embeddings and ImageNet labels, as `kai embed image --json` prints them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageEmbeddingsResponse {
    /// The model name.
    pub model: String,
    /// The length of each vector.
    pub dimension: usize,
    /// One unit-length vector per photo, in request order.
    pub vectors: Vec<Vec<f32>>,
    /// Each photo's most probable ImageNet classes, most probable first.
    pub labels: Vec<Vec<Prediction>>,
}

/// Classifies the material of a texture photo.
#[utoipa::path(
    post,
    path = "/api/classify-texture",
    tag = "inference",
    request_body(content = inline(PhotoUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The five most probable material types", body = TextureClasses),
        (status = 400, description = "The photo is empty, corrupt or too small", body = ErrorBody),
        (status = 413, description = "The photo is over KAI_MAX_IMAGE_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
        (status = 422, description = "The `image` field is missing", body = ErrorBody),
        (status = 503, description = "The image model is not installed", body = ErrorBody),
    )
)]
async fn classify_texture(
    State(state): State<AppState>,
    params: QueryParams,
    body: MultipartBody,
) -> ApiResult<Json<TextureClasses>> {
    params.only(&[])?;
    let (_, image) = read_photo_form(&state, body, &[]).await?;
    let recognition = state.recognize(image, RecognizeOptions::default()).await?;
    let mut classes = recognition.classes;
    classes.truncate(TEXTURE_CLASSES);
    Ok(Json(TextureClasses {
        classes,
        unknown: recognition.unknown,
        processing_time_ms: recognition.processing_time_ms,
    }))
}

/// Recognizes the material in a photo: the best-matching catalog materials, the material
/// type confidences and the photo's quality.
#[utoipa::path(
    post,
    path = "/api/recognize",
    tag = "inference",
    request_body(content = inline(RecognizeUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The recognition, as `kai recognize --json` prints it", body = Recognition),
        (status = 400, description = "The photo or an option is invalid", body = ErrorBody),
        (status = 404, description = "The catalog has no images, or the parameter set does not exist", body = ErrorBody),
        (status = 413, description = "The photo is over KAI_MAX_IMAGE_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
        (status = 422, description = "The `image` field is missing or a field is unknown", body = ErrorBody),
        (status = 503, description = "A model is not installed", body = ErrorBody),
    )
)]
async fn recognize(
    State(state): State<AppState>,
    params: QueryParams,
    body: MultipartBody,
) -> ApiResult<Json<Recognition>> {
    params.only(&[])?;
    let (form, image) = read_photo_form(&state, body, &RECOGNIZE_FIELDS).await?;
    let options = recognition_options(&state, &form).await?;
    let recognition = state.recognize(image, options).await;
    Ok(Json(
        recognition.map_err(|err| camel_case_field(err, &RECOGNIZE_FIELDS))?,
    ))
}

/// Embeds texts with a text model.
#[utoipa::path(
    post,
    path = "/api/embed/text",
    tag = "inference",
    request_body = EmbedTextRequest,
    responses(
        (status = 200, description = "One vector per text, as `kai embed text --json` prints them", body = TextEmbeddingsResponse),
        (status = 400, description = "The body is not valid JSON, or there is no text", body = ErrorBody),
        (status = 404, description = "The model does not exist", body = ErrorBody),
        (status = 413, description = "Too many texts, or a text is too long", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The body has the wrong shape", body = ErrorBody),
        (status = 503, description = "The model's files are missing or corrupt", body = ErrorBody),
    )
)]
async fn embed_text(
    State(state): State<AppState>,
    params: QueryParams,
    ApiJson(request): ApiJson<EmbedTextRequest>,
) -> ApiResult<Json<TextEmbeddingsResponse>> {
    params.only(&[])?;
    let texts = request_texts(request.texts, request.text)?;
    let embedded = state.embed_texts(request.model, texts).await?;
    Ok(Json(TextEmbeddingsResponse {
        model: embedded.model,
        dimension: embedded.vectors.dimension(),
        vectors: embedded.vectors.to_vecs(),
    }))
}

/// Embeds photos with an image model and lists their most probable ImageNet classes.
#[utoipa::path(
    post,
    path = "/api/embed/image",
    tag = "inference",
    request_body(content = inline(ImageEmbedUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "One vector and label list per photo, as `kai embed image --json` prints them", body = ImageEmbeddingsResponse),
        (status = 400, description = "A photo or an option is invalid", body = ErrorBody),
        (status = 404, description = "The model does not exist", body = ErrorBody),
        (status = 413, description = "A photo is over KAI_MAX_IMAGE_BYTES, or there are more than 32", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
        (status = 422, description = "The `image` field is missing or a field is unknown", body = ErrorBody),
        (status = 503, description = "The model's files are missing or corrupt", body = ErrorBody),
    )
)]
async fn embed_image(
    State(state): State<AppState>,
    params: QueryParams,
    body: MultipartBody,
) -> ApiResult<Json<ImageEmbeddingsResponse>> {
    params.only(&[])?;
    let spec = FormSpec {
        max_images: MAX_IMAGES,
        ..FormSpec::new(&["model", "topK"], state.image_limits().max_encoded_bytes)
    };
    let mut form = Form::read(body.0, &spec).await?;
    let images = form.images()?;
    let top_k = form
        .parse::<usize>("topK", "a whole number from 0 to 100")?
        .unwrap_or(DEFAULT_LABELS);
    if top_k > MAX_LABELS {
        return Err(ApiError::invalid(
            "topK",
            format!("must be from 0 to {MAX_LABELS}, got {top_k}"),
        ));
    }
    let model = form.text("model").map(str::to_owned);
    let embedded = state.embed_images(model, images, top_k).await?;
    let output = embedded.output;
    Ok(Json(ImageEmbeddingsResponse {
        model: embedded.model,
        dimension: output.vectors.dimension(),
        vectors: output.vectors.to_vecs(),
        labels: output.labels,
    }))
}

/// Assesses a photo's quality: sharpness, exposure, contrast, noise and resolution.
#[utoipa::path(
    post,
    path = "/api/quality",
    tag = "inference",
    request_body(content = inline(QualityUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The quality report, as `kai quality --json` prints it for one photo", body = QualityReport),
        (status = 400, description = "The photo or a threshold is invalid", body = ErrorBody),
        (status = 404, description = "The parameter set does not exist", body = ErrorBody),
        (status = 413, description = "The photo is over KAI_MAX_IMAGE_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
        (status = 422, description = "The `image` field is missing or a field is unknown", body = ErrorBody),
    )
)]
async fn quality(
    State(state): State<AppState>,
    params: QueryParams,
    body: MultipartBody,
) -> ApiResult<Json<QualityReport>> {
    params.only(&[])?;
    let fields: Vec<&str> = THRESHOLD_FIELDS
        .iter()
        .chain(&REGISTRY_FIELDS)
        .copied()
        .collect();
    let (form, image) = read_photo_form(&state, body, &fields).await?;
    let thresholds = thresholds(&state, &form).await?;
    let report = state.quality(image, thresholds).await;
    Ok(Json(
        report.map_err(|err| camel_case_field(err, &THRESHOLD_FIELDS))?,
    ))
}

/// Renames the field in a kai-core validation message, which uses Rust's snake_case
/// (`invalid top_k: …`), to the camelCase form field the client sent (`topK`). Messages
/// about other values are returned unchanged.
fn camel_case_field(mut err: ApiError, fields: &[&str]) -> ApiError {
    let Some((name, reason)) = err
        .message
        .strip_prefix("invalid ")
        .and_then(|rest| rest.split_once(": "))
    else {
        return err;
    };
    let mut camel = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    if camel != name && fields.contains(&camel.as_str()) {
        err.message = format!("invalid {camel}: {reason}");
    }
    err
}

/// Reads a form of one photo and the text fields `fields`, and takes the photo.
async fn read_photo_form(
    state: &AppState,
    body: MultipartBody,
    fields: &[&str],
) -> ApiResult<(Form, Bytes)> {
    let spec = FormSpec::new(fields, state.image_limits().max_encoded_bytes);
    let mut form = Form::read(body.0, &spec).await?;
    let image = form.one_image()?;
    Ok((form, image))
}

/// Returns the values of the registry set named by the `parameterSet` field, if any.
async fn registry_values(state: &AppState, form: &Form) -> ApiResult<Option<Values>> {
    let Some(set) = form.text("parameterSet").map(str::to_owned) else {
        return Ok(None);
    };
    let scope = form.text("scope").map(str::to_owned);
    let registry = state.registry();
    let resolution = blocking(move || {
        let scopes: Vec<&str> = scope.iter().map(String::as_str).collect();
        registry.resolve(Some(&set), &scopes)
    })
    .await?;
    Ok(Some(resolution.values))
}

/// Builds recognition options: the defaults, or a registry set's `recognition.*` values,
/// then the form's own fields.
async fn recognition_options(state: &AppState, form: &Form) -> ApiResult<RecognizeOptions> {
    let mut options = match registry_values(state, form).await? {
        Some(values) => recognize_options(&values)?,
        None => RecognizeOptions::default(),
    };
    if let Some(top_k) = form.parse("topK", "a whole number from 1 to 100")? {
        options.top_k = top_k;
    }
    if let Some(hint) = form.text("hint") {
        options.hint = Some(hint.to_owned());
    }
    if let Some(weight) = form.parse("hintWeight", "a number from 0 to 1")? {
        options.hint_weight = weight;
    }
    if let Some(pixels) = form.parse("minResolution", "a whole number of pixels")? {
        options.min_resolution = pixels;
    }
    if let Some(threshold) = form.parse("unknownThreshold", "a number from -1 to 1")? {
        options.unknown_threshold = threshold;
    }
    Ok(options)
}

/// Builds quality thresholds: the defaults, or a registry set's `quality.*` values, then
/// the form's threshold fields.
async fn thresholds(state: &AppState, form: &Form) -> ApiResult<QualityThresholds> {
    let base = match registry_values(state, form).await? {
        Some(values) => quality_thresholds(&values)?,
        None => QualityThresholds::default(),
    };
    let mut object = match serde_json::to_value(&base) {
        Ok(Value::Object(object)) => object,
        _ => return Err(Error::Internal("quality thresholds are not a JSON object".into()).into()),
    };
    for name in THRESHOLD_FIELDS {
        let Some(text) = form.text(name) else {
            continue;
        };
        let number = serde_json::from_str::<Value>(text.trim())
            .ok()
            .filter(Value::is_number)
            .ok_or_else(|| ApiError::invalid(name, format!("must be a number, got `{text}`")))?;
        object.insert(name.to_owned(), number);
    }
    // Deserializing checks the types, such as a whole number for `minShortSide`. The
    // ranges are checked with the photo.
    serde_json::from_value(Value::Object(object))
        .map_err(|err| ApiError::invalid("quality thresholds", err))
}

/// Returns the texts of an embedding request, checked against the request limits.
fn request_texts(texts: Option<Vec<String>>, text: Option<String>) -> ApiResult<Vec<String>> {
    let texts = match (texts, text) {
        (Some(texts), None) => texts,
        (None, Some(text)) => vec![text],
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "the body has both `texts` and `text`; send one of them",
            ));
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "missing field `texts`: send {\"texts\": [\"…\"]} or {\"text\": \"…\"}",
            ));
        }
    };
    if texts.is_empty() {
        return Err(ApiError::invalid(
            "texts",
            "is empty; send at least one text",
        ));
    }
    if texts.len() > MAX_TEXTS {
        return Err(ApiError::too_large(format!(
            "the request has {} texts; send at most {MAX_TEXTS} per request",
            texts.len()
        )));
    }
    if let Some((index, long)) = texts
        .iter()
        .enumerate()
        .find(|(_, text)| text.len() > MAX_TEXT_BYTES)
    {
        return Err(ApiError::too_large(format!(
            "text {index} has {} bytes; send at most {MAX_TEXT_BYTES} bytes per text",
            long.len()
        )));
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_fields_match_the_thresholds() {
        let Ok(Value::Object(object)) = serde_json::to_value(QualityThresholds::default()) else {
            panic!("thresholds serialize to an object");
        };
        let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut fields = THRESHOLD_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(names, fields);
    }

    #[test]
    fn field_names_become_camel_case() {
        let renamed = camel_case_field(
            ApiError::invalid("min_sharpness", "must be at least 0, got -1"),
            &THRESHOLD_FIELDS,
        );
        assert_eq!(
            renamed.message,
            "invalid minSharpness: must be at least 0, got -1"
        );
        let unknown = camel_case_field(
            ApiError::invalid("recognition.top_k", "must be at least 1"),
            &RECOGNIZE_FIELDS,
        );
        assert_eq!(
            unknown.message,
            "invalid recognition.top_k: must be at least 1"
        );
        let other = camel_case_field(ApiError::invalid("image", "is empty"), &RECOGNIZE_FIELDS);
        assert_eq!(other.message, "invalid image: is empty");
    }

    #[test]
    fn request_texts_are_bounded() {
        let one = request_texts(None, Some("oak".into())).expect("one text");
        assert_eq!(one, vec!["oak".to_owned()]);

        let both = request_texts(Some(vec![]), Some("oak".into())).expect_err("both");
        assert_eq!(both.status.as_u16(), 422);
        let neither = request_texts(None, None).expect_err("neither");
        assert_eq!(neither.status.as_u16(), 422);
        assert!(neither.message.contains("texts"), "{}", neither.message);
        let empty = request_texts(Some(vec![]), None).expect_err("empty");
        assert_eq!(empty.status.as_u16(), 400);

        let many = request_texts(Some(vec![String::new(); MAX_TEXTS + 1]), None);
        assert_eq!(many.expect_err("too many").status.as_u16(), 413);
        let long = request_texts(Some(vec!["x".repeat(MAX_TEXT_BYTES + 1)]), None);
        let long = long.expect_err("too long");
        assert_eq!(long.status.as_u16(), 413);
        assert!(long.message.contains("text 0"), "{}", long.message);
    }
}
