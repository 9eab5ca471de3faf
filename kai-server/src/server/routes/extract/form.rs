//! Multipart forms: photos in `image` file fields and options in text fields, each part
//! bounded in size while it is read, so an oversized photo is rejected before the rest of
//! it arrives.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::Multipart;
use axum::extract::multipart::Field;

use super::body::multipart_error;
use crate::server::error::{ApiError, ApiResult};

/// The name of the field that carries a photo.
const IMAGE_FIELD: &str = "image";

/// Default maximum size of a text field in bytes. Option values and hints are far
/// shorter.
const MAX_TEXT_FIELD_BYTES: usize = 16 * 1024;

/// Maximum number of values of a field that may repeat, such as `tag`.
const MAX_REPEATS: usize = 64;

/// The fields and limits of a route's form.
#[derive(Debug, Clone, Copy)]
pub struct FormSpec<'a> {
    /// Names of the text fields that the route reads, each at most once.
    pub fields: &'a [&'a str],
    /// Names of the text fields that may be given up to [`MAX_REPEATS`] times.
    pub repeated: &'a [&'a str],
    /// Maximum size of one text field in bytes.
    pub max_text_bytes: usize,
    /// Maximum number of photos per request.
    pub max_images: usize,
    /// Maximum size of one encoded photo in bytes (`KAI_MAX_IMAGE_BYTES`).
    pub max_image_bytes: u64,
}

impl<'a> FormSpec<'a> {
    /// Describes a form of one photo of at most `max_image_bytes` and the text fields
    /// `fields` of at most 16 KiB each.
    pub fn new(fields: &'a [&'a str], max_image_bytes: u64) -> Self {
        Self {
            fields,
            repeated: &[],
            max_text_bytes: MAX_TEXT_FIELD_BYTES,
            max_images: 1,
            max_image_bytes,
        }
    }
}

/// An uploaded file part.
#[derive(Debug, Clone)]
pub struct FilePart {
    /// The file name that the client sent, if any.
    pub file_name: Option<String>,
    /// The content.
    pub bytes: Bytes,
}

/// The parts of one multipart request: its photos in order and its text fields by name.
#[derive(Debug)]
pub struct Form {
    images: Vec<FilePart>,
    fields: HashMap<String, Vec<String>>,
}

impl Form {
    /// Reads every part of `multipart`, rejecting unknown fields, repeated fields, too many
    /// photos and parts over their size limit as soon as they arrive.
    ///
    /// # Errors
    ///
    /// Returns 413 for a part, a photo count or a repeat count over its limit. Returns 422
    /// for an unknown or repeated field, or a second photo where one is allowed. Returns
    /// 400 for a malformed body or a text field that is not UTF-8, and 413 for a body over
    /// the body limit.
    pub async fn read(mut multipart: Multipart, spec: &FormSpec<'_>) -> ApiResult<Self> {
        let form = Self::read_fields(&mut multipart, spec).await;
        if form.is_err() {
            // Read the rest of the upload before responding: a server that closes the
            // connection while the client still sends makes the client's TCP stack reset
            // it, and the client then loses the error response. The body limit bounds
            // what is read here.
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        }
        form
    }

