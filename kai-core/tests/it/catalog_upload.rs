//! Creating and replacing single materials with uploaded image bytes.

use std::path::Path;

use kai_core::ErrorKind;
use kai_core::catalog::{
    Catalog, MAX_IMAGES, MaterialFilter, MaterialInput, SearchQuery, UploadedImage,
};
use kai_core::image::{ImageLimits, open};
use serde_json::json;

use crate::catalog::{Backend, Env, photos, records, write_catalog};

crate::on_both_backends!(
    create_stores_uploaded_photo,
    failed_create_changes_nothing,
    replace_keeps_adds_and_replaces_photos,
    failed_replace_changes_nothing,
    listed_empty_images_remove_photos,
    delete_checks_the_version,
    stored_images_pass_lowered_limits,
    ids_must_be_usable_in_urls,
);

/// Opens a store with the four test records imported.
fn imported(env: &Env, dir: &Path) -> Catalog {
    let folder = dir.join("catalog");
    write_catalog(&folder, &records());
    let mut catalog = env.open(&dir.join("store"));
    catalog.import(&folder, &mut |_| {}).unwrap();
    catalog
}

fn upload(name: &str) -> UploadedImage {
    UploadedImage {
        name: name.to_owned(),
        bytes: std::fs::read(photos().join(name)).unwrap(),
    }
}

fn record(id: &str) -> MaterialInput {
    serde_json::from_value(json!({
        "id": id,
        "name": "Suit fabric",
        "materialType": "Fabric",
        "tags": ["White"],
        "description": "White coated fabric of a space suit"
    }))
    .unwrap()
}

/// Counts the files under the store's images folder.
fn image_files(store: &Path) -> usize {
    fn count(folder: &Path) -> usize {
        std::fs::read_dir(folder)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&store.join("images"))
}

fn material_count(catalog: &Catalog) -> usize {
    catalog
        .list(&MaterialFilter::default(), 0, usize::MAX)
        .unwrap()
        .len()
}

fn create_stores_uploaded_photo(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = imported(&env, dir.path());

    let created = catalog
        .create_uploaded(&record("suit-fabric"), &[upload("astronaut.jpg")])
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.material_type, "fabric");
    assert_eq!(created.images.len(), 1);
    assert!(created.images[0].width > 0);
    assert!(catalog.image_path(&created.images[0].path).is_file());
    assert_eq!(catalog.history("suit-fabric").unwrap()[0].change, "created");

    // The uploaded photo is in the image space: searching by it finds the material.
    let photo = open(&photos().join("astronaut.jpg"), &ImageLimits::default()).unwrap();
    let hits = catalog
        .search(&SearchQuery {
            image: Some(photo),
            top_k: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(hits[0].id, "suit-fabric");

    // A record without photos is stored too.
    let plain = catalog
        .create_uploaded(&record("plain-fabric"), &[])
        .unwrap();
    assert!(plain.images.is_empty());
    assert_eq!(material_count(&catalog), 6);
}

fn failed_create_changes_nothing(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut catalog = imported(&env, dir.path());
    let files = image_files(&store);
    let before = catalog.get("red-brick").unwrap().unwrap();

    let mut existing = record("red-brick");
    existing.name = "Overwritten".into();
    let err = catalog
        .create_uploaded(&existing, &[upload("rocket.jpg")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("red-brick"), "{err}");

    let corrupt = UploadedImage {
        name: "broken.jpg".into(),
        bytes: b"\xff\xd8\xff not a jpeg".to_vec(),
    };
    let err = catalog
        .create_uploaded(&record("broken-photo"), &[upload("coffee.jpg"), corrupt])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("broken.jpg"), "{err}");

    let mut named_files = record("named-files");
    named_files.images = vec!["images/chelsea.jpg".into()];
    let err = catalog.create_uploaded(&named_files, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("images/chelsea.jpg"), "{err}");

    let too_many = vec![upload("brick.png"); MAX_IMAGES + 1];
    let err = catalog
        .create_uploaded(&record("many-photos"), &too_many)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let mut bad_id = record("bad id");
    bad_id.id = "bad id".into();
    let err = catalog.create_uploaded(&bad_id, &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    assert_eq!(catalog.get("red-brick").unwrap().unwrap(), before);
    assert_eq!(material_count(&catalog), 4);
    for id in ["broken-photo", "named-files", "many-photos"] {
        assert!(catalog.get(id).unwrap().is_none(), "{id}");
    }
    assert_eq!(image_files(&store), files, "no image file was copied");
    assert_eq!(catalog.image_index().len().unwrap(), 4);
}

fn replace_keeps_adds_and_replaces_photos(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = imported(&env, dir.path());
    let original = catalog.get("tabby-fur").unwrap().unwrap();
    let kept = original.images[0].path.clone();

    // No listed paths and no uploads: the photos stay.
    let mut fields: MaterialInput = serde_json::from_value(records()[0].clone()).unwrap();
    fields.images.clear();
    fields.name = "Tabby fur, long".into();
    let renamed = catalog.replace_uploaded(&fields, &[], None).unwrap();
    assert_eq!(renamed.version, 2);
    assert_eq!(renamed.name, "Tabby fur, long");
    assert_eq!(renamed.images.len(), 1);
    assert_eq!(renamed.images[0].path, kept);

    // A listed path is kept and uploads follow it, at the expected version.
    fields.images = vec![kept.clone()];
    let added = catalog
        .replace_uploaded(&fields, &[upload("camera.png")], Some(2))
        .unwrap();
    assert_eq!(added.version, 3);
    let paths: Vec<&str> = added.images.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0], kept);
    assert_eq!(catalog.image_index().len().unwrap(), 5);

    // Uploads alone replace the photos.
    fields.images.clear();
    let replaced = catalog
        .replace_uploaded(&fields, &[upload("coffee.jpg")], None)
        .unwrap();
    assert_eq!(replaced.version, 4);
    assert_eq!(replaced.images.len(), 1);
    assert_ne!(replaced.images[0].path, kept);
    assert_eq!(catalog.image_index().len().unwrap(), 4);
    assert_eq!(catalog.history("tabby-fur").unwrap().len(), 4);
}

