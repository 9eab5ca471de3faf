//! Decoding of encoded images into 8-bit RGB, bounded in encoded size and pixel count.
//!
//! The checks run from cheapest to most expensive: the encoded size, the format from the
//! magic bytes, the dimensions from the header, and only then the pixel data. A
//! decompression bomb (a small file whose header claims billions of pixels) is rejected
//! before any pixel buffer is allocated.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, Rgb};

use super::RgbImage;
use crate::error::{Error, Result};

const MAX_BYTES_VARIABLE: &str = "KAI_MAX_IMAGE_BYTES";
const MAX_PIXELS_VARIABLE: &str = "KAI_MAX_IMAGE_PIXELS";

/// Bytes per pixel of the widest colour type the decoders return (RGBA with f32 samples).
const MAX_BYTES_PER_PIXEL: u64 = 16;

/// Bounds on an image from outside, checked before its pixels are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Maximum size of the encoded image in bytes; `KAI_MAX_IMAGE_BYTES` sets it.
    pub max_encoded_bytes: u64,
    /// Maximum width times height of the decoded image; `KAI_MAX_IMAGE_PIXELS` sets it.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 50 MB encoded and 64 megapixels. A 64-megapixel image takes 192 MB as 8-bit RGB.
    fn default() -> Self {
        Self {
            max_encoded_bytes: 50_000_000,
            max_pixels: 64_000_000,
        }
    }
}

impl ImageLimits {
    /// Reads `KAI_MAX_IMAGE_BYTES` and `KAI_MAX_IMAGE_PIXELS`, keeping the default for
    /// each one that is unset or empty.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the variable when a value is not a positive
    /// whole number or not valid UTF-8.
    pub fn from_env() -> Result<Self> {
        let max_encoded_bytes = read_variable(MAX_BYTES_VARIABLE)?;
        let max_pixels = read_variable(MAX_PIXELS_VARIABLE)?;
        Self::from_settings(max_encoded_bytes.as_deref(), max_pixels.as_deref())
    }

    /// Builds limits from the values of `KAI_MAX_IMAGE_BYTES` and `KAI_MAX_IMAGE_PIXELS`,
    /// where `None` or an empty value keeps the default.
    ///
    /// # Errors
    ///
    /// As [`ImageLimits::from_env`].
    pub fn from_settings(
        max_encoded_bytes: Option<&str>,
        max_pixels: Option<&str>,
    ) -> Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            max_encoded_bytes: parse_limit(MAX_BYTES_VARIABLE, max_encoded_bytes)?
                .unwrap_or(defaults.max_encoded_bytes),
            max_pixels: parse_limit(MAX_PIXELS_VARIABLE, max_pixels)?
                .unwrap_or(defaults.max_pixels),
        })
    }

    /// Checks that both limits are positive; [`decode`] and [`open`] call it first.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the field that is zero.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_encoded_bytes", self.max_encoded_bytes),
            ("max_pixels", self.max_pixels),
        ] {
            if value == 0 {
                return Err(Error::invalid(
                    name,
                    "0 would reject every image; set a positive limit",
                ));
            }
        }
        Ok(())
    }

    /// Builds the image crate's allocation limit: what the widest colour type needs for
    /// `max_pixels`. Decoders also apply it to metadata they buffer while reading the
    /// header.
    fn allocation_limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_alloc = Some(self.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
        limits
    }

    /// Builds the image crate's full limits, a second guard behind the pixel check: no
    /// side can be longer than `max_pixels`.
    fn decoder_limits(&self) -> Limits {
        let max_side = u32::try_from(self.max_pixels).unwrap_or(u32::MAX);
        let mut limits = self.allocation_limits();
        limits.max_image_width = Some(max_side);
        limits.max_image_height = Some(max_side);
        limits
    }
}