    async fn read_fields(multipart: &mut Multipart, spec: &FormSpec<'_>) -> ApiResult<Self> {
        let mut form = Form {
            images: Vec::new(),
            fields: HashMap::new(),
        };
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == IMAGE_FIELD {
                form.read_image(&mut field, spec).await?;
            } else if spec.fields.contains(&name.as_str()) || spec.repeated.contains(&name.as_str())
            {
                form.read_text(name, &mut field, spec).await?;
            } else {
                return Err(unknown_field(&name, spec));
            }
        }
        Ok(form)
    }

    async fn read_image(&mut self, field: &mut Field<'_>, spec: &FormSpec<'_>) -> ApiResult<()> {
        if self.images.len() == spec.max_images {
            return Err(too_many_images(spec.max_images));
        }
        let position = self.images.len() + 1;
        let limit = usize::try_from(spec.max_image_bytes).unwrap_or(usize::MAX);
        let file_name = field.file_name().map(str::to_owned);
        let bytes = read_limited(field, limit, || {
            format!(
                "image {position} is larger than {limit} bytes (KAI_MAX_IMAGE_BYTES); send a \
                 smaller photo"
            )
        })
        .await?;
        self.images.push(FilePart {
            file_name,
            bytes: Bytes::from(bytes),
        });
        Ok(())
    }

    async fn read_text(
        &mut self,
        name: String,
        field: &mut Field<'_>,
        spec: &FormSpec<'_>,
    ) -> ApiResult<()> {
        let given = self.all(&name).len();
        if given > 0 && !spec.repeated.contains(&name.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "field `{name}` is given more than once; send it once"
            )));
        }
        if given == MAX_REPEATS {
            return Err(ApiError::too_large(format!(
                "field `{name}` is given more than {MAX_REPEATS} times; send at most \
                 {MAX_REPEATS}"
            )));
        }
        let limit = spec.max_text_bytes;
        let bytes = read_limited(field, limit, || {
            format!("field `{name}` is larger than {limit} bytes")
        })
        .await?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ApiError::invalid(&format!("field `{name}`"), "is not UTF-8 text"))?;
        self.fields.entry(name).or_default().push(text);
        Ok(())
    }

    /// Takes the request's one photo.
    ///
    /// # Errors
    ///
    /// Returns 422 naming the `image` field when it is missing or repeated.
    pub fn one_image(&mut self) -> ApiResult<Bytes> {
        match self.images.len() {
            0 => Err(missing_image()),
            1 => Ok(self.images.remove(0).bytes),
            _ => Err(too_many_images(1)),
        }
    }

    /// Takes the request's photos, at least one.
    ///
    /// # Errors
    ///
    /// Returns 422 naming the `image` field when there is none.
    pub fn images(&mut self) -> ApiResult<Vec<Bytes>> {
        if self.images.is_empty() {
            return Err(missing_image());
        }
        Ok(self.files().into_iter().map(|file| file.bytes).collect())
    }

    /// Takes the request's photos with their file names. There may be none.
    pub fn files(&mut self) -> Vec<FilePart> {
        std::mem::take(&mut self.images)
    }

    /// Returns the text field `name`, if the request has it.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.all(name).first().map(String::as_str)
    }

    /// Returns every value of the text field `name`, in the order sent.
    pub fn all(&self, name: &str) -> &[String] {
        self.fields.get(name).map_or(&[], Vec::as_slice)
    }

    /// Parses the text field `name` as a `T`, described to the client as `expected`.
    ///
    /// # Errors
    ///
    /// Returns 400 naming the field and its value when it does not parse.
    pub fn parse<T: FromStr>(&self, name: &str, expected: &str) -> ApiResult<Option<T>> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| {
            ApiError::invalid(name, format!("must be {expected}, got `{}`", shorten(text)))
        })
    }
}

