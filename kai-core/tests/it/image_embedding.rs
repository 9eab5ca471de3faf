//! Image embeddings against the PyTorch reference implementation of EfficientNet-Lite0.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use kai_core::embed::{ImageEmbedder, load_with_candle_ops};
use kai_core::image::{ImageLimits, RgbImage, open, preprocess_one};
use kai_core::models::{Manifest, ModelState, verify};
use kai_core::{Device, ErrorKind, ModelStore, Tensor, cosine_similarity};

use crate::common::max_abs_diff;

const MODEL: &str = "efficientnet-lite0";

/// Returns the model store when EfficientNet-Lite0 is fetched; otherwise prints why the
/// calling test is skipped.
fn store() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    let manifest = Manifest::find(MODEL).expect("built-in manifest");
    match verify(&manifest, &store.folder(MODEL)) {
        Ok(ModelState::Ready) => Some(store),
        state => {
            eprintln!(
                "skipped: {MODEL} is not in {} ({state:?}); run `python3 models/fetch.py \
                 {MODEL}` or `kai models fetch {MODEL}` first",
                store.root().display()
            );
            None
        }
    }
}

fn embedder() -> Option<&'static ImageEmbedder> {
    static EMBEDDER: OnceLock<Option<ImageEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            Some(ImageEmbedder::from_store(&store()?, MODEL, &Device::Cpu).expect("model loads"))
        })
        .as_ref()
}

struct Reference {
    photos: Vec<String>,
    tensors: HashMap<String, Tensor>,
}

impl Reference {
    fn load() -> Self {
        let path = fixture("image_reference.safetensors");
        // A safetensors file starts with the length of its JSON header.
        let bytes = std::fs::read(&path).unwrap();
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
        let photos = header["__metadata__"]["photos"]
            .as_str()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        let tensors = kai_core::candle::safetensors::load(&path, &Device::Cpu).unwrap();
        Self { photos, tensors }
    }

    /// Returns the reference input tensor, `(pixels - 127) / 128` in NCHW order.
    fn input(&self) -> Tensor {
        let pixels = self.tensors["pixels"]
            .to_dtype(kai_core::candle::DType::F32)
            .unwrap();
        ((pixels - 127.0).unwrap() / 128.0)
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap()
            .contiguous()
            .unwrap()
    }

    fn rows(&self, name: &str) -> Vec<Vec<f32>> {
        self.tensors[name].to_vec2().unwrap()
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn photo(name: &str) -> RgbImage {
    open(&fixture("photos").join(name), &ImageLimits::default()).unwrap()
}

fn relative_l2(actual: &[f32], expected: &[f32]) -> f32 {
    let diff: f32 = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e) * (a - e))
        .sum();
    let norm: f32 = expected.iter().map(|e| e * e).sum();
    (diff / norm).sqrt()
}

fn assert_matches_reference(embedder: &ImageEmbedder, reference: &Reference) {
    let output = embedder.forward(&reference.input()).unwrap();
    let features: Vec<Vec<f32>> = output.features.to_vec2().unwrap();
    let logits: Vec<Vec<f32>> = output.logits.to_vec2().unwrap();
    for (i, photo) in reference.photos.iter().enumerate() {
        let f = relative_l2(&features[i], &reference.rows("features")[i]);
        let l = relative_l2(&logits[i], &reference.rows("logits")[i]);
        assert!(f < 1e-4, "{photo}: features differ by {f:e} (relative L2)");
        assert!(l < 1e-4, "{photo}: logits differ by {l:e} (relative L2)");
    }
}

#[test]
fn same_input_matches_pytorch() {
    let Some(embedder) = embedder() else { return };
    let reference = Reference::load();
    assert!(reference.photos.len() >= 5);
    assert_matches_reference(embedder, &reference);
}

#[test]
fn candle_operations_match_pytorch() {
    // The path that CUDA devices take, run on the CPU.
    let Some(store) = store() else { return };
    let folder = store.resolve(MODEL).unwrap();
    let embedder = load_with_candle_ops(&folder, &Device::Cpu).unwrap();
    assert_matches_reference(&embedder, &Reference::load());
}