/// The encoded formats that [`probe`] recognizes by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (JFIF or Exif).
    Jpeg,
    /// PNG.
    Png,
    /// WebP, lossy or lossless.
    WebP,
    /// Windows bitmap.
    Bmp,
    /// TIFF, including BigTIFF.
    Tiff,
    /// HEIC, or another HEIF image that is not AVIF; decoding needs the `heif` feature.
    Heic,
    /// AVIF; decoding needs the `heif` feature.
    Avif,
}

impl ImageFormat {
    /// Returns the format's usual name, such as "JPEG" or "WebP".
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::WebP => "WebP",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Heic => "HEIC",
            ImageFormat::Avif => "AVIF",
        }
    }

    /// Returns the image crate's format, or `None` for the formats that go through libheif.
    fn builtin(self) -> Option<::image::ImageFormat> {
        match self {
            ImageFormat::Jpeg => Some(::image::ImageFormat::Jpeg),
            ImageFormat::Png => Some(::image::ImageFormat::Png),
            ImageFormat::WebP => Some(::image::ImageFormat::WebP),
            ImageFormat::Bmp => Some(::image::ImageFormat::Bmp),
            ImageFormat::Tiff => Some(::image::ImageFormat::Tiff),
            ImageFormat::Heic | ImageFormat::Avif => None,
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The format and stored dimensions of an encoded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    /// The format, from the magic bytes.
    pub format: ImageFormat,
    /// The width in pixels as stored. Except for HEIC and AVIF, this is before the EXIF
    /// orientation is applied, so [`decode`] swaps width and height for a rotated photo.
    pub width: u32,
    /// The height in pixels as stored, with the same caveat as `width`.
    pub height: u32,
}

/// Reads the format and dimensions of an encoded image from its header, without decoding
/// any pixels.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] for empty input, an unrecognized format or a damaged
/// header, and [`Error::NotSupported`] for HEIC and AVIF in a build without the `heif`
/// feature.
pub fn probe(bytes: &[u8]) -> Result<ImageInfo> {
    check_not_empty(bytes)?;
    let format = sniff_format(bytes).ok_or_else(|| unrecognized_format(bytes))?;
    let (width, height) = match format.builtin() {
        Some(builtin) => ImageReader::with_format(Cursor::new(bytes), builtin)
            .into_dimensions()
            .map_err(|err| decoder_error(format, err))?,
        None => heif::dimensions(bytes, format)?,
    };
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// Decodes an encoded JPEG, PNG, WebP, BMP or TIFF image (and HEIC or AVIF with the
/// `heif` feature) into 8-bit RGB with the EXIF orientation applied.
///
/// Grey images get R = G = B, 16-bit and float samples are scaled to 8 bits, and an alpha
/// channel is composited over white. Dropping alpha instead would expose the colours under
/// fully transparent pixels, which are arbitrary, while product cut-outs are made to be
/// shown on white.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] for invalid `limits`, empty input, input over
/// `limits.max_encoded_bytes`, an unrecognized format, dimensions over `limits.max_pixels`
/// or zero, and truncated or corrupt data. Returns [`Error::NotSupported`] for HEIC and
/// AVIF in a build without the `heif` feature, and for format features the decoder lacks.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage> {
    limits.validate()?;
    check_not_empty(bytes)?;
    check_encoded_size(bytes.len() as u64, limits)?;
    let format = sniff_format(bytes).ok_or_else(|| unrecognized_format(bytes))?;
    match format.builtin() {
        Some(builtin) => decode_builtin(bytes, format, builtin, limits),
        // libheif applies the file's rotation, mirroring and cropping properties while
        // decoding, so no EXIF orientation is applied on top.
        None => heif::decode(bytes, format, limits).map(flatten_alpha),
    }
}

/// Reads and decodes an image file, checking its size before reading it.
///
/// # Errors
///
/// Returns [`Error::Io`] naming the path when the file cannot be opened or read, and
/// otherwise the errors of [`decode`], with the path in the error's name.
pub fn open(path: &Path, limits: &ImageLimits) -> Result<RgbImage> {
    limits.validate()?;
    read_bounded(path, limits)
        .and_then(|bytes| decode(&bytes, limits))
        .map_err(|err| name_path(err, path))
}

/// Reads an image file's bytes without decoding them, rejecting a file larger than
/// `limits.max_encoded_bytes` before reading it.
///
/// # Errors
///
/// Returns [`Error::Io`] naming the path when the file cannot be opened or read, and
/// [`Error::InvalidInput`] naming it when the file is over the limit.
pub fn read_file(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>> {
    read_bounded(path, limits).map_err(|err| name_path(err, path))
}

fn read_bounded(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|err| Error::io("cannot open", path, err))?;
    let metadata = file
        .metadata()
        .map_err(|err| Error::io("cannot read metadata of", path, err))?;
    check_encoded_size(metadata.len(), limits)?;

    // The file may grow after the metadata was read, so the read stops one byte past the
    // limit and `decode` rejects the result by its length.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limits.max_encoded_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| Error::io("cannot read", path, err))?;
    Ok(bytes)
}

fn name_path(err: Error, path: &Path) -> Error {
    match err {
        Error::InvalidInput { reason, .. } => {
            Error::invalid(format!("image {}", path.display()), reason)
        }
        other => other,
    }
}

fn decode_builtin(
    bytes: &[u8],
    format: ImageFormat,
    builtin: ::image::ImageFormat,
    limits: &ImageLimits,
) -> Result<RgbImage> {
    let mut decoder = read_header(bytes, format, builtin, limits)?;
    if format == ImageFormat::Jpeg {
        check_jpeg_end(bytes)?;
    }
    let orientation = read_orientation(&mut decoder, format);
    let image = DynamicImage::from_decoder(decoder).map_err(|err| decoder_error(format, err))?;
    Ok(apply_orientation(flatten_alpha(image), orientation))
}

/// Reads the header and checks the dimensions, returning a decoder that has not yet
/// allocated the pixel buffer.
fn read_header<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    builtin: ::image::ImageFormat,
    limits: &ImageLimits,
) -> Result<impl ImageDecoder + 'a> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), builtin);
    // The width and height limits are set only after the pixel check, so that an
    // oversized image gets the message that names its dimensions.
    reader.limits(limits.allocation_limits());
    let mut decoder = reader
        .into_decoder()
        .map_err(|err| decoder_error(format, err))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    decoder
        .set_limits(limits.decoder_limits())
        .map_err(|err| decoder_error(format, err))?;
    Ok(decoder)
}

