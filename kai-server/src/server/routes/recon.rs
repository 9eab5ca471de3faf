//! `/api/recon/jobs`: reconstruction jobs. A client uploads photos, receives a job at
//! once (202), polls it until it is `succeeded` or `failed`, and downloads the model files
//! (a GLB per level of detail) and the intermediate files (COLMAP text model, sparse and
//! dense points, the full mesh).
//!
//! Photos come as repeated multipart file fields named `images` and are written to disk
//! one at a time as they arrive, so a request keeps at most one photo in memory. The
//! optional text field `set` names the parameter set whose `recon.*` values configure the
//! job (default: `DEFAULT_PARAMETER_SET`, else `standard`).

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kai_core::Error;
use kai_core::recon::jobs::ReconJob;
use kai_core::recon::pipeline::PipelineOptions;
use kai_core::recon::sfm::{ImageSource, SfmInput};
use kai_core::registry::pipeline_options;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, MultipartBody, QueryParams, multipart_error, read_limited};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::state::blocking;

/// The file field that carries a photo; it repeats once per photo.
pub const IMAGES_FIELD: &str = "images";
/// The text field that names the parameter set.
pub const SET_FIELD: &str = "parameterSet";
/// Maximum size of the `parameterSet` field in bytes; set names are far shorter.
const MAX_SET_BYTES: usize = 256;

/// Returns the reconstruction routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(get_file))
}

/// The multipart form of `POST /api/recon/jobs`, for the API document only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ReconUpload {
    /// The photos, one file field each: at least 2 and at most `KAI_RECON_MAX_IMAGES`
    /// (default 200), each at most `KAI_MAX_IMAGE_BYTES`. A photo's file name names it
    /// in the model; it must be unique within the job.
    #[schema(value_type = Vec<String>, format = Binary)]
    images: Vec<Vec<u8>>,
    /// The parameter set whose `recon.*` values configure the reconstruction (default
    /// `DEFAULT_PARAMETER_SET`, else `standard`).
    parameter_set: Option<String>,
}

/// Every reconstruction job, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconJobList {
    /// The jobs.
    pub jobs: Vec<ReconJob>,
}

/// Queues a reconstruction of the uploaded photos.
#[utoipa::path(
    post,
    path = "/api/recon/jobs",
    tag = "reconstruction",
    request_body(content = inline(ReconUpload), content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "The job is queued; poll its Location until `status` is `succeeded` or `failed`", body = ReconJob,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Fewer than 2 photos, a photo that is not an image, a repeated photo name, or an invalid parameter value", body = ErrorBody),
        (status = 404, description = "The parameter set does not exist", body = ErrorBody),
        (status = 413, description = "A photo is over KAI_MAX_IMAGE_BYTES, there are more than KAI_RECON_MAX_IMAGES photos, or the body is over KAI_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data", body = ErrorBody),
        (status = 422, description = "The `images` field is missing, or a field is unknown or repeated", body = ErrorBody),
        (status = 503, description = "The photos cannot be stored", body = ErrorBody),
    )
)]
async fn submit_job(
    State(state): State<AppState>,
    params: QueryParams,
    body: MultipartBody,
) -> ApiResult<Response> {
    params.only(&[])?;
    let queue = state.recon().clone();
    let upload = blocking(move || queue.upload_dir()).await?;
    let outcome = receive_and_submit(&state, body, upload.path()).await;
    // The job folder has its own links to the photos by now. Deleting the upload folder
    // touches every photo, so it runs on the blocking pool.
    let _ = tokio::task::spawn_blocking(move || drop(upload)).await;
    let job = outcome?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::try_from(format!("/api/recon/jobs/{}", job.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(job)).into_response())
}

/// Reads the form into `folder`, resolves the parameter set and submits the job.
async fn receive_and_submit(
    state: &AppState,
    body: MultipartBody,
    folder: &Path,
) -> ApiResult<ReconJob> {
    let mut multipart = body.0;
    let form = match read_form(state, &mut multipart, folder).await {
        Ok(form) => form,
        Err(err) => {
            // Read the rest of the upload before responding: a client still sending gets
            // its connection reset otherwise, and loses the error response.
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
            return Err(err);
        }
    };
    let options = options_of_set(state, form.set).await?;
    let limits = *state.image_limits();
    let queue = state.recon().clone();
    blocking(move || queue.submit(form.inputs, options, limits)).await
}

/// Lists every reconstruction job, oldest first.
#[utoipa::path(
    get,
    path = "/api/recon/jobs",
    tag = "reconstruction",
    responses(
        (status = 200, description = "The jobs", body = ReconJobList),
        (status = 400, description = "A query parameter is given", body = ErrorBody),
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    params: QueryParams,
) -> ApiResult<Json<ReconJobList>> {
    params.only(&[])?;
    Ok(Json(ReconJobList {
        jobs: state.recon().list(),
    }))
}

/// Returns a reconstruction job: its status and progress, and its result or error once
/// it finished.
#[utoipa::path(
    get,
    path = "/api/recon/jobs/{id}",
    tag = "reconstruction",
    params(("id" = String, Path, description = "The job's id, as the submit returned it")),
    responses(
        (status = 200, description = "The job", body = ReconJob),
        (status = 400, description = "A query parameter is given", body = ErrorBody),
        (status = 404, description = "No job has this id", body = ErrorBody),
    )
)]
async fn get_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<Json<ReconJob>> {
    params.only(&[])?;
    Ok(Json(state.recon().get(&id)?))
}

