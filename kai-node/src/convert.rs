//! Conversions of JS arguments. Images come from Buffers, Uint8Arrays or path strings,
//! and every other argument goes through its JSON form and serde. A wrong type or an unknown
//! option is then an `InvalidInput` error that names the argument, as in the REST API.

use std::path::PathBuf;

use kai_core::Error;
use kai_core::catalog::{MAX_IMAGES, UploadedImage};
use kai_core::image::{ImageLimits, RgbImage};
use napi::Either;
use napi::bindgen_prelude::{FromNapiValue, Object, Uint8Array, Unknown};
use serde::de::DeserializeOwned;

/// The accepted types of an image argument, for error messages.
const IMAGE_TYPES: &str = "must be a Buffer or Uint8Array of an encoded image, or a path string";

/// Converts a required argument `name` from its JSON form.
pub fn from_js<T: DeserializeOwned>(name: &str, value: Unknown<'_>) -> kai_core::Result<T> {
    let json = serde_json::Value::from_unknown(value).map_err(|err| not_json(name, &err))?;
    from_json(name, json)
}

/// Converts an optional argument `name`, where `undefined` or `null` gives the default.
pub fn options<T: DeserializeOwned + Default>(
    name: &str,
    value: Option<Unknown<'_>>,
) -> kai_core::Result<T> {
    match value {
        Some(value) => from_js(name, value),
        None => Ok(T::default()),
    }
}

/// Deserializes `json` into `T`, naming `name` in the error.
pub fn from_json<T: DeserializeOwned>(name: &str, json: serde_json::Value) -> kai_core::Result<T> {
    serde_json::from_value(json).map_err(|err| Error::invalid(name, err.to_string()))
}

fn not_json(name: &str, err: &napi::Error) -> Error {
    // napi-rs names its serde type, as in "undefined cannot be represented as a
    // serde_json::Value", which means nothing to a JavaScript caller.
    let reason = err.reason.replace(
        "cannot be represented as a serde_json::Value",
        "is not plain data",
    );
    Error::invalid(
        name,
        format!("{reason}; pass objects, arrays, strings, finite numbers or booleans"),
    )
}

/// Splits the object argument `name` into the binary field `field`, which JSON cannot
/// carry, and the other fields as JSON. `undefined` or `null` gives no fields.
pub fn split_field<'env>(
    name: &str,
    value: Option<Unknown<'env>>,
    field: &str,
) -> kai_core::Result<(serde_json::Value, Option<Unknown<'env>>)> {
    let Some(value) = value else {
        return Ok((serde_json::Value::Object(serde_json::Map::new()), None));
    };
    // `Object.keys` throws on null and non-objects, and that exception would escape as a
    // synchronous TypeError instead of the rejected Promise callers expect.
    if !matches!(value.get_type(), Ok(napi::ValueType::Object)) {
        return Err(Error::invalid(name, "must be an object"));
    }
    let object =
        Object::from_unknown(value).map_err(|_| Error::invalid(name, "must be an object"))?;
    let keys = Object::keys(&object).map_err(|err| not_json(name, &err))?;
    let mut fields = serde_json::Map::new();
    let mut binary = None;
    for key in keys {
        let item: Option<Unknown<'env>> = object
            .get(&key)
            .map_err(|err| not_json(&format!("{name}.{key}"), &err))?;
        let Some(item) = item else {
            continue;
        };
        if key == field {
            binary = Some(item);
            continue;
        }
        let json = serde_json::Value::from_unknown(item)
            .map_err(|err| not_json(&format!("{name}.{key}"), &err))?;
        fields.insert(key, json);
    }
    Ok((serde_json::Value::Object(fields), binary))
}

/// An image argument before decoding.
#[derive(Debug)]
pub enum ImageSource {
    /// A file to open.
    Path(PathBuf),
    /// Encoded bytes (JPEG, PNG, …), copied from the caller's buffer so that JS may
    /// change the buffer while the image decodes.
    Bytes(Vec<u8>),
}

impl ImageSource {
    /// Reads the image argument `name`.
    pub fn from_js(name: &str, value: Unknown<'_>) -> kai_core::Result<Self> {
        match Either::<String, Uint8Array>::from_unknown(value) {
            Ok(Either::A(path)) => Ok(Self::Path(PathBuf::from(path))),
            Ok(Either::B(bytes)) => Ok(Self::Bytes(bytes.to_vec())),
            Err(_) => Err(Error::invalid(name, IMAGE_TYPES)),
        }
    }

    /// Reads an array of images. An error names the image as `images[INDEX]`.
    pub fn all_from_js(value: Unknown<'_>) -> kai_core::Result<Vec<Self>> {
        let items = Vec::<Unknown<'_>>::from_unknown(value)
            .map_err(|_| Error::invalid("images", "must be an array of images"))?;
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| Self::from_js(&format!("images[{index}]"), item))
            .collect()
    }

    /// Decodes the image within `limits`.
    pub fn load(self, limits: &ImageLimits) -> kai_core::Result<RgbImage> {
        match self {
            Self::Path(path) => kai_core::image::open(&path, limits),
            Self::Bytes(bytes) => kai_core::image::decode(&bytes, limits),
        }
    }
}

/// Decodes images in order. An error names the image by its position.
pub fn load_all(
    sources: Vec<ImageSource>,
    limits: &ImageLimits,
) -> kai_core::Result<Vec<RgbImage>> {
    sources
        .into_iter()
        .enumerate()
        .map(|(index, source)| source.load(limits).map_err(|err| name_image(err, index)))
        .collect()
}

/// Names the image of an [`Error::InvalidInput`] about `image` (or `image PATH`) by its
/// position in the caller's array, as `images[INDEX]`. Other errors already name their
/// file or are not about one image, so they pass through.
pub fn name_image(err: Error, index: usize) -> Error {
    match err {
        Error::InvalidInput { name, reason } => match name.strip_prefix("image") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                Error::invalid(format!("images[{index}]{rest}"), reason)
            }
            _ => Error::InvalidInput { name, reason },
        },
        other => other,
    }
}

/// Reads the images of a create or replace as uploads, checking their number before
/// any file is read. The core decodes them before it writes anything.
pub fn uploads(
    sources: Vec<ImageSource>,
    limits: &ImageLimits,
) -> kai_core::Result<Vec<UploadedImage>> {
    if sources.len() > MAX_IMAGES {
        return Err(Error::invalid(
            "images",
            format!(
                "{} images given, over the limit of {MAX_IMAGES} per material",
                sources.len()
            ),
        ));
    }
    sources
        .into_iter()
        .enumerate()
        .map(|(index, source)| {
            let label = format!("images[{index}]");
            match source {
                ImageSource::Path(path) => Ok(UploadedImage {
                    bytes: kai_core::image::read_file(&path, limits)
                        .map_err(|err| name_image(err, index))?,
                    name: format!("{label} ({})", path.display()),
                }),
                ImageSource::Bytes(bytes) => Ok(UploadedImage { name: label, bytes }),
            }
        })
        .collect()
}
