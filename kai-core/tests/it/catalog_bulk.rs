//! Materials stored with caller-supplied vectors, on both backends: no model is loaded,
//! and bad vectors are rejected before anything is written.

use std::path::Path;

use kai_core::ErrorKind;
use kai_core::catalog::{
    Catalog, EmbeddedMaterial, ExpectedVersion, MAX_EMBEDDED_BATCH, MaterialFilter, MaterialInput,
};
use kai_core::index::Filter;
use serde_json::Map;

use crate::catalog::{Backend, Env, photos};
use crate::on_both_backends;

on_both_backends!(
    embedded_materials_are_searchable,
    bad_vectors_are_rejected_and_nothing_stored,
    embedded_write_checks_the_expected_version,
    keyword_search_filters_in_the_database,
);

/// The models the synthetic vectors claim to come from; they have no built-in manifest,
/// so each space takes the dimension of its first vector.
const TEXT_MODEL: &str = "synthetic-text";
const IMAGE_MODEL: &str = "synthetic-image";

pub fn open_synthetic(env: &Env, root: &Path) -> Catalog {
    let mut options = env.options(root);
    options.text_model = TEXT_MODEL.into();
    options.image_model = IMAGE_MODEL.into();
    Catalog::open(options).unwrap()
}

pub fn record(id: &str, material_type: &str, tags: &[&str], images: &[&str]) -> MaterialInput {
    MaterialInput {
        id: id.into(),
        name: format!("Material {id}"),
        material_type: material_type.into(),
        collection_id: Some("synthetic".into()),
        manufacturer: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        description: format!("A {material_type} sample"),
        properties: Map::new(),
        images: images.iter().map(|i| (*i).to_owned()).collect(),
    }
}

fn embedded(record: MaterialInput, text: Vec<f32>, images: Vec<Vec<f32>>) -> EmbeddedMaterial {
    EmbeddedMaterial {
        record,
        text_vector: text,
        image_vectors: images,
        expected: ExpectedVersion::Any,
    }
}

fn embedded_materials_are_searchable(backend: Backend) {
    let Some(env) = Env::without_models(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = open_synthetic(&env, dir.path());
    let batch = vec![
        embedded(
            record("oak", "wood", &["brown"], &["brick.png"]),
            vec![1.0, 0.0, 0.0, 0.0],
            vec![vec![0.0, 0.0, 2.0]],
        ),
        embedded(
            record("ash", "wood", &["pale"], &[]),
            vec![0.9, 0.1, 0.0, 0.0],
            vec![],
        ),
        embedded(
            record("slate", "stone", &["grey"], &["coffee.jpg", "rocket.jpg"]),
            vec![0.0, 1.0, 0.0, 0.0],
            vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]],
        ),
    ];
    let stored = catalog.put_embedded(&batch, &photos()).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2].images.len(), 2);
    assert_eq!(catalog.text_index().len().unwrap(), 3);
    assert_eq!(catalog.image_index().len().unwrap(), 3);
    assert_eq!(catalog.text_index().dimension().unwrap(), Some(4));
    assert_eq!(catalog.image_index().dimension().unwrap(), Some(3));
    assert_eq!(catalog.text_index().model(), TEXT_MODEL);

    // Stored vectors are scaled to unit length.
    let oak_image = catalog
        .image_index()
        .get(stored[0].images[0].key)
        .unwrap()
        .unwrap();
    assert_eq!(oak_image, [0.0, 0.0, 1.0]);

    let hits = catalog
        .text_index()
        .search(&[1.0, 0.05, 0.0, 0.0], 3, None)
        .unwrap();
    assert_eq!(hits[0].id, stored[0].key, "{hits:?}");
    let stone = Filter {
        material_type: Some("stone".into()),
        ..Filter::default()
    };
    let hits = catalog
        .text_index()
        .search(&[1.0, 0.0, 0.0, 0.0], 3, Some(&stone))
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        [stored[2].key]
    );
    let pale = Filter {
        tags: vec!["pale".into()],
        ..Filter::default()
    };
    let hits = catalog
        .text_index()
        .search_exact(&[1.0, 0.0, 0.0, 0.0], 3, Some(&pale))
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        [stored[1].key]
    );

    // Keyword search needs no model either.
    let wood = MaterialFilter {
        material_type: Some("wood".into()),
        ..MaterialFilter::default()
    };
    assert_eq!(catalog.list(&wood, 0, 10).unwrap().len(), 2);
    let keys: Vec<u64> = catalog
        .storage()
        .keyword_search("grey stone", &MaterialFilter::default(), 10)
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, [stored[2].key]);

    // A reopened catalog finds the same spaces.
    drop(catalog);
    let catalog = open_synthetic(&env, dir.path());
    assert_eq!(catalog.text_index().len().unwrap(), 3);
}