/// Reads a part to its end, failing as soon as it passes `limit` bytes.
pub(crate) async fn read_limited(
    field: &mut Field<'_>,
    limit: usize,
    message: impl FnOnce() -> String,
) -> ApiResult<Vec<u8>> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if data.len() + chunk.len() > limit {
            return Err(ApiError::too_large(message()));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

fn unknown_field(name: &str, spec: &FormSpec<'_>) -> ApiError {
    let accepted: String = spec
        .fields
        .iter()
        .chain(spec.repeated)
        .map(|field| format!(", `{field}`"))
        .collect();
    ApiError::unprocessable(format!(
        "unknown field `{name}`; this route accepts `{IMAGE_FIELD}`{accepted}"
    ))
}

/// Builds a 422 for a second photo on a route that takes one, else a 413 over the photo
/// count.
fn too_many_images(max_images: usize) -> ApiError {
    if max_images == 1 {
        return ApiError::unprocessable(format!(
            "the request has more than one `{IMAGE_FIELD}` field; this route takes one photo"
        ));
    }
    ApiError::too_large(format!(
        "the request has more than {max_images} `{IMAGE_FIELD}` fields; send at most \
         {max_images} photos per request"
    ))
}

fn missing_image() -> ApiError {
    ApiError::unprocessable(format!(
        "missing field `{IMAGE_FIELD}`: send the photo as a multipart file field named \
         `{IMAGE_FIELD}`"
    ))
}

/// Returns `text` cut to a length that fits in an error message.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let head: String = text.chars().take(MAX_CHARS).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::{Request, StatusCode, header};

    use super::*;
    use crate::server::routes::extract::MultipartBody;

    const BOUNDARY: &str = "form-test-boundary";

    /// A part: the field name, the file name of a file part, and the content.
    type PartSpec<'a> = (&'a str, Option<&'a str>, &'a [u8]);

    fn body(parts: &[PartSpec<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file_name, content) in parts {
            let disposition = match file_name {
                Some(file) => format!("form-data; name=\"{name}\"; filename=\"{file}\""),
                None => format!("form-data; name=\"{name}\""),
            };
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    async fn read(parts: &[PartSpec<'_>], spec: &FormSpec<'_>) -> ApiResult<Form> {
        let request = Request::post("/")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body(parts)))
            .expect("valid request");
        let MultipartBody(multipart) = MultipartBody::from_request(request, &()).await?;
        Form::read(multipart, spec).await
    }

    fn rejection(result: ApiResult<Form>) -> (StatusCode, String) {
        let err = result.expect_err("the form is rejected");
        (err.status, err.message)
    }

    const TOP_K: &[&str] = &["topK"];

    #[tokio::test]
    async fn fields_and_photos_are_read() {
        let spec = FormSpec {
            repeated: &["tag"],
            max_images: 2,
            ..FormSpec::new(TOP_K, 100)
        };
        let parts: &[PartSpec<'_>] = &[
            ("image", Some("a.jpg"), b"first"),
            ("topK", None, b" 3 "),
            ("tag", None, b"red"),
            ("tag", None, b"wool"),
            ("image", None, b"second"),
        ];
        let mut form = read(parts, &spec).await.expect("a valid form");
        assert_eq!(form.text("topK"), Some(" 3 "));
        assert_eq!(
            form.parse::<usize>("topK", "a number").expect("a number"),
            Some(3)
        );
        assert_eq!(form.all("tag"), ["red", "wool"]);
        assert_eq!(form.text("hint"), None);
        let files = form.files();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].file_name.as_deref(), Some("a.jpg"));
        assert_eq!(files[0].bytes, "first");
        assert_eq!(files[1].file_name, None);
        assert_eq!(files[1].bytes, "second");
    }

    #[tokio::test]
    async fn unknown_and_repeated_fields_are_422() {
        let spec = FormSpec::new(TOP_K, 100);
        let (status, message) = rejection(read(&[("colour", None, b"red")], &spec).await);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("`colour`"), "{message}");
        assert!(message.contains("`image`, `topK`"), "{message}");

        let twice: &[PartSpec<'_>] = &[("topK", None, b"2"), ("topK", None, b"3")];
        let (status, message) = rejection(read(twice, &spec).await);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            message.contains("`topK` is given more than once"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn repeats_are_bounded() {
        let spec = FormSpec {
            repeated: &["tag"],
            ..FormSpec::new(&[], 100)
        };
        let tags: Vec<PartSpec<'_>> = vec![("tag", None, b"red"); MAX_REPEATS];
        let form = read(&tags, &spec).await.expect("the maximum is allowed");
        assert_eq!(form.all("tag").len(), MAX_REPEATS);

        let tags: Vec<PartSpec<'_>> = vec![("tag", None, b"red"); MAX_REPEATS + 1];
        let (status, message) = rejection(read(&tags, &spec).await);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(message.contains("`tag`"), "{message}");
    }

    #[tokio::test]
    async fn parts_over_their_limit_are_413() {
        let spec = FormSpec {
            max_text_bytes: 4,
            ..FormSpec::new(TOP_K, 10)
        };
        let photo = [0u8; 10];
        let form = read(&[("image", Some("a.jpg"), &photo)], &spec).await;
        assert!(form.is_ok(), "a photo of exactly the limit is allowed");

        let photo = [0u8; 11];
        let (status, message) = rejection(read(&[("image", Some("a.jpg"), &photo)], &spec).await);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(message.contains("KAI_MAX_IMAGE_BYTES"), "{message}");

        let (status, message) = rejection(read(&[("topK", None, b"12345")], &spec).await);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            message.contains("`topK` is larger than 4 bytes"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn photo_count_is_bounded() {
        let two: &[PartSpec<'_>] = &[("image", None, b"a"), ("image", None, b"b")];
        let (status, message) = rejection(read(two, &FormSpec::new(&[], 10)).await);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("takes one photo"), "{message}");

        let spec = FormSpec {
            max_images: 2,
            ..FormSpec::new(&[], 10)
        };
        let three: &[PartSpec<'_>] = &[
            ("image", None, b"a"),
            ("image", None, b"b"),
            ("image", None, b"c"),
        ];
        let (status, message) = rejection(read(three, &spec).await);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(message.contains("at most 2 photos"), "{message}");
    }

    #[tokio::test]
    async fn missing_photo_is_422() {
        let spec = FormSpec::new(TOP_K, 10);
        let mut form = read(&[("topK", None, b"3")], &spec)
            .await
            .expect("a valid form");
        let err = form.one_image().expect_err("no photo");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.message.contains("missing field `image`"),
            "{}",
            err.message
        );
        let err = form.images().expect_err("no photos");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(form.files().is_empty());
    }

    #[tokio::test]
    async fn bad_text_values_are_400() {
        let spec = FormSpec::new(TOP_K, 10);
        let form = read(&[("topK", None, b"three")], &spec)
            .await
            .expect("a valid form");
        let err = form
            .parse::<usize>("topK", "a whole number")
            .expect_err("not a number");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message
                .contains("topK: must be a whole number, got `three`"),
            "{}",
            err.message
        );

        let (status, message) = rejection(read(&[("topK", None, b"\xff\xfe")], &spec).await);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("not UTF-8"), "{message}");
    }
}
