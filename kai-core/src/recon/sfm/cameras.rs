//! Prior intrinsics of the screened photos, one camera per distinct image size and EXIF
//! focal length, so photos from the same camera share (and jointly refine) intrinsics.

use super::screening::ScreenedImage;
use crate::recon::camera::{Camera, CameraModel};

/// Returns the prior cameras and, per photo, the index of its camera. Cameras are
/// numbered in the order of their first photo.
pub(crate) fn group_cameras(
    images: &[ScreenedImage],
    model: CameraModel,
) -> (Vec<Camera>, Vec<usize>) {
    let mut keys: Vec<(u32, u32, Option<u64>)> = Vec::new();
    let mut cameras = Vec::new();
    let mut camera_of = Vec::with_capacity(images.len());
    for image in images {
        let key = (image.width, image.height, image.focal_px.map(f64::to_bits));
        let index = match keys.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                let mut camera = Camera::prior(image.width, image.height, image.focal_px);
                camera.model = model;
                keys.push(key);
                cameras.push(camera);
                cameras.len() - 1
            }
        };
        camera_of.push(index);
    }
    (cameras, camera_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screened(width: u32, height: u32, focal_px: Option<f64>) -> ScreenedImage {
        ScreenedImage {
            name: String::new(),
            input: 0,
            width,
            height,
            focal_px,
            working: image::RgbImage::new(1, 1),
        }
    }

    #[test]
    fn same_size_and_focal_share_a_camera() {
        let images = [
            screened(640, 480, None),
            screened(640, 480, Some(500.0)),
            screened(640, 480, None),
            screened(480, 640, None),
            screened(640, 480, Some(500.0)),
        ];
        let (cameras, camera_of) = group_cameras(&images, CameraModel::OpenCv);
        assert_eq!(camera_of, vec![0, 1, 0, 2, 1]);
        assert_eq!(cameras.len(), 3);
        assert_eq!(cameras[1].fx, 500.0);
        assert_eq!(cameras[0].model, CameraModel::OpenCv);
    }
}
