//! The text embedder on a CUDA GPU, compared with the CPU reference vectors.

use kai_core::{DeviceRequest, TextEmbedder, cosine_similarity};

use crate::common::{MODEL, store_with_model};

#[test]
fn cuda_matches_reference_vectors() {
    if !cfg!(feature = "cuda") {
        eprintln!("skipped: needs a build with `--features cuda` and a CUDA GPU");
        return;
    }
    let Some(store) = store_with_model() else {
        return;
    };
    let device = match DeviceRequest::Cuda(0).open() {
        Ok(device) => device,
        Err(err) => {
            eprintln!("skipped: no usable CUDA device: {err}");
            return;
        }
    };
    let embedder = TextEmbedder::from_store(&store, MODEL, &device).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/text_reference.json")).unwrap();
    for sentence in reference["sentences"].as_array().unwrap() {
        let text = sentence["text"].as_str().unwrap();
        let expected: Vec<f32> = sentence["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let got = embedder.embed_one(text).unwrap();
        let similarity = cosine_similarity(&got, &expected);
        assert!(
            similarity >= 0.9999,
            "cosine {similarity} on cuda for {text:?}"
        );
    }
}
