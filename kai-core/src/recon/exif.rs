//! Focal length in pixels from a photo's EXIF metadata, the usual starting intrinsics of
//! structure from motion.
//!
//! Two EXIF 2.3 routes give a focal length in pixels:
//!
//! - `FocalLengthIn35mmFilm` (0xA405): the focal length a 35 mm film camera (a 36 mm wide
//!   frame) would need for the same field of view, so `f_px = f35 / 36 * max(width, height)`.
//!   This approximation matches the field of view across the long side exactly only when
//!   the aspect ratio is 3:2 like the film frame.
//! - `FocalLength` (0x920A, millimetres) times `FocalPlaneXResolution` (0xA20E, pixels per
//!   `FocalPlaneResolutionUnit`, 0xA210: inch unless that tag gives centimetre, millimetre
//!   or micrometre), rescaled from the recorded `PixelXDimension`/`PixelYDimension` to the
//!   decoded size when the photo was resized after capture.
//!
//! The first route wins when both are present. Anything absent, zero, not finite or
//! outside a plausible range gives `None`, so a caller falls back to
//! [`crate::recon::camera::Camera::prior`]. Malformed EXIF never fails the caller.

use std::io::{BufReader, Cursor};
use std::path::Path;

use ::exif::{Exif, In, Reader, Tag, Value};

use crate::error::{Error, Result};

/// Width of a 35 mm film frame in millimetres.
const FILM_WIDTH_MM: f64 = 36.0;

/// Plausible focal lengths as multiples of the longer image side: 0.1 is a field of view
/// of about 157 degrees across it (beyond ordinary rectilinear lenses), 30 about 2 degrees
/// (a 1000 mm lens on a full-frame camera). Values outside this range are rejected as corrupt.
const MIN_FOCAL_FACTOR: f64 = 0.1;
const MAX_FOCAL_FACTOR: f64 = 30.0;

/// Source tags of an EXIF focal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FocalLengthSource {
    /// `FocalLengthIn35mmFilm`.
    Equivalent35mm,
    /// `FocalLength` with `FocalPlaneXResolution` and `FocalPlaneResolutionUnit`.
    FocalPlaneResolution,
}

/// A focal length read from EXIF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExifFocalLength {
    /// Focal length in pixels of the decoded image.
    pub pixels: f64,
    /// The tags it was computed from.
    pub source: FocalLengthSource,
}

/// Reads the focal length from the EXIF of an encoded image (JPEG, TIFF, PNG, WebP or
/// HEIF) whose decoded size is `width` x `height` pixels. Returns `None` when the bytes
/// carry no usable EXIF focal length.
pub fn focal_length_from_bytes(bytes: &[u8], width: u32, height: u32) -> Option<ExifFocalLength> {
    let exif = read_exif(&mut Cursor::new(bytes))?;
    focal_length_from_exif(&exif, width, height)
}

/// Reads the focal length from the EXIF of the image file at `path`, reading only as far
/// as the metadata. Returns `Ok(None)` when the file carries no usable EXIF focal length,
/// and an error only when the file cannot be opened.
pub fn focal_length_from_file(
    path: &Path,
    width: u32,
    height: u32,
) -> Result<Option<ExifFocalLength>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let Some(exif) = read_exif(&mut BufReader::new(file)) else {
        return Ok(None);
    };
    Ok(focal_length_from_exif(&exif, width, height))
}

/// Computes the focal length from parsed EXIF for an image of `width` x `height` pixels.
pub fn focal_length_from_exif(exif: &Exif, width: u32, height: u32) -> Option<ExifFocalLength> {
    let long_side = f64::from(width.max(height));
    if long_side <= 0.0 {
        return None;
    }
    let plausible = |pixels: f64| {
        let factor = pixels / long_side;
        factor.is_finite() && (MIN_FOCAL_FACTOR..=MAX_FOCAL_FACTOR).contains(&factor)
    };

    let equivalent =
        number(exif, Tag::FocalLengthIn35mmFilm).map(|f35| f35 / FILM_WIDTH_MM * long_side);
    if let Some(pixels) = equivalent.filter(|&p| plausible(p)) {
        return Some(ExifFocalLength {
            pixels,
            source: FocalLengthSource::Equivalent35mm,
        });
    }

    focal_plane_pixels(exif, long_side)
        .filter(|&p| plausible(p))
        .map(|pixels| ExifFocalLength {
            pixels,
            source: FocalLengthSource::FocalPlaneResolution,
        })
}

