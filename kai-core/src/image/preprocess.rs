//! Turns decoded photos into a model's input tensor, as its manifest prescribes.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::RgbImage;
use super::resize::{Crop, resize_rgb};
use crate::error::{Error, Result};
use crate::models::Preprocess;

/// Returns the centre square that `preprocess` keeps of a `width × height` image.
///
/// The side is `crop_fraction` of the shorter side, rounded down. When the leftover is
/// odd, the extra pixel goes before the square, as in the TensorFlow reference.
fn centre_crop(width: usize, height: usize, preprocess: &Preprocess) -> Crop {
    let side = (f64::from(preprocess.crop_fraction) * width.min(height) as f64) as usize;
    let side = side.max(1);
    Crop {
        x: (width - side).div_ceil(2),
        y: (height - side).div_ceil(2),
        width: side,
        height: side,
    }
}

/// Crops, resizes and normalises one image into CHW f32 values.
pub fn preprocess_one(image: &RgbImage, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "image",
            format!("has no pixels ({width}×{height})"),
        ));
    }
    let size = preprocess.image_size;
    let crop = centre_crop(width, height, preprocess);
    let hwc = resize_rgb(
        image.as_raw(),
        width,
        crop,
        size,
        size,
        preprocess.interpolation,
    );
    let plane = size * size;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in hwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = (pixel[c] - preprocess.mean[c]) / preprocess.std[c];
        }
    }
    Ok(chw)
}

/// Preprocesses a batch of images into one `[batch, 3, size, size]` tensor.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] for an empty batch or an image without pixels.
pub fn preprocess_batch(
    images: &[RgbImage],
    preprocess: &Preprocess,
    device: &Device,
) -> Result<Tensor> {
    if images.is_empty() {
        return Err(Error::invalid("images", "the batch is empty"));
    }
    let planes = images
        .par_iter()
        .map(|image| preprocess_one(image, preprocess))
        .collect::<Result<Vec<_>>>()?;
    let size = preprocess.image_size;
    let data: Vec<f32> = planes.concat();
    Ok(Tensor::from_vec(
        data,
        (images.len(), 3, size, size),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Interpolation;

    fn lite0() -> Preprocess {
        Preprocess {
            image_size: 224,
            crop_fraction: 0.875,
            interpolation: Interpolation::Bicubic,
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }

    #[test]
    fn centre_crop_matches_reference_offsets() {
        // 451×300: side int(0.875 × 300) = 262; offsets ((451-262)+1)/2 and ((300-262)+1)/2.
        let crop = centre_crop(451, 300, &lite0());
        assert_eq!(
            crop,
            Crop {
                x: 95,
                y: 19,
                width: 262,
                height: 262
            }
        );
    }

    #[test]
    fn batch_is_nchw_and_normalised() {
        let image = RgbImage::from_pixel(300, 200, ::image::Rgb([255, 127, 0]));
        let t = preprocess_batch(&[image.clone(), image], &lite0(), &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 224, 224]);
        let values = t.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        let plane = 224 * 224;
        assert_eq!(values[0][0], 128.0 / 128.0);
        assert_eq!(values[0][plane], 0.0);
        assert_eq!(values[1][2 * plane], -127.0 / 128.0);
    }

    #[test]
    fn empty_batch_is_rejected() {
        let err = preprocess_batch(&[], &lite0(), &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