fn failed_replace_changes_nothing(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut catalog = imported(&env, dir.path());
    let before = catalog.get("launch-steel").unwrap().unwrap();
    let files = image_files(&store);
    let mut fields: MaterialInput = serde_json::from_value(records()[2].clone()).unwrap();
    fields.images.clear();
    fields.name = "Launch aluminium".into();

    let err = catalog
        .replace_uploaded(&fields, &[upload("rocket.jpg")], Some(7))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("version 1"), "{err}");

    let mut foreign = fields.clone();
    let other_path = catalog.get("red-brick").unwrap().unwrap().images[0]
        .path
        .clone();
    foreign.images = vec![other_path.clone()];
    let err = catalog.replace_uploaded(&foreign, &[], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains(&other_path), "{err}");

    let mut unknown = fields.clone();
    unknown.id = "no-such-material".into();
    let err = catalog.replace_uploaded(&unknown, &[], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(catalog.get("no-such-material").unwrap().is_none());

    let corrupt = UploadedImage {
        name: "empty.png".into(),
        bytes: Vec::new(),
    };
    let err = catalog
        .replace_uploaded(&fields, &[corrupt], None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("empty.png"), "{err}");

    assert_eq!(catalog.get("launch-steel").unwrap().unwrap(), before);
    assert_eq!(catalog.history("launch-steel").unwrap().len(), 1);
    assert_eq!(image_files(&store), files);
}

fn listed_empty_images_remove_photos(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = imported(&env, dir.path());
    let mut fields: MaterialInput = serde_json::from_value(records()[0].clone()).unwrap();
    fields.images.clear();

    let kept = catalog.replace_uploaded(&fields, &[], None).unwrap();
    assert_eq!(kept.images.len(), 1, "an unlisted replace keeps the photos");

    let removed = catalog.replace_uploaded_listed(&fields, &[], None).unwrap();
    assert_eq!(removed.version, 3);
    assert!(removed.images.is_empty(), "{removed:?}");
    assert_eq!(catalog.image_index().len().unwrap(), 3);
    let history = catalog.history("tabby-fur").unwrap();
    assert_eq!(history[2].record["images"], json!([]));
}

fn delete_checks_the_version(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = imported(&env, dir.path());

    let err = catalog.delete_expecting("red-brick", Some(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("at version 1"), "{err}");
    assert!(catalog.get("red-brick").unwrap().is_some());
    assert_eq!(catalog.history("red-brick").unwrap().len(), 1);
    assert_eq!(catalog.image_index().len().unwrap(), 4);

    assert!(catalog.delete_expecting("red-brick", Some(1)).unwrap());
    assert!(catalog.get("red-brick").unwrap().is_none());
    assert_eq!(catalog.image_index().len().unwrap(), 3);
    assert_eq!(catalog.text_index().len().unwrap(), 3);
    let history = catalog.history("red-brick").unwrap();
    assert_eq!(history.last().unwrap().change, "deleted");

    // An absent material is not a conflict, whatever version the caller expected.
    assert!(!catalog.delete_expecting("red-brick", Some(1)).unwrap());
}

fn stored_images_pass_lowered_limits(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    drop(imported(&env, dir.path()));

    // Limits far below the stored photos, as after lowering KAI_MAX_IMAGE_BYTES and
    // KAI_MAX_IMAGE_PIXELS.
    let mut options = env.options(&store);
    options.limits = ImageLimits {
        max_encoded_bytes: 100,
        max_pixels: 100,
    };
    let mut catalog = Catalog::open(options).unwrap();
    assert_eq!(catalog.reindex(&mut |_| {}).unwrap(), 4);
    let mut fields: MaterialInput = serde_json::from_value(records()[0].clone()).unwrap();
    fields.images.clear();
    fields.name = "Tabby fur, short".into();
    let kept = catalog.replace_uploaded(&fields, &[], None).unwrap();
    assert_eq!(kept.images.len(), 1);

    // An error about a stored file names it inside the store, not by its absolute path.
    let image = catalog.get("red-brick").unwrap().unwrap().images[0]
        .path
        .clone();
    std::fs::remove_file(store.join("images").join(&image)).unwrap();
    let message = catalog.reindex(&mut |_| {}).unwrap_err().to_string();
    assert!(message.contains(&format!("images/{image}")), "{message}");
    let root = store.to_string_lossy().into_owned();
    assert!(!message.contains(&root), "{message}");
}

fn ids_must_be_usable_in_urls(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = imported(&env, dir.path());
    for id in [".", "..", " lead", "trail "] {
        let err = catalog.create_uploaded(&record(id), &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&format!("`{id}`")), "{err}");
    }
    assert!(catalog.get("lead").unwrap().is_none());
    assert_eq!(material_count(&catalog), 4);
}