/// Converts `FocalLength` to pixels through the focal-plane resolution, rescaled to
/// `long_side`.
fn focal_plane_pixels(exif: &Exif, long_side: f64) -> Option<f64> {
    let focal_mm = number(exif, Tag::FocalLength)?;
    let pixels_per_unit = number(exif, Tag::FocalPlaneXResolution)?;
    // EXIF 2.3 defines 2 (inch, the default when the tag is absent) and 3 (centimetre).
    // TIFF/EP adds 4 (millimetre) and 5 (micrometre), which some cameras write. 1 (no
    // absolute unit) cannot give millimetres.
    let unit_mm = match number(exif, Tag::FocalPlaneResolutionUnit)
        .map(|u| u as u32)
        .unwrap_or(2)
    {
        2 => 25.4,
        3 => 10.0,
        4 => 1.0,
        5 => 0.001,
        _ => return None,
    };
    let mut pixels = focal_mm * pixels_per_unit / unit_mm;
    // The resolution refers to the image as the camera recorded it, so a resized copy
    // scales the focal length with it.
    let recorded_x = number(exif, Tag::PixelXDimension).unwrap_or(0.0);
    let recorded_y = number(exif, Tag::PixelYDimension).unwrap_or(0.0);
    let recorded_long_side = recorded_x.max(recorded_y);
    if recorded_long_side >= 1.0 {
        pixels *= long_side / recorded_long_side;
    }
    (pixels.is_finite() && pixels > 0.0).then_some(pixels)
}

/// Parses the EXIF block of an image container, or returns `None` when there is none or
/// it cannot be parsed at all. Recoverable damage keeps the fields read before it.
fn read_exif<R: std::io::BufRead + std::io::Seek>(reader: &mut R) -> Option<Exif> {
    let mut exif_reader = Reader::new();
    exif_reader.continue_on_error(true);
    match exif_reader.read_from_container(reader) {
        Ok(exif) => Some(exif),
        Err(error) => error.distill_partial_result(|_ignored_errors| {}).ok(),
    }
}