/// Returns the EXIF orientation, or no transformation when the metadata cannot be read:
/// the pixels are still valid, so a damaged Exif block is no reason to reject the image.
fn read_orientation(decoder: &mut impl ImageDecoder, format: ImageFormat) -> Orientation {
    decoder.orientation().unwrap_or_else(|err| {
        tracing::warn!(%format, error = %err, "ignoring the unreadable EXIF orientation");
        Orientation::NoTransforms
    })
}

fn apply_orientation(image: RgbImage, orientation: Orientation) -> RgbImage {
    if orientation == Orientation::NoTransforms {
        return image;
    }
    let mut image = DynamicImage::ImageRgb8(image);
    image.apply_orientation(orientation);
    image.into_rgb8()
}

/// Converts any colour type to 8-bit RGB, compositing an alpha channel over white.
fn flatten_alpha(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (target, source) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [red, green, blue, alpha] = source.0;
        *target = Rgb([red, green, blue].map(|channel| over_white(channel, alpha)));
    }
    rgb
}

/// Blends one 8-bit channel with straight (not premultiplied) alpha over white, rounding
/// to nearest.
fn over_white(channel: u8, alpha: u8) -> u8 {
    let alpha = u32::from(alpha);
    let blended = u32::from(channel) * alpha + 255 * (255 - alpha);
    // At most 255 * 255, so the quotient fits in a u8.
    u8::try_from((blended + 127) / 255).unwrap_or(u8::MAX)
}