/// Downloads an output file of a succeeded job: the models `model.glb`, `model.lod1.glb`,
/// ... (`model/gltf-binary`), the mesh `mesh.ply`, the points `dense.ply` and
/// `points.ply`, or `cameras.txt`, `images.txt` and `points3D.txt` of the COLMAP text
/// model.
#[utoipa::path(
    get,
    path = "/api/recon/jobs/{id}/files/{name}",
    tag = "reconstruction",
    params(
        ("id" = String, Path, description = "The job's id"),
        ("name" = String, Path, description = "A name from the job's `files`"),
    ),
    responses(
        (status = 200, description = "The file", content(
            (Vec<u8> = "model/gltf-binary"),
            (String = "text/plain"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 400, description = "A query parameter is given", body = ErrorBody),
        (status = 404, description = "No such job, or the job has no file of this name (yet)", body = ErrorBody),
        (status = 503, description = "The file cannot be read", body = ErrorBody),
    )
)]
async fn get_file(
    State(state): State<AppState>,
    ApiPath((id, name)): ApiPath<(String, String)>,
    params: QueryParams,
) -> ApiResult<Response> {
    params.only(&[])?;
    let queue = state.recon().clone();
    let file_name = name.clone();
    let bytes = blocking(move || {
        let path = queue.file(&id, &file_name)?;
        std::fs::read(&path).map_err(|err| Error::io("cannot read", path, err))
    })
    .await?;
    let content_type = content_type(&name);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The names come from the job's fixed list of outputs, so they are plain ASCII.
    if let Ok(disposition) = HeaderValue::try_from(format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok((headers, bytes).into_response())
}

/// The photos of an upload, written to disk, and the `parameterSet` field.
struct Upload {
    inputs: Vec<SfmInput>,
    set: Option<String>,
}

/// Reads every part of the form, writing each photo into `folder` as it arrives.
async fn read_form(
    state: &AppState,
    multipart: &mut axum::extract::Multipart,
    folder: &Path,
) -> ApiResult<Upload> {
    let max_images = state.recon().max_images();
    let max_bytes = usize::try_from(state.image_limits().max_encoded_bytes).unwrap_or(usize::MAX);
    let mut form = Upload {
        inputs: Vec::new(),
        set: None,
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == IMAGES_FIELD {
            let position = form.inputs.len() + 1;
            if position > max_images {
                return Err(ApiError::too_large(format!(
                    "the request has more than {max_images} `{IMAGES_FIELD}` fields \
                     (KAI_RECON_MAX_IMAGES); send at most {max_images} photos per job"
                )));
            }
            let photo_name = photo_name(field.file_name(), position);
            let bytes = read_limited(&mut field, max_bytes, || {
                format!(
                    "photo {position} ({photo_name}) is larger than {max_bytes} bytes \
                     (KAI_MAX_IMAGE_BYTES); send a smaller photo"
                )
            })
            .await?;
            let path = folder.join(format!("{position:04}"));
            form.inputs
                .push(write_photo(photo_name, path, bytes).await?);
        } else if name == SET_FIELD {
            if form.set.is_some() {
                return Err(ApiError::unprocessable(format!(
                    "field `{SET_FIELD}` is given more than once; send it once"
                )));
            }
            let bytes = read_limited(&mut field, MAX_SET_BYTES, || {
                format!("field `{SET_FIELD}` is larger than {MAX_SET_BYTES} bytes")
            })
            .await?;
            let text = String::from_utf8(bytes)
                .map_err(|_| ApiError::invalid(SET_FIELD, "is not UTF-8 text"))?;
            form.set = Some(text.trim().to_owned());
        } else {
            return Err(ApiError::unprocessable(format!(
                "unknown field `{name}`; this route accepts `{IMAGES_FIELD}` and `{SET_FIELD}`"
            )));
        }
    }
    if form.inputs.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "missing field `{IMAGES_FIELD}`: send each photo as a multipart file field named \
             `{IMAGES_FIELD}`"
        )));
    }
    Ok(form)
}

/// Returns the name of an uploaded photo: the file name the client sent without any
/// folders, else `image_NNN`.
fn photo_name(file_name: Option<&str>, position: usize) -> String {
    file_name
        .and_then(|name| name.rsplit(['/', '\\']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map_or_else(|| format!("image_{position:03}"), str::to_owned)
}

/// Writes one photo to `path` on the blocking pool.
async fn write_photo(name: String, path: PathBuf, bytes: Vec<u8>) -> ApiResult<SfmInput> {
    blocking(move || {
        std::fs::write(&path, bytes).map_err(|err| Error::io("cannot write", &path, err))?;
        Ok(SfmInput {
            name,
            source: ImageSource::Path(path),
        })
    })
    .await
}

/// Returns the media type of a job's output file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    if name.ends_with(".glb") {
        "model/gltf-binary"
    } else if name.ends_with(".txt") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// Returns the reconstruction options of the parameter set `set`, or of the default set.
pub async fn options_of_set(state: &AppState, set: Option<String>) -> ApiResult<PipelineOptions> {
    let registry = state.registry();
    blocking(move || {
        let resolution = registry.resolve(set.as_deref(), &[])?;
        pipeline_options(&resolution.values)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_names_drop_folders() {
        assert_eq!(photo_name(Some("IMG_1.jpg"), 1), "IMG_1.jpg");
        assert_eq!(photo_name(Some("trip/day 1/IMG_2.jpg"), 2), "IMG_2.jpg");
        assert_eq!(photo_name(Some("C:\\photos\\IMG_3.jpg"), 3), "IMG_3.jpg");
        assert_eq!(photo_name(Some(" "), 4), "image_004");
        assert_eq!(photo_name(Some("photos/"), 5), "image_005");
        assert_eq!(photo_name(None, 12), "image_012");
    }
}
