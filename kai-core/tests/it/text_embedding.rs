//! Text embeddings against sentence-transformers' reference vectors.

use kai_core::{TextEmbedder, cosine_similarity};
use serde::Deserialize;

use crate::common::{embedder, max_abs_diff};

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    sentences: Vec<ReferenceSentence>,
}

#[derive(Deserialize)]
struct ReferenceSentence {
    text: String,
    word_pieces: usize,
    vector: Vec<f32>,
}

fn reference() -> Reference {
    let text = include_str!("../fixtures/text_reference.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn texts(reference: &Reference) -> Vec<&str> {
    reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect()
}

#[test]
fn fixture_covers_long_inputs() {
    let reference = reference();
    assert!(reference.sentences.len() >= 10);
    assert!(reference.sentences.iter().any(|s| s.word_pieces > 128));
    assert!(reference.sentences.iter().any(|s| s.word_pieces > 256));
    assert!(reference.sentences.iter().any(|s| s.text.is_empty()));
}

#[test]
fn matches_sentence_transformers() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    assert_eq!(embedder.max_sequence_length(), reference.max_seq_length);

    let vectors = embedder.embed(&texts(&reference)).unwrap();
    assert_eq!(vectors.len(), reference.sentences.len());
    for (sentence, vector) in reference.sentences.iter().zip(&vectors) {
        let similarity = cosine_similarity(vector, &sentence.vector);
        assert!(
            similarity >= 0.9999,
            "cosine {similarity} for {:?} ({} word pieces)",
            sentence.text,
            sentence.word_pieces
        );
    }
}

#[test]
fn batch_equals_one_at_a_time() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    let batched = embedder.embed(&texts(&reference)).unwrap();
    for (sentence, row) in reference.sentences.iter().zip(&batched) {
        let single = embedder.embed_one(&sentence.text).unwrap();
        let diff = max_abs_diff(row, &single);
        assert!(
            diff <= 1e-5,
            "max difference {diff} for {:?}",
            sentence.text
        );
    }
}

#[test]
fn batch_size_does_not_change_vectors() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    let texts = texts(&reference);
    let default = embedder.embed(&texts).unwrap();
    let store = crate::common::store_with_model().unwrap();
    let small = TextEmbedder::from_store(&store, crate::common::MODEL, embedder.device())
        .unwrap()
        .with_batch_size(3)
        .unwrap();
    let regrouped = small.embed(&texts).unwrap();
    let diff = max_abs_diff(default.as_slice(), regrouped.as_slice());
    assert!(diff <= 1e-5, "max difference {diff}");
}

#[test]
fn output_is_deterministic_and_unit_length() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    let first = embedder.embed(&texts(&reference)).unwrap();
    let second = embedder.embed(&texts(&reference)).unwrap();
    assert_eq!(first, second);
    for vector in &first {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert!(vector.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn empty_input_gives_no_vectors() {
    let Some(embedder) = embedder() else { return };
    let none: [&str; 0] = [];
    let vectors = embedder.embed(&none).unwrap();
    assert!(vectors.is_empty());
    assert_eq!(vectors.dimension(), 384);
}

#[test]
fn overlong_input_is_truncated_not_rejected() {
    let Some(embedder) = embedder() else { return };
    // 10 MB in one text: cut before tokenizing, so it costs no more than a short text.
    let huge = "granite ".repeat(1_300_000);
    let cut = "granite ".repeat(300);
    let vectors = embedder.embed(&[huge.as_str(), cut.as_str()]).unwrap();
    // Both keep the same first 254 word pieces, so they embed identically.
    let diff = max_abs_diff(vectors.get(0).unwrap(), vectors.get(1).unwrap());
    assert!(diff <= 1e-5, "max difference {diff}");
}

#[test]
fn similar_materials_score_higher() {
    let Some(embedder) = embedder() else { return };
    let v = embedder
        .embed(&[
            "oak parquet flooring",
            "solid wood floor boards",
            "stainless steel sink",
        ])
        .unwrap();
    let related = cosine_similarity(v.get(0).unwrap(), v.get(1).unwrap());
    let unrelated = cosine_similarity(v.get(0).unwrap(), v.get(2).unwrap());
    assert!(
        related > unrelated + 0.2,
        "related {related}, unrelated {unrelated}"
    );
}

#[test]
fn batch_size_out_of_range_is_rejected() {
    let Some(embedder) = embedder() else { return };
    let store = crate::common::store_with_model().unwrap();
    for size in [0, kai_core::embed::MAX_BATCH_SIZE + 1, usize::MAX] {
        let err = TextEmbedder::from_store(&store, crate::common::MODEL, embedder.device())
            .unwrap()
            .with_batch_size(size)
            .unwrap_err();
        assert_eq!(err.kind(), kai_core::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(&size.to_string()), "{err}");
    }
}