fn check_not_empty(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::invalid("image", "image is empty (0 bytes)"));
    }
    Ok(())
}

fn check_encoded_size(size: u64, limits: &ImageLimits) -> Result<()> {
    if size > limits.max_encoded_bytes {
        return Err(Error::invalid(
            "image",
            format!(
                "image is {size} bytes, over the limit of {} bytes; raise \
                 {MAX_BYTES_VARIABLE} to accept larger files",
                limits.max_encoded_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks the dimensions from the header, before any pixel buffer is allocated.
fn check_dimensions(width: u32, height: u32, limits: &ImageLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::invalid(
            "image",
            format!(
                "image is {width} x {height} pixels ({pixels} pixels), over the limit of {} \
                 pixels; raise {MAX_PIXELS_VARIABLE} to accept larger images",
                limits.max_pixels
            ),
        ));
    }
    if pixels == 0 {
        return Err(Error::invalid(
            "image",
            format!("image is {width} x {height} pixels; width and height must be at least 1"),
        ));
    }
    Ok(())
}

/// Rejects a JPEG whose scan data has no end-of-image marker (FF D9) after it.
///
/// The JPEG decoder of image 0.25.10 runs zune-jpeg in its lenient mode, which fills the
/// missing part of a file cut short with grey and reports no error. Entropy-coded data
/// never contains FF D9, so the marker's absence after the first scan means the file is
/// truncated. Data appended after the marker, such as the video of a motion photo, does
/// not matter.
fn check_jpeg_end(bytes: &[u8]) -> Result<()> {
    if let Some(scan) = first_scan_offset(bytes)
        && !bytes[scan..].windows(2).any(|pair| pair == [0xFF, 0xD9])
    {
        return Err(Error::invalid(
            "image",
            "truncated or corrupt JPEG: the end-of-image marker after the scan data is missing",
        ));
    }
    Ok(())
}

/// Returns the offset just past the first start-of-scan (SOS) segment header, by walking
/// the marker segments from the start of the file, which skips Exif thumbnails and their
/// own markers. Returns `None` when the headers do not parse, and the decoder then reports
/// the damage.
fn first_scan_offset(bytes: &[u8]) -> Option<usize> {
    const START_OF_SCAN: u8 = 0xDA;
    // Past the start-of-image marker FF D8.
    let mut position = 2;
    loop {
        // Any marker may be preceded by 0xFF fill bytes.
        while bytes.get(position..position + 2) == Some(&[0xFF, 0xFF]) {
            position += 1;
        }
        let [0xFF, marker, length_high, length_low] = *bytes.get(position..position + 4)? else {
            return None;
        };
        // The segment length counts its own two bytes but not the marker.
        let end = position + 2 + usize::from(u16::from_be_bytes([length_high, length_low]));
        if marker == START_OF_SCAN {
            return (end <= bytes.len()).then_some(end);
        }
        position = end;
    }
}

/// Identifies the format from the magic bytes at the start of `bytes`.
fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    const SIGNATURES: [(&[u8], ImageFormat); 8] = [
        (b"\xFF\xD8\xFF", ImageFormat::Jpeg),
        (b"\x89PNG\r\n\x1A\n", ImageFormat::Png),
        (b"II*\0", ImageFormat::Tiff),
        (b"MM\0*", ImageFormat::Tiff),
        // BigTIFF.
        (b"II+\0", ImageFormat::Tiff),
        (b"MM\0+", ImageFormat::Tiff),
        (b"BM", ImageFormat::Bmp),
        (b"RIFF", ImageFormat::WebP),
    ];
    if let Some(&(_, format)) = SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        // RIFF is a container for WAV and AVI too; WebP has its own tag at offset 8.
        return (format != ImageFormat::WebP || bytes.get(8..12) == Some(b"WEBP"))
            .then_some(format);
    }
    sniff_heif(bytes)
}

/// Identifies HEIC and AVIF from the brands of the leading ISO-BMFF `ftyp` box.
///
/// The major brand decides when it is specific. The generic HEIF brands `mif1` and `msf1`
/// appear in both formats, so for them the compatible brands decide, and AVIF wins when
/// an AVIF brand is listed.
fn sniff_heif(bytes: &[u8]) -> Option<ImageFormat> {
    const HEIC_BRANDS: [&[u8]; 7] = [
        b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs",
    ];
    const AVIF_BRANDS: [&[u8]; 2] = [b"avif", b"avis"];
    const GENERIC_HEIF_BRANDS: [&[u8]; 2] = [b"mif1", b"msf1"];

    let brands = ftyp_brands(bytes)?;
    let major = brands.first()?;
    if AVIF_BRANDS.contains(major) {
        return Some(ImageFormat::Avif);
    }
    if HEIC_BRANDS.contains(major) {
        return Some(ImageFormat::Heic);
    }
    if brands.iter().any(|brand| AVIF_BRANDS.contains(brand)) {
        return Some(ImageFormat::Avif);
    }
    brands
        .iter()
        .any(|brand| HEIC_BRANDS.contains(brand) || GENERIC_HEIF_BRANDS.contains(brand))
        .then_some(ImageFormat::Heic)
}

/// Returns the major brand followed by the compatible brands of a leading `ftyp` box.
///
/// The box is a 32-bit big-endian size, `ftyp`, the major brand and a 32-bit minor
/// version, followed by the compatible brands up to the end of the box.
fn ftyp_brands(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    // Size 0 means the box runs to the end of the file. Size 1 announces a 64-bit size
    // that no HEIF writer uses for `ftyp`, so it is treated as unrecognized.
    let end = match size {
        0 => bytes.len(),
        1 => return None,
        size => usize::try_from(size).ok()?.min(bytes.len()),
    };
    let major = bytes.get(8..12)?;
    let compatible = bytes.get(16..end).unwrap_or_default().chunks_exact(4);
    Some(std::iter::once(major).chain(compatible).collect())
}

fn unrecognized_format(bytes: &[u8]) -> Error {
    let head: Vec<String> = bytes
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02X}"))
        .collect();
    let supported = if cfg!(feature = "heif") {
        "JPEG, PNG, WebP, BMP, TIFF, HEIC and AVIF"
    } else {
        "JPEG, PNG, WebP, BMP and TIFF, plus HEIC and AVIF in builds with the `heif` feature"
    };
    Error::invalid(
        "image",
        format!(
            "unrecognized image format (first bytes {}); the supported formats are {supported}",
            head.join(" ")
        ),
    )
}