fn bad_vectors_are_rejected_and_nothing_stored(backend: Backend) {
    let Some(env) = Env::without_models(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = open_synthetic(&env, dir.path());
    let good = embedded(record("oak", "wood", &[], &[]), vec![1.0, 0.0], vec![]);
    catalog
        .put_embedded(std::slice::from_ref(&good), &photos())
        .unwrap();

    let with_text = |id: &str, text: Vec<f32>| embedded(record(id, "wood", &[], &[]), text, vec![]);
    let cases: Vec<(Vec<EmbeddedMaterial>, &str)> = vec![
        (
            vec![with_text("nan", vec![f32::NAN, 1.0])],
            "component 0 is NaN",
        ),
        (
            vec![with_text("inf", vec![1.0, f32::INFINITY])],
            "component 1 is inf",
        ),
        (
            vec![with_text("minus-inf", vec![f32::NEG_INFINITY, 1.0])],
            "component 0 is -inf",
        ),
        (vec![with_text("short", vec![1.0])], "has 1 components"),
        (vec![with_text("zero", vec![0.0, 0.0])], "length 0"),
        (vec![with_text("empty", vec![])], "has 0 components"),
        (
            vec![embedded(
                record("no-vector", "wood", &[], &["brick.png"]),
                vec![1.0, 0.0],
                vec![],
            )],
            "1 images but 0 image vectors",
        ),
        (
            vec![embedded(
                record("bad-image-vector", "wood", &[], &["brick.png"]),
                vec![1.0, 0.0],
                vec![vec![1.0, f32::NAN]],
            )],
            "vector of image `brick.png` of material `bad-image-vector`",
        ),
        (
            vec![
                with_text("twice", vec![1.0, 0.0]),
                with_text("twice", vec![0.0, 1.0]),
            ],
            "appears twice",
        ),
        (vec![with_text("bad id!", vec![1.0, 0.0])], "`bad id!`"),
        // The good first material is not stored when a later one of the batch is bad.
        (
            vec![
                with_text("first-good", vec![0.0, 1.0]),
                with_text("second-bad", vec![f32::NAN, 0.0]),
            ],
            "material `second-bad`",
        ),
    ];
    for (batch, expected) in cases {
        let err = catalog.put_embedded(&batch, &photos()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{expected}: {err}");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }

    let missing = embedded(
        record("missing", "wood", &[], &["nope.jpg"]),
        vec![1.0, 0.0],
        vec![vec![1.0, 0.0, 0.0]],
    );
    let err = catalog.put_embedded(&[missing], &photos()).unwrap_err();
    assert!(err.to_string().contains("nope.jpg"), "{err}");

    let too_many = vec![good.clone(); MAX_EMBEDDED_BATCH + 1];
    let err = catalog.put_embedded(&too_many, &photos()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("over the limit"), "{err}");

    assert_eq!(catalog.storage().count().unwrap(), 1);
    assert_eq!(catalog.text_index().len().unwrap(), 1);
    assert_eq!(catalog.image_index().len().unwrap(), 0);
    assert_eq!(catalog.history("oak").unwrap().len(), 1);
    assert!(catalog.get("first-good").unwrap().is_none());
}

fn embedded_write_checks_the_expected_version(backend: Backend) {
    let Some(env) = Env::without_models(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = open_synthetic(&env, dir.path());
    let mut oak = embedded(record("oak", "wood", &[], &[]), vec![1.0, 0.0], vec![]);
    oak.expected = ExpectedVersion::Absent;
    catalog
        .put_embedded(std::slice::from_ref(&oak), &photos())
        .unwrap();
    let err = catalog
        .put_embedded(std::slice::from_ref(&oak), &photos())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    oak.expected = ExpectedVersion::Exactly(1);
    oak.record.name = "Oak, oiled".into();
    let stored = catalog
        .put_embedded(std::slice::from_ref(&oak), &photos())
        .unwrap();
    assert_eq!(stored[0].version, 2);
    let err = catalog
        .put_embedded(std::slice::from_ref(&oak), &photos())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("at version 2"), "{err}");
    assert_eq!(catalog.get("oak").unwrap().unwrap().version, 2);

    // A conflict in the middle of a batch: PostgreSQL stores none of the batch, an
    // embedded store keeps the materials before the conflict. Either way the vectors
    // stay in step with the records, so the store reopens.
    let ash = embedded(record("ash", "wood", &[], &[]), vec![0.0, 1.0], vec![]);
    oak.expected = ExpectedVersion::Exactly(1);
    let err = catalog
        .put_embedded(&[ash, oak.clone()], &photos())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let ash_stored = catalog.get("ash").unwrap().is_some();
    assert_eq!(ash_stored, backend == Backend::Sqlite);
    drop(catalog);
    let mut catalog = open_synthetic(&env, dir.path());
    let count = catalog.storage().count().unwrap();
    assert_eq!(catalog.text_index().len().unwrap(), count);

    // After a deletion the id counts as absent again and continues its history.
    assert!(catalog.delete("oak").unwrap());
    oak.expected = ExpectedVersion::Absent;
    let again = catalog
        .put_embedded(std::slice::from_ref(&oak), &photos())
        .unwrap();
    assert_eq!(again[0].version, 4);
    let changes: Vec<String> = catalog
        .history("oak")
        .unwrap()
        .into_iter()
        .map(|v| v.change)
        .collect();
    assert_eq!(changes, ["created", "updated", "deleted", "created"]);
}

fn keyword_search_filters_in_the_database(backend: Backend) {
    let Some(env) = Env::without_models(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = open_synthetic(&env, dir.path());
    // 300 wood materials match "oak" before the one stone material does, so a filter
    // applied after a top-200 cut would lose the stone one.
    let mut batch: Vec<EmbeddedMaterial> = (0..300)
        .map(|i| {
            let mut input = record(&format!("oak-{i:03}"), "wood", &["brown"], &[]);
            input.name = "Oak oak oak planks".into();
            embedded(input, vec![1.0, 0.0, 0.0, i as f32], vec![])
        })
        .collect();
    let mut stone = record("oak-grey-slate", "stone", &["grey", "split"], &[]);
    stone.description = "Slate with an oak-like grain".into();
    batch.push(embedded(stone, vec![0.0, 1.0, 0.0, 0.0], vec![]));
    catalog.put_embedded(&batch, &photos()).unwrap();

    let storage = catalog.storage();
    let everything = storage
        .keyword_search("oak", &MaterialFilter::default(), 200)
        .unwrap();
    assert_eq!(everything.len(), 200);
    let stone_only = MaterialFilter {
        material_type: Some("stone".into()),
        ..MaterialFilter::default()
    };
    let hits = storage.keyword_search("oak", &stone_only, 200).unwrap();
    assert_eq!(hits.len(), 1);
    let found = storage.get_by_key(hits[0].0).unwrap().unwrap();
    assert_eq!(found.id, "oak-grey-slate");
    let tagged = MaterialFilter {
        tags: vec!["grey".into(), "split".into()],
        ..MaterialFilter::default()
    };
    assert_eq!(
        storage.keyword_search("oak", &tagged, 200).unwrap().len(),
        1
    );
    let missing_tag = MaterialFilter {
        tags: vec!["grey".into(), "polished".into()],
        ..MaterialFilter::default()
    };
    assert!(
        storage
            .keyword_search("oak", &missing_tag, 200)
            .unwrap()
            .is_empty()
    );
    let other_collection = MaterialFilter {
        collection_id: Some("elsewhere".into()),
        ..MaterialFilter::default()
    };
    assert!(
        storage
            .keyword_search("oak", &other_collection, 200)
            .unwrap()
            .is_empty()
    );
}
