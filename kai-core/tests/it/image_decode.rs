//! Image decoding: limits, damaged input, colour conversion, EXIF orientation and each
//! format, on the committed photos and on images encoded in the tests.

use std::io::Cursor;

use ::image::{
    DynamicImage, ImageBuffer, ImageFormat as EncodedFormat, Luma, LumaA, Rgb, Rgba, RgbaImage,
};
use kai_core::image::{ImageFormat, ImageInfo, ImageLimits, RgbImage, decode, open, probe};
use kai_core::{Error, ErrorKind};

use crate::common::photo;

fn photo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(photo(name)).unwrap()
}

fn decode_default(bytes: &[u8]) -> Result<RgbImage, Error> {
    decode(bytes, &ImageLimits::default())
}

/// Decodes `bytes`, expecting an invalid-input error, and returns its message.
fn invalid_message(bytes: &[u8], limits: &ImageLimits) -> String {
    let err = decode(bytes, limits).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    err.to_string()
}

fn encode(image: DynamicImage, format: EncodedFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// Returns a 32 x 24 image with a different colour in every pixel.
fn gradient() -> RgbImage {
    RgbImage::from_fn(32, 24, |x, y| {
        Rgb([(x * 8) as u8, (y * 10) as u8, ((x + y) * 4) as u8])
    })
}

fn max_channel_difference(a: &RgbImage, b: &RgbImage) -> u8 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

/// Computes the CRC-32 that PNG chunks end with (ISO 3309, reflected polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
    chunk
}

/// Builds a PNG whose header claims `width` x `height` 8-bit RGB pixels, followed by a few bytes
/// of image data: small on disk, huge once decoded.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlacing.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut bytes = b"\x89PNG\r\n\x1A\n".to_vec();
    bytes.extend(png_chunk(b"IHDR", &header));
    // A zlib stream of one stored block holding a single zero byte.
    bytes.extend(png_chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01,
        ],
    ));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
}

/// Builds an APP1 segment with a little-endian Exif block whose only tag is Orientation.
fn exif_orientation_segment(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    // Offset of the first IFD, right after this 8-byte header.
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // One entry: tag 0x0112 (Orientation), type 3 (SHORT), count 1, value, padding.
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    // No next IFD.
    tiff.extend_from_slice(&0u32.to_le_bytes());

    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    segment.extend(payload);
    segment
}

/// Inserts `segment` right after a JPEG's start-of-image marker.
fn insert_after_soi(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    let mut bytes = jpeg[..2].to_vec();
    bytes.extend_from_slice(segment);
    bytes.extend_from_slice(&jpeg[2..]);
    bytes
}