fn decoder_error(format: ImageFormat, err: ImageError) -> Error {
    match err {
        ImageError::Limits(err) => Error::invalid(
            "image",
            format!(
                "{format} image exceeds the decoder limits derived from {MAX_PIXELS_VARIABLE}: \
                 {err}; raise {MAX_PIXELS_VARIABLE} to accept larger images"
            ),
        ),
        ImageError::Unsupported(err) => Error::NotSupported(format!(
            "{format} image uses a feature that the decoder lacks: {err}"
        )),
        other => Error::invalid("image", format!("truncated or corrupt {format}: {other}")),
    }
}

/// Reads a limit from the environment, treating an unset variable as `None`.
fn read_variable(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(value)) => Err(Error::invalid(
            name,
            format!("{value:?} is not valid UTF-8; set a positive whole number"),
        )),
    }
}

/// Parses a positive whole number from the variable `name`; `None` or an empty value is
/// `Ok(None)`, as for the other `KAI_*` variables.
fn parse_limit(name: &str, value: Option<&str>) -> Result<Option<u64>> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    match value.parse::<u64>() {
        Ok(0) => Err(Error::invalid(
            name,
            "`0` would reject every image; set a positive whole number or unset it for the default",
        )),
        Ok(limit) => Ok(Some(limit)),
        Err(_) => Err(Error::invalid(
            name,
            format!("`{value}` is not a positive whole number, such as 50000000"),
        )),
    }
}