#[test]
fn preprocessing_matches_pillow() {
    let Some(embedder) = embedder() else { return };
    let reference = Reference::load();
    let pixels: Vec<Vec<f32>> = reference.tensors["pixels"]
        .to_dtype(kai_core::candle::DType::F32)
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .to_vec2()
        .unwrap();
    let p = embedder.preprocess();
    for (i, name) in reference.photos.iter().enumerate() {
        let chw = preprocess_one(&photo(name), p).unwrap();
        let plane = p.image_size * p.image_size;
        // Back to 0–255 HWC, to compare with Pillow's resized pixels.
        let hwc: Vec<f32> = (0..plane * 3)
            .map(|k| chw[(k % 3) * plane + k / 3] * p.std[k % 3] + p.mean[k % 3])
            .collect();
        let worst = max_abs_diff(&hwc, &pixels[i]);
        let mean = hwc
            .iter()
            .zip(&pixels[i])
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / hwc.len() as f32;
        // PNG pixels decode identically, so Pillow's resize is reproduced to the level.
        // JPEG decoders differ in chroma upsampling and IDCT rounding, which moves a few
        // levels before the resize even starts.
        let (max_worst, max_mean) = if name.ends_with(".png") {
            (1.0, 0.01)
        } else {
            (6.0, 0.5)
        };
        assert!(
            worst <= max_worst && mean <= max_mean,
            "{name}: max {worst}, mean {mean} levels from Pillow"
        );
    }
}

#[test]
fn embeddings_from_files_match_pytorch() {
    let Some(embedder) = embedder() else { return };
    let reference = Reference::load();
    let images: Vec<RgbImage> = reference.photos.iter().map(|p| photo(p)).collect();
    let vectors = embedder.embed(&images).unwrap();
    assert_eq!(vectors.dimension(), 1280);
    for (i, name) in reference.photos.iter().enumerate() {
        let expected = &reference.rows("features")[i];
        let similarity = cosine_similarity(vectors.get(i).unwrap(), expected);
        assert!(similarity >= 0.999, "{name}: cosine {similarity}");
        let norm: f32 = vectors.get(i).unwrap().iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn everyday_objects_have_their_class_in_top_five() {
    let Some(embedder) = embedder() else { return };
    let cases: [(&str, &[&str]); 4] = [
        (
            "chelsea.jpg",
            &["tabby, tabby cat", "tiger cat", "Egyptian cat"],
        ),
        ("coffee.jpg", &["espresso", "cup", "coffee mug"]),
        (
            "rocket.jpg",
            &["missile", "projectile, missile", "space shuttle"],
        ),
        ("camera.png", &["tripod"]),
    ];
    let images: Vec<RgbImage> = cases.iter().map(|(p, _)| photo(p)).collect();
    let output = embedder.embed_and_classify(&images, 5).unwrap();
    for ((name, expected), top) in cases.iter().zip(&output.labels) {
        assert_eq!(top.len(), 5);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        let labels: Vec<&str> = top.iter().map(|p| p.label.as_str()).collect();
        assert!(
            labels.iter().any(|l| expected.contains(l)),
            "{name}: top 5 {labels:?} has none of {expected:?}"
        );
    }
}

#[test]
fn batching_does_not_change_results() {
    let Some(embedder) = embedder() else { return };
    let images = vec![
        photo("coffee.jpg"),
        photo("brick.png"),
        photo("chelsea.jpg"),
    ];
    let together = embedder.embed(&images).unwrap();
    let single = ImageEmbedder::from_store(&store().unwrap(), MODEL, &Device::Cpu)
        .unwrap()
        .with_batch_size(1)
        .unwrap();
    let apart = single.embed(&images).unwrap();
    assert!(max_abs_diff(together.as_slice(), apart.as_slice()) < 1e-5);
}

#[test]
fn wrong_input_shape_is_rejected() {
    let Some(embedder) = embedder() else { return };
    let input =
        Tensor::zeros((1, 3, 100, 100), kai_core::candle::DType::F32, &Device::Cpu).unwrap();
    let err = embedder.forward(&input).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("[1, 3, 100, 100]"), "{err}");
}

#[test]
fn text_model_is_not_an_image_model() {
    let Some(store) = crate::common::store_with_model() else {
        return;
    };
    let err = ImageEmbedder::from_store(&store, "all-minilm-l6-v2", &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(
        err.to_string().contains("not an image embedding model"),
        "{err}"
    );
}

#[test]
fn batch_size_is_bounded() {
    let Some(store) = store() else { return };
    let embedder = ImageEmbedder::from_store(&store, MODEL, &Device::Cpu).unwrap();
    let err = embedder.with_batch_size(0).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

#[test]
fn corrupt_weights_name_the_fetch_command() {
    let Some(store) = store() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = ModelStore::new(dir.path());
    crate::common::copy_folder(&store.folder(MODEL), &copy.folder(MODEL));
    let weights = copy.folder(MODEL).join("efficientnet-lite0-57934424.pth");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&weights, bytes).unwrap();
    let err = ImageEmbedder::from_store(&copy, MODEL, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string()
            .contains("kai models fetch efficientnet-lite0"),
        "{err}"
    );
}
