//! Images: decoding with size limits, preprocessing for models and quality assessment.
//!
//! Every image from outside enters through [`decode`] or [`open`], which check the encoded
//! size and the pixel count from the header before any pixel is allocated, apply the EXIF
//! orientation and return 8-bit RGB.

mod decode;
mod preprocess;
mod quality;
mod resize;

pub use decode::{ImageFormat, ImageInfo, ImageLimits, decode, open, probe, read_file};

pub use quality::{QualityIssue, QualityReport, QualityThresholds, assess};

pub use preprocess::{preprocess_batch, preprocess_one};

/// An 8-bit RGB image, as returned by [`decode`] and [`open`].
pub type RgbImage = ::image::RgbImage;