#[cfg(feature = "heif")]
mod heif {
    //! HEIC and AVIF through the system's libheif, which decodes HEVC and AV1 with the
    //! codecs that it was built with.

    use ::image::{DynamicImage, ImageBuffer};
    use libheif_rs::{ColorSpace, HeifContext, HeifError, HeifErrorCode, LibHeif, RgbChroma};

    use super::{ImageFormat, ImageLimits, check_dimensions};
    use crate::error::{Error, Result};

    /// Returns the dimensions of the primary image after its rotation and cropping.
    pub(super) fn dimensions(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32)> {
        let context = HeifContext::read_from_bytes(bytes).map_err(|err| heif_error(format, err))?;
        let handle = context
            .primary_image_handle()
            .map_err(|err| heif_error(format, err))?;
        Ok((handle.width(), handle.height()))
    }

    /// Decodes the primary image with its rotation, mirroring and cropping applied, as
    /// 8-bit RGB or, when it has an alpha channel, 8-bit RGBA.
    pub(super) fn decode(
        bytes: &[u8],
        format: ImageFormat,
        limits: &ImageLimits,
    ) -> Result<DynamicImage> {
        let context = HeifContext::read_from_bytes(bytes).map_err(|err| heif_error(format, err))?;
        let handle = context
            .primary_image_handle()
            .map_err(|err| heif_error(format, err))?;
        check_dimensions(handle.width(), handle.height(), limits)?;

        let has_alpha = handle.has_alpha_channel();
        let chroma = if has_alpha {
            RgbChroma::Rgba
        } else {
            RgbChroma::Rgb
        };
        let image = LibHeif::new()
            .decode(&handle, ColorSpace::Rgb(chroma), None)
            .map_err(|err| heif_error(format, err))?;
        let planes = image.planes();
        let plane = planes.interleaved.ok_or_else(|| {
            Error::Internal(format!(
                "libheif returned no interleaved plane for {format}"
            ))
        })?;

        let channels: usize = if has_alpha { 4 } else { 3 };
        let row_bytes = plane.width as usize * channels;
        // Rows may be padded, so each one is copied without the bytes past `row_bytes`.
        let mut pixels = Vec::with_capacity(row_bytes * plane.height as usize);
        for row in plane.data.chunks(plane.stride).take(plane.height as usize) {
            pixels.extend_from_slice(&row[..row_bytes]);
        }
        let buffer_error = || {
            Error::Internal(format!(
                "libheif returned a short pixel buffer for {format}"
            ))
        };
        Ok(if has_alpha {
            DynamicImage::ImageRgba8(
                ImageBuffer::from_raw(plane.width, plane.height, pixels)
                    .ok_or_else(buffer_error)?,
            )
        } else {
            DynamicImage::ImageRgb8(
                ImageBuffer::from_raw(plane.width, plane.height, pixels)
                    .ok_or_else(buffer_error)?,
            )
        })
    }

    fn heif_error(format: ImageFormat, err: HeifError) -> Error {
        match err.code {
            HeifErrorCode::UnsupportedFeature
            | HeifErrorCode::UnsupportedFileType
            | HeifErrorCode::DecoderPluginError => Error::NotSupported(format!(
                "{format} image needs a libheif feature or codec that this system lacks: {}",
                err.message
            )),
            _ => Error::invalid(
                "image",
                format!("truncated or corrupt {format}: {}", err.message),
            ),
        }
    }
}

