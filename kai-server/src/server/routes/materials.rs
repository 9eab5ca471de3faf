//! `/api/materials`: the catalog's records (list, read, create, replace, delete, history)
//! and hybrid search by text, photo or both.
//!
//! Bodies have the shapes of `kai materials … --json` and `kai search --json`. Writes take
//! either a JSON record as in `catalog.json` or `multipart/form-data` with the record in
//! the field `record` and the photos as `image` file parts.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use kai_core::Error;
use kai_core::catalog::{
    FusionWeights, MAX_IMAGES, MAX_TOP_K, Material, MaterialFilter, MaterialInput, MaterialVersion,
    SearchQuery, SearchResults, UploadedImage,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    ApiPath, Form, FormSpec, JsonOrMultipart, QueryParams, expected_version, parse_json, versioned,
};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::state::blocking;

/// Materials a listing returns when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Most materials one listing returns.
pub const MAX_LIMIT: usize = 1000;
/// Search results returned when the request names no `topK`, as `kai search` does.
pub const DEFAULT_TOP_K: usize = 10;

/// The text fields of a multipart search other than `tag`, which may repeat.
const SEARCH_FIELDS: [&str; 5] = ["query", "materialType", "collection", "topK", "offset"];

/// Returns the material routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_materials, create_material))
        .routes(routes!(get_material, replace_material, delete_material))
        .routes(routes!(material_history))
        .routes(routes!(search_materials))
}

/// The multipart form of a material write, for the OpenAPI document only (never parsed).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MaterialUpload {
    /// The record as JSON, as in `catalog.json`. On a replace, its `images` lists the
    /// stored images to keep, and an empty list removes them all. On a create it must be
    /// empty.
    #[schema(value_type = MaterialInput)]
    record: String,
    /// The photos, one file part each, stored after the kept images in the order sent.
    #[schema(value_type = Vec<String>, format = Binary, required = false)]
    image: Vec<Vec<u8>>,
}

/// A catalog search, the options of `kai search`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchRequest {
    /// Words and meaning to look for. Optional when a photo is sent.
    #[serde(default)]
    pub query: Option<String>,
    /// Only materials of this type.
    #[serde(default)]
    pub material_type: Option<String>,
    /// Only materials that have every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only materials of this collection.
    #[serde(default)]
    pub collection: Option<String>,
    /// Results per page, 1 to 1000 (default 10).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Results skipped, for paging.
    #[serde(default)]
    pub offset: usize,
    /// How much keyword, text and image similarity count.
    #[serde(default)]
    pub weights: Option<FusionWeights>,
}

fn default_top_k() -> usize {
    DEFAULT_TOP_K
}

/// The multipart form of a search by photo, for the OpenAPI document only (never parsed).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SearchUpload {
    /// The photo to find similar materials to.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Words to look for as well.
    query: Option<String>,
    /// Only materials of this type.
    material_type: Option<String>,
    /// Only materials with this tag. Repeat the field for several tags.
    tag: Option<String>,
    /// Only materials of this collection.
    collection: Option<String>,
    /// Results per page, 1 to 1000 (default 10).
    top_k: Option<usize>,
    /// Results skipped, for paging.
    offset: Option<usize>,
}

