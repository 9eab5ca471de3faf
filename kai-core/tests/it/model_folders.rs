//! Loading model folders: built-in models with checksums, plain Hugging Face folders, and
//! the errors for missing, corrupt and unsupported files.

use std::fs;

use kai_core::models::{ModelState, REQUIRED_FILES};
use kai_core::{Device, ErrorKind, ModelStore, TextEmbedder};

use crate::common::{MODEL, copy_folder, embedder, max_abs_diff, store_with_model};

#[test]
fn corrupt_file_names_file_and_fetch_command() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = ModelStore::new(dir.path());
    copy_folder(&store.folder(MODEL), &copy.folder(MODEL));

    // Same size, one byte changed: only the checksum can tell.
    let vocab = copy.folder(MODEL).join("vocab.txt");
    let mut bytes = fs::read(&vocab).unwrap();
    bytes[100] ^= 0x20;
    fs::write(&vocab, bytes).unwrap();

    let err = TextEmbedder::from_store(&copy, MODEL, &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    let message = err.to_string();
    assert!(message.contains("vocab.txt"), "{message}");
    assert!(
        message.contains("kai models fetch all-minilm-l6-v2"),
        "{message}"
    );

    let listed = copy.list().unwrap();
    assert_eq!(
        listed[0].state,
        ModelState::Corrupt(vec!["vocab.txt".into()])
    );
}

#[test]
fn hugging_face_folder_loads_without_manifest() {
    let Some(store) = store_with_model() else {
        return;
    };
    let Some(builtin) = embedder() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("my-minilm");
    copy_folder(&store.folder(MODEL), &folder);

    // By path, and by folder name inside another model directory.
    let by_path = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap();
    let by_name =
        TextEmbedder::from_store(&ModelStore::new(dir.path()), "my-minilm", &Device::Cpu).unwrap();
    assert_eq!(by_path.name(), "my-minilm");
    assert_eq!(by_path.max_sequence_length(), 256);
    assert!(by_path.normalizes());

    let text = ["hand-made terracotta floor tiles"];
    let expected = builtin.embed(&text).unwrap();
    for loaded in [by_path, by_name] {
        let got = loaded.embed(&text).unwrap();
        assert!(max_abs_diff(got.as_slice(), expected.as_slice()) <= 1e-6);
    }
}

#[test]
fn hugging_face_folder_without_sentence_files_uses_defaults() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("bare");
    fs::create_dir(&folder).unwrap();
    for file in REQUIRED_FILES {
        fs::copy(store.folder(MODEL).join(file), folder.join(file)).unwrap();
    }
    let loaded = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap();
    // Without sentence_bert_config.json and modules.json: the position limit, no scaling.
    assert_eq!(loaded.max_sequence_length(), 512);
    assert!(!loaded.normalizes());
}

#[test]
fn truncated_weights_name_the_file() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("truncated");
    fs::create_dir(&folder).unwrap();
    for file in REQUIRED_FILES {
        fs::copy(store.folder(MODEL).join(file), folder.join(file)).unwrap();
    }
    let weights = folder.join("model.safetensors");
    let bytes = fs::read(&weights).unwrap();
    fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let err = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn invalid_config_and_tokenizer_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("broken");
    fs::create_dir(&folder).unwrap();
    for file in REQUIRED_FILES {
        fs::write(folder.join(file), "{ not json").unwrap();
    }
    let store = ModelStore::new(dir.path());
    let err = TextEmbedder::from_store(&store, "broken", &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(err.to_string().contains("config.json"), "{err}");

    let Some(real) = store_with_model() else {
        return;
    };
    fs::copy(
        real.folder(MODEL).join("config.json"),
        folder.join("config.json"),
    )
    .unwrap();
    let err = TextEmbedder::from_store(&store, "broken", &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn other_architecture_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("gpt");
    fs::create_dir(&folder).unwrap();
    for file in REQUIRED_FILES {
        fs::write(folder.join(file), "{}").unwrap();
    }
    fs::write(folder.join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let err =
        TextEmbedder::from_store(&ModelStore::new(dir.path()), "gpt", &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    assert!(err.to_string().contains("gpt2"), "{err}");
}

/// Copies the files a BERT folder needs, plus the pooling config, into `name` under `dir`.
fn bare_copy(store: &ModelStore, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let folder = dir.join(name);
    fs::create_dir_all(folder.join("1_Pooling")).unwrap();
    for file in REQUIRED_FILES.iter().chain(&["1_Pooling/config.json"]) {
        fs::copy(store.folder(MODEL).join(file), folder.join(file)).unwrap();
    }
    folder
}

#[test]
fn tiny_position_table_is_rejected() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = bare_copy(&store, dir.path(), "tiny");
    let config = fs::read_to_string(folder.join("config.json")).unwrap();
    let config = config.replace(
        "\"max_position_embeddings\": 512",
        "\"max_position_embeddings\": 1",
    );
    fs::write(folder.join("config.json"), config).unwrap();

    let err = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(
        err.to_string().contains("max_position_embeddings 1"),
        "{err}"
    );
}

#[test]
fn combined_pooling_modes_are_not_supported() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = bare_copy(&store, dir.path(), "cls-and-mean");
    let pooling = r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true,
        "pooling_mode_mean_tokens": true}"#;
    fs::write(folder.join("1_Pooling/config.json"), pooling).unwrap();

    let err = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    assert!(err.to_string().contains("pooling_mode_cls_token"), "{err}");

    let pooling = r#"{"pooling_mode_mean_sqrt_len_tokens": true}"#;
    fs::write(folder.join("1_Pooling/config.json"), pooling).unwrap();
    let err = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    assert!(err.to_string().contains("mean_sqrt_len"), "{err}");
}

#[test]
fn cls_pooling_config_is_followed() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = bare_copy(&store, dir.path(), "cls");
    fs::write(
        folder.join("1_Pooling/config.json"),
        r#"{"pooling_mode_cls_token": true}"#,
    )
    .unwrap();
    let cls = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap();
    let mean = embedder().unwrap();
    let a = cls.embed(&["glazed ceramic tiles"]).unwrap();
    let b = mean.embed(&["glazed ceramic tiles"]).unwrap();
    assert!(max_abs_diff(a.as_slice(), b.as_slice()) > 1e-3);
}

#[test]
fn empty_name_and_file_path_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    for name in ["", "  "] {
        let err = store.resolve(name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("empty"), "{err}");
    }
    let file = dir.path().join("weights.bin");
    fs::write(&file, b"x").unwrap();
    let err = store.resolve(file.to_str().unwrap()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not a model folder"), "{err}");
}

#[test]
fn bare_name_prefers_model_directory() {
    let Some(store) = store_with_model() else {
        return;
    };
    // Integration tests run in the package folder, where `src` is a folder without a model.
    assert!(std::path::Path::new("src").is_dir());
    let dir = tempfile::tempdir().unwrap();
    bare_copy(&store, dir.path(), "src");
    let loaded = TextEmbedder::from_store(&ModelStore::new(dir.path()), "src", &Device::Cpu);
    assert_eq!(loaded.unwrap().dimension(), 384);
}

#[test]
fn tokenizer_larger_than_vocabulary_is_rejected() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = bare_copy(&store, dir.path(), "small-vocab");
    let config = fs::read_to_string(folder.join("config.json")).unwrap();
    fs::write(folder.join("config.json"), config.replace("30522", "1000")).unwrap();

    let err = TextEmbedder::from_store(&store, folder.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(err.to_string().contains("vocab_size 1000"), "{err}");
}