#[cfg(not(feature = "heif"))]
mod heif {
    //! Stand-ins that reject HEIC and AVIF in builds without the `heif` feature.

    use ::image::DynamicImage;

    use super::{ImageFormat, ImageLimits};
    use crate::error::{Error, Result};

    pub(super) fn dimensions(_bytes: &[u8], format: ImageFormat) -> Result<(u32, u32)> {
        Err(not_built(format))
    }

    pub(super) fn decode(
        _bytes: &[u8],
        format: ImageFormat,
        _limits: &ImageLimits,
    ) -> Result<DynamicImage> {
        Err(not_built(format))
    }

    fn not_built(format: ImageFormat) -> Error {
        Error::NotSupported(format!(
            "{format} images need kai built with the `heif` feature (libheif)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32::try_from(size).unwrap().to_be_bytes());
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            bytes.extend_from_slice(*brand);
        }
        // The `meta` box that follows in a real file.
        bytes.extend_from_slice(b"\0\0\0\x08meta");
        bytes
    }

    #[test]
    fn sniff_recognizes_magic_bytes() {
        let cases: [(&[u8], ImageFormat); 7] = [
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", ImageFormat::Jpeg),
            (b"\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR", ImageFormat::Png),
            (b"RIFF\x24\0\0\0WEBPVP8L", ImageFormat::WebP),
            (b"BM\x36\0\0\0", ImageFormat::Bmp),
            (b"II*\0\x08\0\0\0", ImageFormat::Tiff),
            (b"MM\0*\0\0\0\x08", ImageFormat::Tiff),
            (b"II+\0\x08\0\0\0", ImageFormat::Tiff),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_format(bytes), Some(expected), "{bytes:02X?}");
        }
    }

    #[test]
    fn sniff_rejects_other_data() {
        let cases: [&[u8]; 6] = [
            b"GIF89a\x01\0\x01\0",
            b"RIFF\x24\0\0\0WAVEfmt ",
            b"hello, world",
            b"\xFF\xD8",
            &[0x42],
            b"\0\0\0\x18ftypisom\0\0\0\0isomavc1",
        ];
        for bytes in cases {
            assert_eq!(sniff_format(bytes), None, "{bytes:02X?}");
        }
    }