/// Reads the first value of `tag` in the primary image's IFDs as a finite positive number.
fn number(exif: &Exif, tag: Tag) -> Option<f64> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let value = match &field.value {
        Value::Rational(values) => values.first().map(|r| r.to_f64()),
        Value::SRational(values) => values.first().map(|r| r.to_f64()),
        Value::Float(values) => values.first().map(|&v| f64::from(v)),
        Value::Double(values) => values.first().copied(),
        other => other.get_uint(0).map(f64::from),
    }?;
    (value.is_finite() && value > 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// A TIFF field value for the hand-built EXIF blocks below.
    #[derive(Clone, Copy)]
    enum Entry {
        Short(u16),
        Long(u32),
        Rational(u32, u32),
    }

    /// Builds a little-endian TIFF structure: IFD0 points to an Exif IFD holding
    /// `fields` (tag, value), with rationals stored after the IFD.
    fn exif_tiff(fields: &[(u16, Entry)]) -> Vec<u8> {
        let mut fields = fields.to_vec();
        fields.sort_by_key(|&(tag, _)| tag);
        let mut out = Vec::new();
        out.extend_from_slice(b"II*\0");
        out.extend_from_slice(&8u32.to_le_bytes());
        // IFD0: one entry, ExifIFDPointer (LONG), then no next IFD.
        let exif_ifd_offset = 8 + 2 + 12 + 4;
        out.extend_from_slice(&1u16.to_le_bytes());
        push_entry(&mut out, 0x8769, 4, 1, exif_ifd_offset);
        out.extend_from_slice(&0u32.to_le_bytes());

        let data_offset = exif_ifd_offset + 2 + 12 * fields.len() as u32 + 4;
        let mut data = Vec::new();
        out.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        for &(tag, entry) in &fields {
            match entry {
                Entry::Short(value) => push_entry(&mut out, tag, 3, 1, u32::from(value)),
                Entry::Long(value) => push_entry(&mut out, tag, 4, 1, value),
                Entry::Rational(numerator, denominator) => {
                    push_entry(&mut out, tag, 5, 1, data_offset + data.len() as u32);
                    data.extend_from_slice(&numerator.to_le_bytes());
                    data.extend_from_slice(&denominator.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    /// Appends one 12-byte IFD entry. A SHORT value sits in the low bytes of the value
    /// field, which little-endian order gives for free.
    fn push_entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }

    /// Encodes a 64x48 JPEG with the image crate and inserts an APP1 segment carrying
    /// `tiff` (if any) right after the start-of-image marker.
    fn jpeg_with_exif(tiff: Option<&[u8]>) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
        });
        let mut encoded = Cursor::new(Vec::new());
        picture
            .write_to(&mut encoded, image::ImageFormat::Jpeg)
            .expect("JPEG encoding of an RGB image");
        let jpeg = encoded.into_inner();
        let Some(tiff) = tiff else {
            return jpeg;
        };
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        let length = u16::try_from(2 + 6 + tiff.len()).expect("EXIF block fits a segment");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(tiff);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    const FOCAL_LENGTH: u16 = 0x920A;
    const PIXEL_X: u16 = 0xA002;
    const PIXEL_Y: u16 = 0xA003;
    const PLANE_X_RESOLUTION: u16 = 0xA20E;
    const PLANE_UNIT: u16 = 0xA210;
    const FOCAL_35MM: u16 = 0xA405;

    #[test]
    fn jpeg_encodes_and_decodes_with_exif() {
        let jpeg = jpeg_with_exif(Some(&exif_tiff(&[(FOCAL_35MM, Entry::Short(28))])));
        let decoded = image::load_from_memory(&jpeg).expect("the JPEG with EXIF still decodes");
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
    }

    #[test]
    fn equivalent_35mm_focal_length() {
        let jpeg = jpeg_with_exif(Some(&exif_tiff(&[(FOCAL_35MM, Entry::Short(28))])));
        let focal = focal_length_from_bytes(&jpeg, 4000, 3000).expect("focal length");
        assert_eq!(focal.source, FocalLengthSource::Equivalent35mm);
        assert!(
            (focal.pixels - 28.0 / 36.0 * 4000.0).abs() < 1e-9,
            "{focal:?}"
        );
        // Portrait orientation uses the same long side.
        let portrait = focal_length_from_bytes(&jpeg, 3000, 4000).expect("focal length");
        assert!((portrait.pixels - focal.pixels).abs() < 1e-9);
    }

    #[test]
    fn focal_plane_resolution_in_centimetres_rescaled() {
        // 4.2 mm lens, 6250 pixels per cm (a 6.4 mm wide sensor of 4000 pixels), recorded
        // at 4000x3000 and decoded at 2000x1500: 4.2 * 625 / 2 = 1312.5 pixels.
        let tiff = exif_tiff(&[
            (FOCAL_LENGTH, Entry::Rational(42, 10)),
            (PLANE_X_RESOLUTION, Entry::Rational(6250, 1)),
            (PLANE_UNIT, Entry::Short(3)),
            (PIXEL_X, Entry::Long(4000)),
            (PIXEL_Y, Entry::Short(3000)),
        ]);
        let focal = focal_length_from_bytes(&jpeg_with_exif(Some(&tiff)), 2000, 1500)
            .expect("focal length");
        assert_eq!(focal.source, FocalLengthSource::FocalPlaneResolution);
        assert!((focal.pixels - 1312.5).abs() < 1e-9, "{focal:?}");
    }

    #[test]
    fn focal_plane_unit_defaults_to_inch() {
        // 50 mm, 2540 pixels per inch = 100 pixels per mm: 5000 pixels, no recorded size.
        let tiff = exif_tiff(&[
            (FOCAL_LENGTH, Entry::Rational(50, 1)),
            (PLANE_X_RESOLUTION, Entry::Rational(2540, 1)),
        ]);
        let focal = focal_length_from_bytes(&jpeg_with_exif(Some(&tiff)), 6000, 4000)
            .expect("focal length");
        assert!((focal.pixels - 5000.0).abs() < 1e-9, "{focal:?}");
    }

    #[test]
    fn equivalent_35mm_wins_over_focal_plane() {
        let tiff = exif_tiff(&[
            (FOCAL_LENGTH, Entry::Rational(50, 1)),
            (PLANE_X_RESOLUTION, Entry::Rational(2540, 1)),
            (FOCAL_35MM, Entry::Short(36)),
        ]);
        let focal = focal_length_from_bytes(&jpeg_with_exif(Some(&tiff)), 6000, 4000)
            .expect("focal length");
        assert_eq!(focal.source, FocalLengthSource::Equivalent35mm);
        assert!((focal.pixels - 6000.0).abs() < 1e-9);
    }

    #[test]
    fn zero_35mm_falls_back_to_focal_plane() {
        let tiff = exif_tiff(&[
            (FOCAL_LENGTH, Entry::Rational(50, 1)),
            (PLANE_X_RESOLUTION, Entry::Rational(2540, 1)),
            (FOCAL_35MM, Entry::Short(0)),
        ]);
        let focal = focal_length_from_bytes(&jpeg_with_exif(Some(&tiff)), 6000, 4000)
            .expect("focal length");
        assert_eq!(focal.source, FocalLengthSource::FocalPlaneResolution);
    }

    #[test]
    fn unusable_values_give_none() {
        let cases: [(&str, Vec<(u16, Entry)>); 5] = [
            (
                "focal length alone",
                vec![(FOCAL_LENGTH, Entry::Rational(50, 1))],
            ),
            (
                "zero denominator",
                vec![
                    (FOCAL_LENGTH, Entry::Rational(50, 0)),
                    (PLANE_X_RESOLUTION, Entry::Rational(2540, 1)),
                ],
            ),
            (
                "unit without absolute size",
                vec![
                    (FOCAL_LENGTH, Entry::Rational(50, 1)),
                    (PLANE_X_RESOLUTION, Entry::Rational(2540, 1)),
                    (PLANE_UNIT, Entry::Short(1)),
                ],
            ),
            ("implausibly long", vec![(FOCAL_35MM, Entry::Short(60000))]),
            (
                "implausibly short",
                vec![
                    (FOCAL_LENGTH, Entry::Rational(1, 1000)),
                    (PLANE_X_RESOLUTION, Entry::Rational(1, 1)),
                ],
            ),
        ];
        for (name, fields) in cases {
            let jpeg = jpeg_with_exif(Some(&exif_tiff(&fields)));
            assert_eq!(focal_length_from_bytes(&jpeg, 4000, 3000), None, "{name}");
        }
    }

    #[test]
    fn missing_exif_and_non_images_give_none() {
        assert_eq!(focal_length_from_bytes(&jpeg_with_exif(None), 64, 48), None);
        assert_eq!(
            focal_length_from_bytes(b"not an image at all", 64, 48),
            None
        );
        assert_eq!(focal_length_from_bytes(&[], 64, 48), None);
        let jpeg = jpeg_with_exif(Some(&exif_tiff(&[(FOCAL_35MM, Entry::Short(28))])));
        assert_eq!(focal_length_from_bytes(&jpeg, 0, 0), None);
    }

    #[test]
    fn corrupted_exif_never_panics() {
        let tiff = exif_tiff(&[
            (FOCAL_LENGTH, Entry::Rational(42, 10)),
            (PLANE_X_RESOLUTION, Entry::Rational(6250, 1)),
            (PLANE_UNIT, Entry::Short(3)),
            (FOCAL_35MM, Entry::Short(28)),
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for round in 0..500 {
            let mut damaged = tiff.clone();
            if round % 5 == 0 {
                damaged.truncate(rng.random_range(0..tiff.len()));
            }
            for _ in 0..rng.random_range(1..6) {
                if damaged.is_empty() {
                    break;
                }
                let index = rng.random_range(0..damaged.len());
                damaged[index] = rng.random();
            }
            let jpeg = jpeg_with_exif(Some(&damaged));
            if let Some(focal) = focal_length_from_bytes(&jpeg, 4000, 3000) {
                assert!(
                    focal.pixels.is_finite() && focal.pixels >= 400.0 && focal.pixels <= 120_000.0
                );
            }
        }
    }

    #[test]
    fn reads_from_file() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("photo.jpg");
        let jpeg = jpeg_with_exif(Some(&exif_tiff(&[(FOCAL_35MM, Entry::Short(24))])));
        std::fs::write(&path, jpeg).expect("written");
        let focal = focal_length_from_file(&path, 3600, 2400)
            .expect("readable")
            .expect("focal");
        assert!((focal.pixels - 2400.0).abs() < 1e-9);

        let missing = focal_length_from_file(&dir.path().join("missing.jpg"), 10, 10).unwrap_err();
        assert_eq!(missing.kind(), crate::error::ErrorKind::Storage);
        assert!(missing.to_string().contains("missing.jpg"), "{missing}");
    }
}
