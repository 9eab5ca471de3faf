//! Inference on `Kai`: text and image embeddings, ImageNet classes, photo quality,
//! recognition and texture classification. Results have the shapes of kai-server's
//! inference routes.

use kai_core::image::{QualityThresholds, assess};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL};
use kai_core::recognize::{ClassConfidence, RecognizeOptions};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::convert::{ImageSource, from_js, load_all, options};
use crate::job::{Job, Json, Vectors};
use crate::kai::Kai;

/// ImageNet classes listed per photo when the options name no `topK`, as `kai embed
/// image` and kai-server do.
const DEFAULT_LABELS: usize = 5;
/// Material classes `classifyTexture` returns, as kai-server's `/api/classify-texture`.
const TEXTURE_CLASSES: usize = 5;

/// The options of the embedding methods.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedOptions {
    model: Option<String>,
}

/// The options of `classifyImages`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClassifyOptions {
    model: Option<String>,
    top_k: Option<usize>,
}

/// The options of `recognize`. Unset fields keep the core's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RecognizeRequest {
    top_k: Option<usize>,
    hint: Option<String>,
    hint_weight: Option<f32>,
    min_resolution: Option<u32>,
    unknown_threshold: Option<f32>,
}

impl From<RecognizeRequest> for RecognizeOptions {
    fn from(request: RecognizeRequest) -> Self {
        let defaults = RecognizeOptions::default();
        RecognizeOptions {
            top_k: request.top_k.unwrap_or(defaults.top_k),
            hint: request.hint,
            hint_weight: request.hint_weight.unwrap_or(defaults.hint_weight),
            min_resolution: request.min_resolution.unwrap_or(defaults.min_resolution),
            unknown_threshold: request
                .unknown_threshold
                .unwrap_or(defaults.unknown_threshold),
        }
    }
}

/// The material classes of a texture photo.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TextureClasses {
    classes: Vec<ClassConfidence>,
    unknown: bool,
    processing_time_ms: f64,
}

#[napi]
impl Kai {
    /// Embeds texts with a text model (default `all-minilm-l6-v2`), loading it into the
    /// model cache when needed, and resolves to one unit-length Float32Array per text.
    #[napi(
        ts_args_type = "texts: string[], options?: EmbedOptions",
        ts_return_type = "Promise<Float32Array[]>"
    )]
    pub fn embed_text(
        &self,
        texts: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Vectors>> {
        let prepared = (|| {
            let texts: Vec<String> = from_js("texts", texts)?;
            let options: EmbedOptions = options("options", options_arg)?;
            Ok((self.services()?, texts, options))
        })();
        Job::run(prepared, |(services, texts, options)| {
            let name = options.model.as_deref().unwrap_or(DEFAULT_TEXT_MODEL);
            let model = services.models.text(name)?;
            Ok(Vectors(model.embed(&texts)?))
        })
    }

    /// Embeds photos with an image model (default `efficientnet-lite0`) and resolves to
    /// one unit-length Float32Array per photo.
    #[napi(
        ts_args_type = "images: ImageInput[], options?: EmbedOptions",
        ts_return_type = "Promise<Float32Array[]>"
    )]
    pub fn embed_images(
        &self,
        images: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Vectors>> {
        let prepared = (|| {
            let sources = ImageSource::all_from_js(images)?;
            let options: EmbedOptions = options("options", options_arg)?;
            Ok((self.services()?, sources, options))
        })();
        Job::run(prepared, |(services, sources, options)| {
            let images = load_all(sources, &services.limits)?;
            let name = options.model.as_deref().unwrap_or(DEFAULT_IMAGE_MODEL);
            let model = services.models.image(name)?;
            Ok(Vectors(model.embed(&images)?))
        })
    }

    /// Lists each photo's `topK` (default 5) most probable ImageNet classes, most probable
    /// first.
    #[napi(
        ts_args_type = "images: ImageInput[], options?: ClassifyOptions",
        ts_return_type = "Promise<Prediction[][]>"
    )]
    pub fn classify_images(
        &self,
        images: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let sources = ImageSource::all_from_js(images)?;
            let options: ClassifyOptions = options("options", options_arg)?;
            Ok((self.services()?, sources, options))
        })();
        Job::run(prepared, |(services, sources, options)| {
            let images = load_all(sources, &services.limits)?;
            let name = options.model.as_deref().unwrap_or(DEFAULT_IMAGE_MODEL);
            let model = services.models.image(name)?;
            let top_k = options.top_k.unwrap_or(DEFAULT_LABELS);
            Json::of(&model.embed_and_classify(&images, top_k)?.labels)
        })
    }

    /// Measures a photo's sharpness, exposure, contrast, noise and resolution against
    /// `thresholds`. Fields left out keep their defaults.
    #[napi(
        ts_args_type = "image: ImageInput, thresholds?: Partial<QualityThresholds>",
        ts_return_type = "Promise<QualityReport>"
    )]
    pub fn assess_quality(
        &self,
        image: Unknown<'_>,
        thresholds: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let source = ImageSource::from_js("image", image)?;
            let thresholds: QualityThresholds = options("thresholds", thresholds)?;
            Ok((self.services()?, source, thresholds))
        })();
        Job::run(prepared, |(services, source, thresholds)| {
            let image = source.load(&services.limits)?;
            Json::of(&assess(&image, &thresholds)?)
        })
    }

    /// Recognizes the material in a photo: the best-matching catalog materials, the
    /// material type confidences and the photo's quality.
    #[napi(
        ts_args_type = "image: ImageInput, options?: RecognizeOptions",
        ts_return_type = "Promise<Recognition>"
    )]
    pub fn recognize(
        &self,
        image: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let source = ImageSource::from_js("image", image)?;
            let request: RecognizeRequest = options("options", options_arg)?;
            Ok((self.services()?, source, RecognizeOptions::from(request)))
        })();
        Job::run(prepared, |(services, source, options)| {
            let image = source.load(&services.limits)?;
            Json::of(&services.catalog().recognize(&image, &options)?)
        })
    }

    /// Returns the five most probable material types of a texture photo.
    #[napi(
        ts_args_type = "image: ImageInput",
        ts_return_type = "Promise<TextureClasses>"
    )]
    pub fn classify_texture(&self, image: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| Ok((self.services()?, ImageSource::from_js("image", image)?)))();
        Job::run(prepared, |(services, source)| {
            let image = source.load(&services.limits)?;
            let recognition = services
                .catalog()
                .recognize(&image, &RecognizeOptions::default())?;
            let mut classes = recognition.classes;
            classes.truncate(TEXTURE_CLASSES);
            Json::of(&TextureClasses {
                classes,
                unknown: recognition.unknown,
                processing_time_ms: recognition.processing_time_ms,
            })
        })
    }
}