    #[test]
    fn sniff_heif_brands() {
        let cases = [
            (ftyp(b"heic", &[b"mif1", b"heic"]), ImageFormat::Heic),
            (ftyp(b"heix", &[b"mif1"]), ImageFormat::Heic),
            (ftyp(b"hevc", &[b"msf1"]), ImageFormat::Heic),
            (ftyp(b"mif1", &[b"heic"]), ImageFormat::Heic),
            (ftyp(b"mif1", &[b"mif1"]), ImageFormat::Heic),
            (ftyp(b"msf1", &[]), ImageFormat::Heic),
            (ftyp(b"avif", &[b"mif1", b"miaf"]), ImageFormat::Avif),
            (ftyp(b"avis", &[b"msf1"]), ImageFormat::Avif),
            (ftyp(b"mif1", &[b"miaf", b"avif"]), ImageFormat::Avif),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_format(&bytes), Some(expected), "{bytes:02X?}");
        }
    }

    #[test]
    fn sniff_ignores_brands_past_ftyp_box() {
        // The box size covers only the major brand and minor version, so the `avif` that
        // follows belongs to the next box.
        let mut bytes = b"\0\0\0\x10ftypmif1\0\0\0\0".to_vec();
        bytes.extend_from_slice(b"avif");
        assert_eq!(sniff_format(&bytes), Some(ImageFormat::Heic));
    }

    #[test]
    fn sniff_rejects_64_bit_ftyp_size() {
        let bytes = b"\0\0\0\x01ftypheic\0\0\0\0\0\0\0\x18";
        assert_eq!(sniff_format(bytes), None);
    }

    #[test]
    fn format_names() {
        assert_eq!(ImageFormat::Jpeg.name(), "JPEG");
        assert_eq!(ImageFormat::WebP.name(), "WebP");
        assert_eq!(ImageFormat::Heic.to_string(), "HEIC");
    }

    #[test]
    fn parse_limit_unset_and_empty() {
        assert_eq!(parse_limit("KAI_X", None).unwrap(), None);
        assert_eq!(parse_limit("KAI_X", Some("")).unwrap(), None);
        assert_eq!(parse_limit("KAI_X", Some("  ")).unwrap(), None);
    }

    #[test]
    fn parse_limit_accepts_whole_numbers() {
        assert_eq!(parse_limit("KAI_X", Some("1")).unwrap(), Some(1));
        assert_eq!(parse_limit("KAI_X", Some(" 2000 ")).unwrap(), Some(2000));
    }

    #[test]
    fn parse_limit_rejects_bad_values() {
        for value in ["abc", "-5", "1.5", "50MB", "1e6", "99999999999999999999"] {
            let err = parse_limit("KAI_MAX_IMAGE_BYTES", Some(value)).unwrap_err();
            let message = err.to_string();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(message.contains("KAI_MAX_IMAGE_BYTES"), "{message}");
            assert!(message.contains(value), "{message}");
        }
    }

    #[test]
    fn parse_limit_rejects_zero() {
        let message = parse_limit("KAI_MAX_IMAGE_PIXELS", Some("0"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("KAI_MAX_IMAGE_PIXELS"), "{message}");
        assert!(message.contains("`0`"), "{message}");
    }

    #[test]
    fn limits_from_settings() {
        let limits = ImageLimits::from_settings(Some("1000"), None).unwrap();
        assert_eq!(limits.max_encoded_bytes, 1000);
        assert_eq!(limits.max_pixels, 64_000_000);
        let limits = ImageLimits::from_settings(Some(""), Some("20")).unwrap();
        assert_eq!(limits.max_encoded_bytes, 50_000_000);
        assert_eq!(limits.max_pixels, 20);
    }

    #[test]
    fn limits_validate_rejects_zero() {
        let limits = ImageLimits {
            max_pixels: 0,
            ..ImageLimits::default()
        };
        let message = limits.validate().unwrap_err().to_string();
        assert!(message.contains("max_pixels"), "{message}");
        assert!(ImageLimits::default().validate().is_ok());
    }

    #[test]
    fn check_dimensions_rejects_zero_and_excess() {
        let limits = ImageLimits::default();
        let message = check_dimensions(0, 10, &limits).unwrap_err().to_string();
        assert!(message.contains("0 x 10 pixels"), "{message}");
        let message = check_dimensions(64_000_001, 1, &limits)
            .unwrap_err()
            .to_string();
        assert!(message.contains("64000001 x 1 pixels"), "{message}");
        assert!(check_dimensions(8000, 8000, &limits).is_ok());
    }

    #[test]
    fn over_white_blends() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(200, 255), 200);
        assert_eq!(over_white(0, 128), 127);
        assert_eq!(over_white(255, 77), 255);
    }

    #[test]
    fn first_scan_offset_skips_segments() {
        // SOI, an APP1 segment whose payload contains SOS and EOI markers, then SOS.
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xDA, 0xFF, 0xD9];
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xDA, 0x00, 0x04, 0x01, 0x02, 0x33]);
        assert_eq!(first_scan_offset(&bytes), Some(bytes.len() - 1));
        assert!(check_jpeg_end(&bytes).is_err());
        bytes.extend_from_slice(&[0xFF, 0xD9]);
        assert!(check_jpeg_end(&bytes).is_ok());
    }

    #[test]
    fn first_scan_offset_needs_valid_segments() {
        assert_eq!(
            first_scan_offset(&[0xFF, 0xD8, 0x00, 0x01, 0x02, 0x03]),
            None
        );
        assert_eq!(first_scan_offset(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), None);
    }
}