/// Lists materials in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/materials",
    tag = "materials",
    params(
        ("type" = Option<String>, Query, description = "Only materials of this type"),
        ("collection" = Option<String>, Query, description = "Only materials of this collection"),
        ("tag" = Option<Vec<String>>, Query, description = "Only materials with this tag. Repeat the parameter for several tags"),
        ("offset" = Option<usize>, Query, description = "Materials skipped (default 0)"),
        ("limit" = Option<usize>, Query, description = "Materials returned, 1 to 1000 (default 100). A shorter page is the last"),
    ),
    responses(
        (status = 200, description = "The page of materials", body = Vec<Material>),
        (status = 400, description = "An invalid query parameter", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn list_materials(
    State(state): State<AppState>,
    params: QueryParams,
) -> ApiResult<Json<Vec<Material>>> {
    params.only(&["type", "collection", "tag", "offset", "limit"])?;
    let filter = MaterialFilter {
        material_type: params.text("type")?.map(|t| t.to_lowercase()),
        collection_id: params.text("collection")?,
        tags: params.all("tag").iter().map(|t| t.to_lowercase()).collect(),
    };
    let offset = params.number::<usize>("offset")?.unwrap_or(0);
    let limit = params.number::<usize>("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(
            "query parameter limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let materials = blocking(move || state.catalog().list(&filter, offset, limit)).await?;
    Ok(Json(materials))
}

/// Returns one material. Its `ETag` is its version, for `If-Match` on a later write.
#[utoipa::path(
    get,
    path = "/api/materials/{id}",
    tag = "materials",
    params(("id" = String, Path, description = "The material id")),
    responses(
        (status = 200, description = "The material", body = Material,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 404, description = "No material has the id", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn get_material(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(HeaderMap, Json<Material>)> {
    let material = blocking(move || {
        let material = state.catalog().get(&id)?;
        material.ok_or_else(|| not_found(&id))
    })
    .await?;
    Ok(versioned(material.version, material))
}

/// Creates a material from a JSON record or a multipart upload with photos.
#[utoipa::path(
    post,
    path = "/api/materials",
    tag = "materials",
    request_body(
        description = "A record as in catalog.json (its `images` must be empty), or a \
                       multipart form with the record and its photos",
        content(
            (MaterialInput = "application/json"),
            (MaterialUpload = "multipart/form-data"),
        )
    ),
    responses(
        (status = 201, description = "The stored material", body = Material,
            headers(
                ("Location" = String, description = "The material's URL"),
                ("ETag" = String, description = "The version, quoted"),
            )),
        (status = 400, description = "An invalid field or image", body = ErrorBody),
        (status = 409, description = "A material with the id exists", body = ErrorBody),
        (status = 413, description = "The body or an image is over its size limit", body = ErrorBody),
        (status = 415, description = "The body is neither JSON nor multipart", body = ErrorBody),
        (status = 422, description = "The JSON does not match the record's shape, or a form field is unknown, repeated or missing", body = ErrorBody),
        (status = 503, description = "A model is missing or the store failed", body = ErrorBody),
    )
)]
async fn create_material(
    State(state): State<AppState>,
    params: QueryParams,
    body: JsonOrMultipart,
) -> ApiResult<(StatusCode, HeaderMap, Json<Material>)> {
    params.only(&[])?;
    let (record, uploads) = read_record(&state, body, parse_json::<MaterialInput>).await?;
    let material = blocking(move || {
        let _permit = (!uploads.is_empty()).then(|| state.decode_limit().acquire());
        state.catalog().create_uploaded(&record, &uploads)
    })
    .await?;
    let (mut headers, body) = versioned(material.version, material);
    if let Ok(location) = HeaderValue::try_from(format!("/api/materials/{}", body.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, body))
}

/// Replaces a material's fields, and its photos when the request sends or lists them.
#[utoipa::path(
    put,
    path = "/api/materials/{id}",
    tag = "materials",
    params(
        ("id" = String, Path, description = "The material id"),
        ("expectVersion" = Option<u32>, Query,
            description = "Fail with 409 unless the material is at this version"),
        ("If-Match" = Option<String>, Header,
            description = "The ETag of the version the change was made to, as expectVersion, or `*` for any version"),
    ),
    request_body(
        description = "The new record (its `id` may be left out). `images` lists the stored \
                       images to keep by path, and uploaded photos follow them, so an empty \
                       list without uploads removes every photo. Without `images`, uploaded \
                       photos replace the stored ones, and with no uploads the material keeps \
                       its photos",
        content(
            (MaterialInput = "application/json"),
            (MaterialUpload = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The stored material", body = Material,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "An invalid field or image, or an id that differs from the path", body = ErrorBody),
        (status = 404, description = "No material has the id", body = ErrorBody),
        (status = 409, description = "The material is at another version", body = ErrorBody),
        (status = 413, description = "The body or an image is over its size limit", body = ErrorBody),
        (status = 415, description = "The body is neither JSON nor multipart", body = ErrorBody),
        (status = 422, description = "The JSON does not match the record's shape, or a form field is unknown, repeated or missing", body = ErrorBody),
        (status = 503, description = "A model is missing or the store failed", body = ErrorBody),
    )
)]
async fn replace_material(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    params: QueryParams,
    body: JsonOrMultipart,
) -> ApiResult<(HeaderMap, Json<Material>)> {
    params.only(&["expectVersion"])?;
    let expected = expected_version(&headers, params.number::<u32>("expectVersion")?)?;
    let (replacement, uploads) =
        read_record(&state, body, |what, json| record_for(&id, what, json)).await?;
    let material = blocking(move || {
        let _permit = (!uploads.is_empty()).then(|| state.decode_limit().acquire());
        let mut catalog = state.catalog();
        let record = &replacement.record;
        if replacement.images_listed {
            catalog.replace_uploaded_listed(record, &uploads, expected)
        } else {
            catalog.replace_uploaded(record, &uploads, expected)
        }
    })
    .await?;
    Ok(versioned(material.version, material))
}

/// Deletes a material with its vectors but keeps its history.
#[utoipa::path(
    delete,
    path = "/api/materials/{id}",
    tag = "materials",
    params(
        ("id" = String, Path, description = "The material id"),
        ("expectVersion" = Option<u32>, Query,
            description = "Fail with 409 unless the material is at this version"),
        ("If-Match" = Option<String>, Header,
            description = "The ETag of the version to delete, as expectVersion, or `*` for any version"),
    ),
    responses(
        (status = 204, description = "The material was deleted"),
        (status = 400, description = "An invalid If-Match header or query parameter", body = ErrorBody),
        (status = 404, description = "No material has the id", body = ErrorBody),
        (status = 409, description = "The material is at another version", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn delete_material(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    params: QueryParams,
) -> ApiResult<StatusCode> {
    params.only(&["expectVersion"])?;
    let expected = expected_version(&headers, params.number::<u32>("expectVersion")?)?;
    blocking(move || {
        if state.catalog().delete_expecting(&id, expected)? {
            Ok(())
        } else {
            Err(not_found(&id))
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Returns every version of a material, oldest first, deleted materials included.
#[utoipa::path(
    get,
    path = "/api/materials/{id}/history",
    tag = "materials",
    params(("id" = String, Path, description = "The material id")),
    responses(
        (status = 200, description = "The versions, oldest first", body = Vec<MaterialVersion>),
        (status = 404, description = "No material ever had the id", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn material_history(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<MaterialVersion>>> {
    let history = blocking(move || state.catalog().history_or_not_found(&id)).await?;
    Ok(Json(history))
}

/// Searches the catalog by text, by photo, or both, as `kai search` does.
#[utoipa::path(
    post,
    path = "/api/materials/search",
    tag = "materials",
    request_body(
        description = "A JSON query, or a multipart form with the photo in `image` and the \
                       other options as text fields",
        content(
            (SearchRequest = "application/json"),
            (SearchUpload = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The page of results, best first", body = SearchResults),
        (status = 400, description = "No query and no photo, an invalid option or photo", body = ErrorBody),
        (status = 413, description = "The body or the photo is over its size limit", body = ErrorBody),
        (status = 415, description = "The body is neither JSON nor multipart", body = ErrorBody),
        (status = 422, description = "The JSON does not match the query's shape, or a form field is unknown or repeated", body = ErrorBody),
        (status = 503, description = "A model is missing or the store failed", body = ErrorBody),
    )
)]
async fn search_materials(
    State(state): State<AppState>,
    params: QueryParams,
    body: JsonOrMultipart,
) -> ApiResult<Json<SearchResults>> {
    params.only(&[])?;
    let (request, photo) = match body {
        JsonOrMultipart::Json(bytes) => {
            (parse_json::<SearchRequest>("search query", &bytes)?, None)
        }
        JsonOrMultipart::Multipart(multipart) => {
            let spec = FormSpec {
                repeated: &["tag"],
                ..FormSpec::new(&SEARCH_FIELDS, state.image_limits().max_encoded_bytes)
            };
            search_form(Form::read(multipart, &spec).await?)?
        }
    };
    if request.top_k == 0 || request.top_k > MAX_TOP_K {
        return Err(ApiError::invalid(
            "topK",
            format!("must be between 1 and {MAX_TOP_K}, got {}", request.top_k),
        ));
    }
    let image = match photo {
        Some(bytes) => {
            let decoder = state.clone();
            Some(blocking(move || decoder.decode(&bytes)).await?)
        }
        None => None,
    };
    let query = SearchQuery {
        text: request.query,
        image,
        filter: MaterialFilter {
            material_type: request.material_type.map(|t| t.trim().to_lowercase()),
            collection_id: request.collection,
            tags: request
                .tags
                .iter()
                .map(|t| t.trim().to_lowercase())
                .collect(),
        },
        top_k: request.top_k,
        offset: request.offset,
        weights: request.weights.unwrap_or_default(),
    };
    let results = state.search(query).await?;
    Ok(Json(SearchResults { results }))
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "material",
        name: id.to_owned(),
        hint: String::new(),
    }
}

/// Reads the record and the uploaded photos of a material write: a JSON body, or a
/// multipart form with the record in the field `record` and the photos as `image` parts.
/// `parse` parses the record's JSON, and its first argument names the record in errors.
async fn read_record<T>(
    state: &AppState,
    body: JsonOrMultipart,
    parse: impl FnOnce(&str, &[u8]) -> ApiResult<T>,
) -> ApiResult<(T, Vec<UploadedImage>)> {
    let multipart = match body {
        JsonOrMultipart::Json(json) => return Ok((parse("record", &json)?, Vec::new())),
        JsonOrMultipart::Multipart(multipart) => multipart,
    };
    let spec = FormSpec {
        // The body limit bounds the record, as it bounds a JSON body.
        max_text_bytes: state.config().max_body_bytes,
        max_images: MAX_IMAGES,
        ..FormSpec::new(&["record"], state.image_limits().max_encoded_bytes)
    };
    let mut form = Form::read(multipart, &spec).await?;
    let Some(json) = form.text("record") else {
        return Err(ApiError::unprocessable(
            "missing field `record`: send the material as JSON in a multipart field named \
             `record`",
        ));
    };
    let record = parse("multipart field record", json.as_bytes())?;
    let uploads = form
        .files()
        .into_iter()
        .enumerate()
        .map(|(i, file)| UploadedImage {
            name: file.file_name.unwrap_or_else(|| format!("image {}", i + 1)),
            bytes: file.bytes.into(),
        })
        .collect();
    Ok((record, uploads))
}

/// The record of a replace, and whether it lists the images to keep.
#[derive(Debug)]
struct Replacement {
    record: MaterialInput,
    /// Whether the JSON has an `images` field, so that an empty list removes every
    /// image instead of keeping them all.
    images_listed: bool,
}

/// Parses the record of a replace. A record without `id` takes the id in the path, and
/// a record with a different `id` is rejected.
fn record_for(id: &str, what: &str, bytes: &[u8]) -> ApiResult<Replacement> {
    let mut value = parse_json::<Value>(what, bytes)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::unprocessable(format!(
            "invalid {what}: expected a JSON object with the material's fields"
        )));
    };
    match object.get("id") {
        None => {
            object.insert("id".to_owned(), Value::String(id.to_owned()));
        }
        Some(Value::String(given)) if given.trim() == id => {}
        Some(given) => {
            return Err(ApiError::invalid(
                "id",
                format!("{given} differs from the material `{id}` in the path"),
            ));
        }
    }
    let images_listed = object.contains_key("images");
    let record = serde_json::from_value(value)
        .map_err(|err| ApiError::unprocessable(format!("invalid {what}: {err}")))?;
    Ok(Replacement {
        record,
        images_listed,
    })
}

/// Reads a multipart search: the photo in `image` and each option as a text field.
fn search_form(mut form: Form) -> ApiResult<(SearchRequest, Option<axum::body::Bytes>)> {
    let text = |name: &str| {
        form.text(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let request = SearchRequest {
        query: text("query"),
        material_type: text("materialType"),
        tags: form.all("tag").to_vec(),
        collection: text("collection"),
        top_k: form
            .parse("topK", "a whole number from 1 to 1000")?
            .unwrap_or(DEFAULT_TOP_K),
        offset: form
            .parse("offset", "a non-negative whole number")?
            .unwrap_or(0),
        weights: None,
    };
    let photo = form.files().pop().map(|file| file.bytes);
    Ok((request, photo))
}