/// Returns deterministic filler bytes that are unlike any image data (xorshift32).
fn noise(length: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9u32;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Returns the start of a HEIC file: an `ftyp` box with major brand `heic`, then the
/// header of a `meta` box and filler in place of its content.
fn heic_header() -> Vec<u8> {
    let mut bytes = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    bytes.extend_from_slice(b"\0\0\0\x24meta\0\0\0\0");
    bytes.extend(noise(24));
    bytes
}

#[test]
fn empty_input_is_invalid() {
    let message = invalid_message(&[], &ImageLimits::default());
    assert!(message.contains("image is empty (0 bytes)"), "{message}");
}

#[test]
fn truncated_jpeg_is_invalid() {
    let bytes = photo_bytes("chelsea.jpg");
    let message = invalid_message(&bytes[..bytes.len() / 2], &ImageLimits::default());
    assert!(message.contains("truncated or corrupt JPEG"), "{message}");
}

#[test]
fn truncated_png_is_invalid() {
    let bytes = photo_bytes("camera.png");
    let message = invalid_message(&bytes[..bytes.len() / 2], &ImageLimits::default());
    assert!(message.contains("truncated or corrupt PNG"), "{message}");
}

#[test]
fn corrupt_png_after_header_is_invalid() {
    let mut bytes = photo_bytes("camera.png");
    // Keep the signature and the IHDR chunk (8 + 25 bytes), overwrite everything after.
    let garbage = noise(bytes.len() - 33);
    bytes[33..].copy_from_slice(&garbage);
    let message = invalid_message(&bytes, &ImageLimits::default());
    assert!(message.contains("truncated or corrupt PNG"), "{message}");
}

#[test]
fn gif_is_unrecognized() {
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xFF\xFF\xFF\x00\x00\x00!\xF9\x04\x01";
    let message = invalid_message(gif, &ImageLimits::default());
    assert!(message.contains("unrecognized image format"), "{message}");
    assert!(message.contains("47 49 46 38"), "{message}");
    assert!(message.contains("JPEG, PNG, WebP, BMP"), "{message}");
}

#[test]
fn text_is_unrecognized() {
    let message = invalid_message(b"oak parquet, 14 mm", &ImageLimits::default());
    assert!(message.contains("unrecognized image format"), "{message}");
    assert!(message.contains("TIFF"), "{message}");
}

#[test]
fn decompression_bomb_is_rejected_by_header() {
    let bomb = png_bomb(100_000, 100_000);
    assert!(bomb.len() < 100, "the bomb is {} bytes", bomb.len());
    // The message can only come from the header check: the pixel data is a single byte,
    // so reaching the decoder would fail with a corrupt-data error instead.
    let message = invalid_message(&bomb, &ImageLimits::default());
    assert!(message.contains("100000 x 100000 pixels"), "{message}");
    assert!(message.contains("64000000"), "{message}");
    assert!(message.contains("KAI_MAX_IMAGE_PIXELS"), "{message}");
}

#[test]
fn unallocatable_bomb_is_rejected_by_header() {
    // 60 million squared RGB pixels need about 10 PB. Allocating that would fail and abort
    // the test process, so an error message shows that the header check ran first.
    let message = invalid_message(&png_bomb(60_000_000, 60_000_000), &ImageLimits::default());
    assert!(message.contains("60000000 x 60000000 pixels"), "{message}");
}

#[test]
fn wide_bomb_is_rejected_by_header() {
    let message = invalid_message(&png_bomb(100_000_000, 1), &ImageLimits::default());
    assert!(message.contains("100000000 x 1 pixels"), "{message}");
}

#[test]
fn probe_reads_bomb_dimensions() {
    let info = probe(&png_bomb(100_000, 100_000)).unwrap();
    assert_eq!(
        info,
        ImageInfo {
            format: ImageFormat::Png,
            width: 100_000,
            height: 100_000,
        }
    );
}

#[test]
fn pixel_limit_applies_to_real_photo() {
    let limits = ImageLimits {
        max_pixels: 451 * 300 - 1,
        ..ImageLimits::default()
    };
    let message = invalid_message(&photo_bytes("chelsea.jpg"), &limits);
    assert!(message.contains("451 x 300 pixels"), "{message}");
    let limits = ImageLimits {
        max_pixels: 451 * 300,
        ..ImageLimits::default()
    };
    assert!(decode(&photo_bytes("chelsea.jpg"), &limits).is_ok());
}

#[test]
fn encoded_size_over_limit_is_invalid() {
    let bytes = photo_bytes("chelsea.jpg");
    let limits = ImageLimits {
        max_encoded_bytes: 1000,
        ..ImageLimits::default()
    };
    let message = invalid_message(&bytes, &limits);
    assert!(
        message.contains(&format!("image is {} bytes", bytes.len())),
        "{message}"
    );
    assert!(message.contains("limit of 1000 bytes"), "{message}");
    assert!(message.contains("KAI_MAX_IMAGE_BYTES"), "{message}");
}

#[test]
fn open_checks_size_and_names_path() {
    let path = photo("coffee.jpg");
    let limits = ImageLimits {
        max_encoded_bytes: 1000,
        ..ImageLimits::default()
    };
    let err = open(&path, &limits).unwrap_err();
    let message = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(message.contains("coffee.jpg"), "{message}");
    assert!(message.contains("limit of 1000 bytes"), "{message}");
}

#[test]
fn open_missing_file_names_path() {
    let path = photo("no-such-photo.jpg");
    let err = open(&path, &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-photo.jpg"), "{err}");
}

#[test]
fn open_matches_decode() {
    let path = photo("rocket.jpg");
    let opened = open(&path, &ImageLimits::default()).unwrap();
    let decoded = decode_default(&photo_bytes("rocket.jpg")).unwrap();
    assert_eq!(opened.dimensions(), (640, 427));
    assert_eq!(opened, decoded);
}

#[test]
fn invalid_limits_are_rejected() {
    let limits = ImageLimits {
        max_encoded_bytes: 0,
        ..ImageLimits::default()
    };
    let message = invalid_message(&photo_bytes("chelsea.jpg"), &limits);
    assert!(message.contains("max_encoded_bytes"), "{message}");
}

#[test]
fn exif_orientation_rotates_jpeg() {
    // 40 x 20, black with a white 8 x 8 block in the top-left corner.
    let stored = RgbImage::from_fn(40, 20, |x, y| {
        if x < 8 && y < 8 {
            Rgb([255, 255, 255])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let jpeg = encode(DynamicImage::ImageRgb8(stored), EncodedFormat::Jpeg);
    // Orientation 6: the stored image must be rotated 90 degrees clockwise for display,
    // so its top-left corner ends up top-right.
    let bytes = insert_after_soi(&jpeg, &exif_orientation_segment(6));

    let info = probe(&bytes).unwrap();
    assert_eq!((info.width, info.height), (40, 20));
    let image = decode_default(&bytes).unwrap();
    assert_eq!(image.dimensions(), (20, 40));
    assert!(
        image.get_pixel(16, 3)[0] > 200,
        "{:?}",
        image.get_pixel(16, 3)
    );
    assert!(image.get_pixel(3, 3)[0] < 50, "{:?}", image.get_pixel(3, 3));
    assert!(
        image.get_pixel(3, 36)[0] < 50,
        "{:?}",
        image.get_pixel(3, 36)
    );
    assert!(
        image.get_pixel(16, 36)[0] < 50,
        "{:?}",
        image.get_pixel(16, 36)
    );
}

#[test]
fn jpeg_without_exif_keeps_orientation() {
    let image = decode_default(&photo_bytes("chelsea.jpg")).unwrap();
    assert_eq!(image.dimensions(), (451, 300));
}

#[test]
fn grey_png_becomes_equal_channels() {
    for name in ["camera.png", "brick.png"] {
        let image = decode_default(&photo_bytes(name)).unwrap();
        let reference = ::image::open(photo(name)).unwrap().into_luma8();
        assert_eq!(image.dimensions(), reference.dimensions(), "{name}");
        for (pixel, grey) in image.pixels().zip(reference.pixels()) {
            assert_eq!(pixel.0, [grey[0]; 3], "{name}");
        }
    }
}

#[test]
fn png_16_bit_becomes_8_bit() {
    let samples = [0u16, 257, 128 * 257, 65535];
    let image = ImageBuffer::from_fn(4, 1, |x, _| {
        let value = samples[x as usize];
        Rgb([value, 65535 - value, value])
    });
    let bytes = encode(DynamicImage::ImageRgb16(image), EncodedFormat::Png);
    let decoded = decode_default(&bytes).unwrap();
    let expected = [0u8, 1, 128, 255];
    for (x, value) in expected.into_iter().enumerate() {
        assert_eq!(
            decoded.get_pixel(x as u32, 0).0,
            [value, 255 - value, value]
        );
    }
}

#[test]
fn grey_16_bit_png_becomes_8_bit() {
    let image = ImageBuffer::from_fn(2, 1, |x, _| Luma([if x == 0 { 0u16 } else { 65535 }]));
    let bytes = encode(DynamicImage::ImageLuma16(image), EncodedFormat::Png);
    let decoded = decode_default(&bytes).unwrap();
    assert_eq!(decoded.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(decoded.get_pixel(1, 0).0, [255, 255, 255]);
}

#[test]
fn rgba_png_is_composited_over_white() {
    let pixels = [
        Rgba([255, 0, 0, 255]),
        Rgba([0, 0, 255, 0]),
        Rgba([0, 0, 0, 128]),
        Rgba([10, 20, 30, 255]),
    ];
    let image = RgbaImage::from_fn(4, 1, |x, _| pixels[x as usize]);
    let bytes = encode(DynamicImage::ImageRgba8(image), EncodedFormat::Png);
    let decoded = decode_default(&bytes).unwrap();
    assert_eq!(decoded.get_pixel(0, 0).0, [255, 0, 0]);
    assert_eq!(decoded.get_pixel(1, 0).0, [255, 255, 255]);
    assert_eq!(decoded.get_pixel(2, 0).0, [127, 127, 127]);
    assert_eq!(decoded.get_pixel(3, 0).0, [10, 20, 30]);
}

#[test]
fn grey_alpha_png_is_composited_over_white() {
    let image = ImageBuffer::from_fn(2, 1, |x, _| LumaA([0u8, if x == 0 { 255 } else { 0 }]));
    let bytes = encode(DynamicImage::ImageLumaA8(image), EncodedFormat::Png);
    let decoded = decode_default(&bytes).unwrap();
    assert_eq!(decoded.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(decoded.get_pixel(1, 0).0, [255, 255, 255]);
}

#[test]
fn float_tiff_becomes_8_bit() {
    let image = ImageBuffer::from_fn(3, 1, |x, _| {
        let value = [0.0f32, 0.5, 1.0][x as usize];
        Rgb([value, value, value])
    });
    let bytes = encode(DynamicImage::ImageRgb32F(image), EncodedFormat::Tiff);
    let decoded = decode_default(&bytes).unwrap();
    assert_eq!(decoded.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(decoded.get_pixel(1, 0).0, [128, 128, 128]);
    assert_eq!(decoded.get_pixel(2, 0).0, [255, 255, 255]);
}

#[test]
fn lossless_formats_round_trip() {
    let original = gradient();
    let cases = [
        (EncodedFormat::Png, ImageFormat::Png),
        (EncodedFormat::WebP, ImageFormat::WebP),
        (EncodedFormat::Bmp, ImageFormat::Bmp),
        (EncodedFormat::Tiff, ImageFormat::Tiff),
    ];
    for (encoded_format, format) in cases {
        let bytes = encode(DynamicImage::ImageRgb8(original.clone()), encoded_format);
        let info = probe(&bytes).unwrap();
        assert_eq!(info.format, format);
        assert_eq!((info.width, info.height), (32, 24), "{format:?}");
        let decoded = decode_default(&bytes).unwrap();
        assert_eq!(decoded, original, "{format:?}");
    }
}

#[test]
fn jpeg_round_trip() {
    let original = gradient();
    let bytes = encode(
        DynamicImage::ImageRgb8(original.clone()),
        EncodedFormat::Jpeg,
    );
    assert_eq!(probe(&bytes).unwrap().format, ImageFormat::Jpeg);
    let decoded = decode_default(&bytes).unwrap();
    assert_eq!(decoded.dimensions(), (32, 24));
    // The image crate's default JPEG quality, 75, moves the channels of this smooth
    // gradient by a few levels: at most 6 with image 0.25.10.
    let difference = max_channel_difference(&decoded, &original);
    assert!(difference <= 12, "largest channel difference {difference}");
}

#[test]
fn photos_decode_at_their_sizes() {
    let cases = [
        ("chelsea.jpg", (451, 300)),
        ("coffee.jpg", (600, 400)),
        ("astronaut.jpg", (512, 512)),
        ("rocket.jpg", (640, 427)),
        ("camera.png", (512, 512)),
        ("brick.png", (512, 512)),
    ];
    for (name, dimensions) in cases {
        let image = decode_default(&photo_bytes(name)).unwrap();
        assert_eq!(image.dimensions(), dimensions, "{name}");
    }
}

#[test]
fn probe_rejects_empty_and_unknown() {
    assert_eq!(probe(&[]).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(probe(b"hello").unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[cfg(not(feature = "heif"))]
#[test]
fn heic_needs_heif_feature() {
    let err = decode_default(&heic_header()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
    let message = err.to_string();
    assert!(message.contains("HEIC"), "{message}");
    assert!(message.contains("`heif` feature"), "{message}");
}

#[cfg(not(feature = "heif"))]
#[test]
fn avif_needs_heif_feature() {
    let bytes = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf\0\0\0\x08meta";
    let err = decode_default(bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
    assert!(err.to_string().contains("AVIF"), "{err}");
}

#[cfg(not(feature = "heif"))]
#[test]
fn probe_heic_needs_heif_feature() {
    let err = probe(&heic_header()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
}

#[test]
fn heic_is_checked_against_size_limit_first() {
    let limits = ImageLimits {
        max_encoded_bytes: 10,
        ..ImageLimits::default()
    };
    let message = invalid_message(&heic_header(), &limits);
    assert!(message.contains("KAI_MAX_IMAGE_BYTES"), "{message}");
}

#[cfg(feature = "heif")]
mod heif {
    //! HEIC and AVIF through libheif, on files made with Debian's `heif-enc` from the
    //! committed photos (see `tests/fixtures/images/SOURCES.md`).

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/images")
            .join(name);
        std::fs::read(path).unwrap()
    }

    /// Returns the mean absolute difference per channel of two images of the same size.
    fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let total: u64 = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        total as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn heic_photo_matches_jpeg() {
        let bytes = fixture("chelsea.heic");
        let info = probe(&bytes).unwrap();
        assert_eq!(info.format, ImageFormat::Heic);
        assert_eq!((info.width, info.height), (451, 300));

        let heic = decode_default(&bytes).unwrap();
        let jpeg = decode_default(&photo_bytes("chelsea.jpg")).unwrap();
        // Both are lossy encodings of the same photo, so they differ by a few levels.
        let difference = mean_difference(&heic, &jpeg);
        assert!(difference < 6.0, "mean channel difference {difference}");
    }

    #[test]
    fn avif_photo_matches_jpeg() {
        let bytes = fixture("chelsea.avif");
        assert_eq!(probe(&bytes).unwrap().format, ImageFormat::Avif);

        let avif = decode_default(&bytes).unwrap();
        let jpeg = decode_default(&photo_bytes("chelsea.jpg")).unwrap();
        let difference = mean_difference(&avif, &jpeg);
        assert!(difference < 6.0, "mean channel difference {difference}");
    }

    #[test]
    fn heic_alpha_is_composited_over_white() {
        let image = decode_default(&fixture("half-transparent.heic")).unwrap();
        assert_eq!(image.dimensions(), (48, 32));
        let opaque = image.get_pixel(8, 16).0;
        let transparent = image.get_pixel(40, 16).0;
        for (channel, expected) in opaque.into_iter().zip([200u8, 30, 30]) {
            assert!(channel.abs_diff(expected) <= 8, "opaque pixel {opaque:?}");
        }
        assert!(
            transparent.iter().all(|&channel| channel >= 247),
            "{transparent:?}"
        );
    }

    #[test]
    fn heic_pixel_limit_applies() {
        let limits = ImageLimits {
            max_pixels: 451 * 300 - 1,
            ..ImageLimits::default()
        };
        let message = invalid_message(&fixture("chelsea.heic"), &limits);
        assert!(message.contains("451 x 300 pixels"), "{message}");
    }

    #[test]
    fn truncated_heic_is_invalid() {
        let bytes = fixture("chelsea.heic");
        let message = invalid_message(&bytes[..bytes.len() / 2], &ImageLimits::default());
        assert!(message.contains("truncated or corrupt HEIC"), "{message}");
    }

    #[test]
    fn heic_header_without_images_is_invalid() {
        let message = invalid_message(&heic_header(), &ImageLimits::default());
        assert!(message.contains("truncated or corrupt HEIC"), "{message}");
    }
}
