//! The `kai` command run as a process: output formats, exit codes and error messages.

#![allow(clippy::unwrap_used)] // Test helpers unwrap: a panic is the failure report.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kai_core::models::{Manifest, ModelState, verify};
use kai_core::{Device, ModelStore, TextEmbedder};
use serde_json::Value;

const MODEL: &str = "all-minilm-l6-v2";

fn kai(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kai"));
    command
        .args(args)
        .env_remove("KAI_DEVICE")
        .env_remove("GPU_ENABLED");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("kai starts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the model store when the model is fetched; otherwise prints why the test is
/// skipped.
fn store_with_model() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    let manifest = Manifest::find(MODEL).unwrap();
    if verify(&manifest, &store.folder(MODEL)).ok() == Some(ModelState::Ready) {
        return Some(store);
    }
    eprintln!("skipped: {MODEL} not fetched; run `python3 models/fetch.py` or `kai models fetch`");
    None
}

fn model_dir(store: &ModelStore) -> PathBuf {
    store.root().to_path_buf()
}

#[test]
fn embed_json_matches_library_in_order() {
    let Some(store) = store_with_model() else {
        return;
    };
    let texts = ["polished concrete", "", "walnut veneer"];
    let output = run(kai(&["embed", "text", "--json"])
        .args(texts)
        .env("MODEL_DIR", model_dir(&store)));
    assert!(output.status.success(), "{}", stderr(&output));

    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["model"], MODEL);
    assert_eq!(json["dimension"], 384);
    let vectors = json["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), texts.len());

    let embedder = TextEmbedder::from_store(&store, MODEL, &Device::Cpu).unwrap();
    let expected = embedder.embed(&texts).unwrap();
    for (got, want) in vectors.iter().zip(&expected) {
        let got: Vec<f32> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), 384);
        let diff = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-6, "max difference {diff}");
    }
}

#[test]
fn embed_reads_file_and_stdin() {
    let Some(store) = store_with_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.txt");
    std::fs::write(&file, "slate roof tiles\nlinen curtains\n").unwrap();

    let output = run(kai(&["embed", "text", "first", "--file"])
        .arg(&file)
        .env("MODEL_DIR", model_dir(&store)));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].split(' ').count(), 384);

    let mut child = kai(&["embed", "text", "--json", "--file", "-"])
        .env("MODEL_DIR", model_dir(&store))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"slate roof tiles\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["vectors"].as_array().unwrap().len(), 1);
}

#[test]
fn embed_without_input_exits_2() {
    let output = run(&mut kai(&["embed", "text"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no text to embed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn embed_rejects_unreadable_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(kai(&["embed", "text", "--file"]).arg(dir.path().join("absent.txt")));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("absent.txt"),
        "{}",
        stderr(&output)
    );

    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [b'o', b'k', 0xff, 0xfe]).unwrap();
    let output = run(kai(&["embed", "text", "--file"]).arg(&binary));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
}

#[test]
fn missing_model_exits_4_naming_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(kai(&["embed", "text", "hello"]).env("MODEL_DIR", dir.path()));
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output).contains("kai models fetch all-minilm-l6-v2"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_device_settings_are_rejected() {
    let output = run(kai(&["embed", "text", "hello"]).env("KAI_DEVICE", "tpu"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("KAI_DEVICE"),
        "{}",
        stderr(&output)
    );

    let output =
        run(kai(&["embed", "text", "hello", "--device", "cuda:0"]).env("GPU_ENABLED", "false"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("GPU_ENABLED"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn zero_batch_size_exits_2() {
    let Some(store) = store_with_model() else {
        return;
    };
    let output =
        run(kai(&["embed", "text", "x", "--batch-size", "0"]).env("MODEL_DIR", model_dir(&store)));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("batch_size"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn models_list_reports_state() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(kai(&["models", "list", "--json"]).env("MODEL_DIR", dir.path()));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["models"][0]["name"], MODEL);
    assert_eq!(json["models"][0]["state"], "missing");

    let Some(store) = store_with_model() else {
        return;
    };
    let output = run(kai(&["models", "list", "--json"]).env("MODEL_DIR", model_dir(&store)));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["models"][0]["state"], "ready");
    assert_eq!(json["models"][0]["dimension"], 384);
    assert_eq!(json["models"][0]["task"], "text-embedding");
    let image = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "efficientnet-lite0")
        .unwrap();
    assert_eq!(image["task"], "image-embedding");
    assert_eq!(image["dimension"], 1280);
}

#[test]
fn models_fetch_skips_verified_model() {
    let Some(store) = store_with_model() else {
        return;
    };
    let output =
        run(kai(&["models", "fetch", MODEL, "--json"]).env("MODEL_DIR", model_dir(&store)));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json[0]["downloaded"], false);
}

#[test]
fn models_fetch_unknown_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(kai(&["models", "fetch", "gpt-17"]).env("MODEL_DIR", dir.path()));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("gpt-17"), "{}", stderr(&output));
}

#[test]
fn closed_stdout_is_not_a_panic() {
    let Some(store) = store_with_model() else {
        return;
    };
    let texts: Vec<String> = (0..300).map(|i| format!("brick {i}")).collect();
    let mut child = kai(&["embed", "text"])
        .args(&texts)
        .env("MODEL_DIR", model_dir(&store))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before kai writes, as `kai … | head -0` would.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[test]
fn full_disk_on_stdout_exits_6() {
    let full = std::path::Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: this system has no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run(kai(&["models", "list"])
        .env("MODEL_DIR", dir.path())
        .stdout(std::fs::File::create(full).unwrap()));
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("standard output"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn empty_model_name_exits_2() {
    let output = run(&mut kai(&["embed", "text", "x", "--model", ""]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("empty"), "{}", stderr(&output));
}

#[test]
fn empty_environment_values_count_as_unset() {
    let Some(store) = store_with_model() else {
        return;
    };
    // MODEL_DIR= falls back to the default folder: list succeeds instead of a usage error.
    let output = run(kai(&["models", "list", "--json"]).env("MODEL_DIR", ""));
    assert!(output.status.success(), "{}", stderr(&output));

    let output = run(kai(&["embed", "text", "x", "--json"])
        .env("MODEL_DIR", model_dir(&store))
        .env("KAI_DEVICE", "")
        .env("GPU_ENABLED", ""));
    assert!(output.status.success(), "{}", stderr(&output));
}

fn photo(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kai-core/tests/fixtures/photos")
        .join(name)
}

fn stdout_json(output: &Output) -> Value {
    let text = std::str::from_utf8(&output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(text).unwrap()
}

#[test]
fn quality_json_reports_real_photos() {
    let photos = [
        ("chelsea.jpg", 451, 300),
        ("coffee.jpg", 600, 400),
        ("camera.png", 512, 512),
    ];
    let output = run(kai(&["quality", "--json"]).args(photos.map(|(name, _, _)| photo(name))));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let json = stdout_json(&output);
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), photos.len());
    for (report, (name, width, height)) in reports.iter().zip(photos) {
        assert!(report["path"].as_str().unwrap().ends_with(name), "{report}");
        assert_eq!(report["width"], width, "{report}");
        assert_eq!(report["height"], height, "{report}");
        let score = report["score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&score), "{report}");
        assert_eq!(report["reasons"], serde_json::json!([]), "{report}");
        assert_eq!(report["passed"], true, "{report}");
        for key in [
            "sharpness",
            "shadowsClipped",
            "highlightsClipped",
            "meanBrightness",
            "contrast",
            "noise",
        ] {
            assert!(report[key].is_number(), "{key} in {report}");
        }
        assert!(report.get("error").is_none(), "{report}");
    }
}

#[test]
fn quality_table_has_one_line_per_photo() {
    let output = run(kai(&["quality"])
        .arg(photo("rocket.jpg"))
        .arg(photo("brick.png")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 4, "score with two decimals: {line}");
        assert!(fields[1].parse::<f32>().is_ok(), "{line}");
        assert_eq!(fields[2], "ok", "{line}");
    }
}

#[test]
fn quality_missing_file_reported_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.jpg");
    let output = run(kai(&["quality", "--json"])
        .arg(photo("coffee.jpg"))
        .arg(&missing));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 of 2"), "{}", stderr(&output));

    let json = stdout_json(&output);
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["passed"], true, "{}", reports[0]);
    let failed = &reports[1];
    assert!(
        failed["error"].as_str().unwrap().contains("absent.jpg"),
        "{failed}"
    );
    assert_eq!(failed["code"], "KAI_STORAGE", "{failed}");
    assert!(failed.get("score").is_none(), "{failed}");
}

#[test]
fn quality_corrupt_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let bytes = std::fs::read(photo("chelsea.jpg")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image at all").unwrap();

    let output = run(kai(&["quality"]).arg(&truncated).arg(&garbage));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    for name in ["truncated.jpg", "garbage.png"] {
        let line = text.lines().find(|l| l.contains(name)).unwrap();
        assert!(line.contains("error: invalid image"), "{line}");
    }
    assert!(stderr(&output).contains("2 of 2"), "{}", stderr(&output));
}

#[test]
fn quality_threshold_flag_fails_good_photo() {
    let output =
        run(kai(&["quality", "--json", "--min-short-side", "1000"]).arg(photo("coffee.jpg")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = &stdout_json(&output)["reports"][0];
    assert_eq!(
        report["reasons"],
        serde_json::json!(["low_resolution"]),
        "{report}"
    );
    assert_eq!(report["passed"], false, "{report}");
    assert!(report["score"].as_f64().unwrap() < 0.5, "{report}");

    let output = run(kai(&["quality", "--min-sharpness", "100000"]).arg(photo("coffee.jpg")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.lines().nth(1).unwrap().ends_with("blurry"), "{text}");
}

#[test]
fn quality_invalid_threshold_exits_2() {
    for (flag, value) in [("--max-shadows-clipped", "2"), ("--max-noise", "-1")] {
        let output = run(kai(&["quality", flag, value]).arg(photo("coffee.jpg")));
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let field = flag.trim_start_matches("--").replace('-', "_");
        assert!(stderr(&output).contains(&field), "{}", stderr(&output));
        assert!(output.stdout.is_empty());
    }
}

const IMAGE_MODEL: &str = "efficientnet-lite0";

/// Returns whether EfficientNet-Lite0 is fetched; otherwise prints why the test is skipped.
fn image_model_ready() -> bool {
    let store = ModelStore::from_env();
    let manifest = Manifest::find(IMAGE_MODEL).unwrap();
    let ready = verify(&manifest, &store.folder(IMAGE_MODEL)).ok() == Some(ModelState::Ready);
    if !ready {
        eprintln!(
            "skipped: {IMAGE_MODEL} not fetched; run `python3 models/fetch.py {IMAGE_MODEL}` \
             or `kai models fetch {IMAGE_MODEL}`"
        );
    }
    ready
}

#[test]
fn embed_image_json_has_vectors_and_labels() {
    if !image_model_ready() {
        return;
    }
    let output = run(kai(&["embed", "image", "--json"])
        .arg(photo("coffee.jpg"))
        .arg(photo("chelsea.jpg")));
    assert!(output.status.success(), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["model"], IMAGE_MODEL);
    assert_eq!(json["dimension"], 1280);
    let vectors = json["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].as_array().unwrap().len(), 1280);
    let labels = json["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    let top = labels[0].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0]["label"], "espresso");
    let score = top[0]["score"].as_f64().unwrap();
    assert!(score > 0.5, "{score}");
    assert!(score <= 1.0, "{score}");
}

#[test]
fn embed_image_plain_prints_one_vector_per_photo() {
    if !image_model_ready() {
        return;
    }
    let output = run(kai(&["embed", "image", "--top-k", "0"])
        .arg(photo("brick.png"))
        .arg(photo("rocket.jpg")));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].split(' ').count(), 1280);
}

#[test]
fn embed_image_bad_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-photo.jpg");
    std::fs::write(&bad, b"plain text, not a JPEG").unwrap();
    let output = run(kai(&["embed", "image"]).arg(&bad));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not-a-photo.jpg"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn embed_image_pixel_limit_comes_from_environment() {
    let output = run(kai(&["embed", "image"])
        .arg(photo("coffee.jpg"))
        .env("KAI_MAX_IMAGE_PIXELS", "1000"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("KAI_MAX_IMAGE_PIXELS"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn embed_image_with_text_model_exits_4() {
    if store_with_model().is_none() {
        return;
    }
    let output = run(kai(&["embed", "image", "--model", MODEL]).arg(photo("coffee.jpg")));
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not an image embedding model"),
        "{}",
        stderr(&output)
    );
}

fn sample_catalog() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog")
}

/// Returns whether both embedding models are fetched; otherwise prints why the test is
/// skipped.
fn both_models_ready() -> bool {
    store_with_model().is_some() && image_model_ready()
}

#[test]
fn import_recognize_search_and_edit_a_store() {
    if !both_models_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store_arg = store.to_str().unwrap();

    let output = run(kai(&["import", "--json", "--store", store_arg]).arg(sample_catalog()));
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout_json(&output);
    assert!(report["created"].as_array().unwrap().len() >= 30);
    assert!(report["failed"].as_array().unwrap().is_empty());
    assert!(report["calibration"]["temperature"].as_f64().unwrap() > 0.0);

    // Again: nothing changes.
    let output = run(kai(&["import", "--store", store_arg]).arg(sample_catalog()));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("0 created, 0 updated"));

    let query = sample_catalog().join("../queries/altered-grey-fieldstone-wall.jpg");
    let output = run(kai(&["recognize", "--json", "--store", store_arg]).arg(&query));
    assert!(output.status.success(), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["materials"].as_array().unwrap().len(), 5);
    for key in ["id", "name", "materialType", "score"] {
        assert!(
            json["materials"][0].get(key).is_some(),
            "{key} missing: {json}"
        );
    }
    assert!(json["classes"][0]["confidence"].as_f64().unwrap() > 0.0);
    assert!(json["unknown"].is_boolean());
    assert!(json["processingTimeMs"].as_f64().unwrap() > 0.0);

    let output = run(&mut kai(&[
        "search",
        "--json",
        "--top-k",
        "3",
        "--store",
        store_arg,
        "brick wall",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let results = stdout_json(&output)["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["materialType"], "brick", "{results:?}");

    let output = run(&mut kai(&[
        "search", "--json", "--type", "wood", "--store", store_arg, "wall",
    ]));
    let results = stdout_json(&output)["results"].as_array().unwrap().clone();
    assert!(
        results.iter().all(|r| r["materialType"] == "wood"),
        "{results:?}"
    );

    let id = results[0]["id"].as_str().unwrap().to_owned();

    let output = run(kai(&["search", "--json", "--store", store_arg, "--image"]).arg(&query));
    assert!(output.status.success(), "{}", stderr(&output));
    let results = stdout_json(&output)["results"].as_array().unwrap().clone();
    assert_eq!(results[0]["id"], "grey-fieldstone-wall", "{results:?}");

    let output = run(&mut kai(&[
        "materials",
        "delete",
        "--store",
        store_arg,
        &id,
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&mut kai(&["materials", "get", "--store", store_arg, &id]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let output = run(&mut kai(&[
        "materials",
        "history",
        "--store",
        store_arg,
        &id,
    ]));
    let history = stdout_json(&output);
    assert_eq!(
        history.as_array().unwrap().last().unwrap()["change"],
        "deleted"
    );
}

#[test]
fn import_reports_bad_records_and_exits_2() {
    if !both_models_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(photo("brick.png"), folder.join("brick.png")).unwrap();
    std::fs::write(
        folder.join("catalog.json"),
        r#"[{"id": "brick", "name": "Brick", "materialType": "brick", "images": ["brick.png"]},
            {"id": "ghost", "name": "Ghost", "materialType": "wood", "images": ["ghost.jpg"]}]"#,
    )
    .unwrap();
    let store = dir.path().join("store");
    let output = run(kai(&["import", "--store", store.to_str().unwrap()]).arg(&folder));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("ghost"), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 created"));
}

#[test]
fn recognize_empty_store_exits_3() {
    if !both_models_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output =
        run(kai(&["recognize", "--store", dir.path().to_str().unwrap()]).arg(photo("brick.png")));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("kai import"),
        "{}",
        stderr(&output)
    );
    // A mistyped store is reported, not created.
    let missing = dir.path().join("no-such-store");
    let output = run(&mut kai(&[
        "search",
        "wood",
        "--store",
        missing.to_str().unwrap(),
    ]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!missing.exists());
}

fn params(store: &std::path::Path, args: &[&str]) -> Output {
    run(kai(&["params"])
        .args(args)
        .arg("--store")
        .arg(store)
        .env_remove("KAI_DATABASE_URL")
        .env_remove("PARAM_STORAGE_TYPE")
        .env_remove("PARAM_DB_CONNECTION")
        .env_remove("DEFAULT_PARAMETER_SET")
        .env_remove("SIMILARITY_THRESHOLD"))
}

#[test]
fn params_show_works_on_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let output = params(dir.path(), &["show", "standard", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["name"], "standard");
    assert_eq!(json["version"], 1);
    assert!(json["scope"].is_null());
    assert_eq!(json["values"]["recognition.top_k"], 5);
    assert_eq!(json["values"]["quality.min_sharpness"], 50.0);

    // A store folder that does not exist is not created by a command that only reads.
    let typo = dir.path().join("no-such-store");
    let output = params(&typo, &["list"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!typo.exists());

    let output = params(dir.path(), &["list"]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    for name in ["standard", "premium", "enterprise"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn params_set_history_diff_rollback_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let output = params(
        store,
        &[
            "set",
            "premium",
            "recognition.top_k=9",
            "quality.max_noise=5",
            "--expect-version",
            "1",
            "--author",
            "ana",
            "--note",
            "tighter noise",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["version"], 2);
    assert_eq!(json["values"]["quality.max_noise"], 5.0);
    assert_eq!(json["author"], "ana");

    // A stale version: exit 5, nothing written.
    let output = params(
        store,
        &[
            "set",
            "premium",
            "recognition.top_k=3",
            "--expect-version",
            "1",
        ],
    );
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("at version 2, not 1"),
        "{}",
        stderr(&output)
    );

    // An invalid value: exit 2, naming the parameter, value and rule.
    let output = params(store, &["set", "premium", "recognition.top_k=1000"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("recognition.top_k: 1000 is above the maximum 100"),
        "{}",
        stderr(&output)
    );
    let output = params(store, &["set", "premium", "no.such=1"]);
    assert_eq!(output.status.code(), Some(2));
    let output = params(store, &["show", "platinum"]);
    assert_eq!(output.status.code(), Some(3));

    let output = params(store, &["history", "premium", "--json"]);
    let history = stdout_json(&output);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["note"], "tighter noise");

    let output = params(store, &["diff", "premium", "1", "2", "--json"]);
    let diff = stdout_json(&output);
    let names: Vec<&str> = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quality.max_noise", "recognition.top_k"]);

    let output = params(store, &["rollback", "premium", "--to", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout_json(&output)["version"], 3);
    let output = params(store, &["diff", "premium", "1", "3"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("same values"));

    let output = params(store, &["show", "premium", "--version", "2", "--json"]);
    assert_eq!(stdout_json(&output)["values"]["recognition.top_k"], 9);

    let output = params(store, &["purge", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout_json(&output)["purged"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn params_schema_apply_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recon.toml");
    std::fs::write(
        &file,
        "[parameters.\"recon.ransac_threshold\"]\ntype = \"float\"\nmin = 0.1\nmax = 20\n\
         default = 2.0\nunit = \"px\"\ndescription = \"Largest reprojection error of an inlier.\"\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let output = params(
        &store,
        &["schema", "apply", "--json", file.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout_json(&output)["added"][0], "recon.ransac_threshold");
    // Versions written before stay as they were; new versions take the parameter.
    let output = params(&store, &["show", "enterprise", "--json"]);
    assert!(stdout_json(&output)["values"]["recon.ransac_threshold"].is_null());
    let output = params(
        &store,
        &["set", "enterprise", "recon.ransac_threshold=3", "--json"],
    );
    assert_eq!(
        stdout_json(&output)["values"]["recon.ransac_threshold"],
        3.0
    );
    let output = params(&store, &["set", "enterprise", "recon.ransac_threshold=25"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = params(&store, &["schema", "show"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("recon.ransac_threshold (float, px)"));

    let output = params(&store, &["schema", "apply", "/no/such/schema.toml"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"parameters\": {\"x\": {\"type\": \"int\", \"default\": 1.5}}}",
    )
    .unwrap();
    let output = params(&store, &["schema", "apply", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

/// Writes a catalog folder with four of the sample catalog's records.
fn small_catalog(folder: &std::path::Path) {
    let all: Vec<Value> =
        serde_json::from_slice(&std::fs::read(sample_catalog().join("catalog.json")).unwrap())
            .unwrap();
    let ids = [
        "red-brown-plank-floor",
        "dark-knotty-boards",
        "grey-fieldstone-wall",
    ];
    let chosen: Vec<Value> = all
        .into_iter()
        .filter(|r| ids.contains(&r["id"].as_str().unwrap()))
        .collect();
    std::fs::create_dir_all(folder.join("images")).unwrap();
    for record in &chosen {
        for image in record["images"].as_array().unwrap() {
            let image = image.as_str().unwrap();
            std::fs::copy(sample_catalog().join(image), folder.join(image)).unwrap();
        }
    }
    std::fs::write(
        folder.join("catalog.json"),
        serde_json::to_vec(&chosen).unwrap(),
    )
    .unwrap();
}

#[test]
fn params_record_resolve_and_suggest_use_the_catalog() {
    if !both_models_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    small_catalog(&folder);
    let store = dir.path().join("store");
    let output = run(kai(&["import", "--store"]).arg(&store).arg(&folder));
    assert!(output.status.success(), "{}", stderr(&output));

    let output = params(
        &store,
        &["set", "premium", "--scope", "wood", "recognition.top_k=3"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let output = params(
        &store,
        &[
            "resolve",
            "red-brown-plank-floor",
            "--set",
            "premium",
            "--json",
        ],
    );
    let json = stdout_json(&output);
    assert_eq!(
        (json["name"].as_str(), json["scope"].as_str()),
        (Some("premium"), Some("wood"))
    );
    assert_eq!(json["fallback"], false);
    let output = params(&store, &["resolve", "grey-fieldstone-wall", "--json"]);
    let json = stdout_json(&output);
    assert_eq!(json["name"], "standard");
    assert_eq!(json["fallback"], true);
    assert_eq!(json["tried"][0], "stone");

    for (set, value) in [("standard", "0.6"), ("enterprise", "0.9")] {
        let output = params(
            &store,
            &[
                "record",
                set,
                "dark-knotty-boards",
                &format!("score={value}"),
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let output = params(
        &store,
        &["record", "standard", "no-such-material", "score=1"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let output = params(
        &store,
        &[
            "record",
            "standard",
            "dark-knotty-boards",
            "score=1",
            "score=2",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = params(
        &store,
        &["record", "standard", "dark-knotty-boards", "score=high"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // Every material counts as similar at threshold -1: the better result wins.
    let output = run(kai(&[
        "params",
        "suggest",
        "red-brown-plank-floor",
        "--json",
        "--store",
    ])
    .arg(&store)
    .env("SIMILARITY_THRESHOLD", "-1"));
    assert!(output.status.success(), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["set"]["name"], "enterprise", "{json}");
    assert_eq!(json["fallback"], false);
    assert_eq!(json["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(json["evidence"][0]["materialId"], "dark-knotty-boards");
    // Lower is better: the other result wins.
    let output = run(kai(&[
        "params",
        "suggest",
        "red-brown-plank-floor",
        "--json",
        "--lower-is-better",
        "--store",
    ])
    .arg(&store)
    .env("SIMILARITY_THRESHOLD", "-1"));
    assert_eq!(stdout_json(&output)["set"]["name"], "standard");
    // Nothing is identical at threshold 1: the default set is resolved for the material.
    let output = run(kai(&[
        "params",
        "suggest",
        "red-brown-plank-floor",
        "--json",
        "--store",
    ])
    .arg(&store)
    .env("SIMILARITY_THRESHOLD", "1"));
    let json = stdout_json(&output);
    assert_eq!(json["fallback"], true);
    assert_eq!(json["set"]["name"], "standard");
    let output = run(
        kai(&["params", "suggest", "red-brown-plank-floor", "--store"])
            .arg(&store)
            .env("SIMILARITY_THRESHOLD", "2"),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("SIMILARITY_THRESHOLD"));
}

/// A fresh database on the PostgreSQL test server, dropped at the end of the test.
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Returns a new database on the server of `KAI_TEST_DATABASE_URL`, or prints why the
/// test is skipped (and fails instead when `KAI_REQUIRE_POSTGRES` is set).
fn test_database() -> Option<TestDatabase> {
    let Some(server) = std::env::var("KAI_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var_os("KAI_REQUIRE_POSTGRES").is_none(),
            "KAI_REQUIRE_POSTGRES is set but KAI_TEST_DATABASE_URL is not"
        );
        eprintln!(
            "skipped: no PostgreSQL test server; run `eval \"$(python3 scripts/postgres.py start)\"`"
        );
        return None;
    };
    let name = format!("kai_cli_test_{}", std::process::id());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    Some(TestDatabase { server, name, url })
}

#[test]
fn store_migrate_copies_catalog_and_registry_to_postgres() {
    if !both_models_ready() {
        return;
    }
    let Some(db) = test_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    small_catalog(&folder);
    let store = dir.path().join("store");
    let output = run(kai(&["import", "--store"])
        .arg(&store)
        .arg(&folder)
        .env_remove("KAI_DATABASE_URL"));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = params(&store, &["set", "premium", "recognition.top_k=7"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = params(
        &store,
        &["record", "premium", "dark-knotty-boards", "score=0.8"],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let migrate = || {
        run(
            kai(&["store", "migrate", "--json", "--to", &db.url, "--store"])
                .arg(&store)
                .env_remove("KAI_DATABASE_URL"),
        )
    };
    let output = migrate();
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout_json(&output);
    assert_eq!(report["catalog"]["materials"], 3);
    assert_eq!(report["catalog"]["textVectors"], 3);
    assert_eq!(report["parameterSetVersions"], 4);
    assert_eq!(report["parameterResults"], 1);
    // A second copy into the same database is rejected: the catalog is not empty.
    let output = migrate();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));

    // The same commands now run on the PostgreSQL store.
    let on_postgres = |args: &[&str]| {
        run(kai(args)
            .arg("--store")
            .arg(&store)
            .env("KAI_DATABASE_URL", &db.url))
    };
    let output = on_postgres(&["params", "show", "premium", "--json"]);
    let json = stdout_json(&output);
    assert_eq!(json["version"], 2);
    assert_eq!(json["values"]["recognition.top_k"], 7);
    let output = on_postgres(&["search", "--json", "knotty timber boards"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ids: Vec<String> = stdout_json(&output)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"dark-knotty-boards".to_owned()), "{ids:?}");
    let output = run(kai(&[
        "params",
        "suggest",
        "red-brown-plank-floor",
        "--json",
        "--store",
    ])
    .arg(&store)
    .env("KAI_DATABASE_URL", &db.url)
    .env("SIMILARITY_THRESHOLD", "-1"));
    assert_eq!(stdout_json(&output)["set"]["name"], "premium");

    let output = run(&mut kai(&["store", "migrate", "--to", "mysql://x@y/z"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

/// Builds a `kai recon` command that runs in `dir` without a store, a database or a
/// default set from the environment, so the shipped parameter sets apply.
fn recon(dir: &std::path::Path, args: &[&str]) -> Command {
    // `kai reconstruct` is the one reconstruction command outside `kai recon`.
    let mut command = if args.first() == Some(&"reconstruct") {
        kai(&[])
    } else {
        kai(&["recon"])
    };
    command
        .args(args)
        .current_dir(dir)
        .env_remove("KAI_DATA_DIR")
        .env_remove("KAI_DATABASE_URL")
        .env_remove("PARAM_STORAGE_TYPE")
        .env_remove("DEFAULT_PARAMETER_SET");
    command
}

#[test]
fn recon_sfm_missing_folder_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&mut recon(
        dir.path(),
        &["sfm", "no-such-photos", "-o", "out"],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("photo folder `no-such-photos` not found"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn recon_sfm_empty_folder_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    std::fs::write(dir.path().join("photos/notes.txt"), "not a photo").unwrap();
    let output = run(&mut recon(dir.path(), &["sfm", "photos", "-o", "out"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("contains no photo"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn recon_sfm_output_file_fails_before_running() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    // Two undecodable photos: were the run to start, it would fail on them instead.
    std::fs::write(dir.path().join("photos/a.png"), "not a photo").unwrap();
    std::fs::write(dir.path().join("photos/b.png"), "not a photo").unwrap();
    std::fs::write(dir.path().join("model"), "a file").unwrap();
    let output = run(&mut recon(dir.path(), &["sfm", "photos", "-o", "model"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("model is a file, not a folder"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn recon_sfm_unknown_set_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    let output = run(&mut recon(
        dir.path(),
        &["sfm", "photos", "-o", "out", "--set", "no-such-set"],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such-set"),
        "{}",
        stderr(&output)
    );

    let output = run(&mut recon(
        dir.path(),
        &["sfm", "photos", "-o", "out", "--store", "no-such-store"],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such-store"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn recon_synth_rejects_bad_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&mut recon(dir.path(), &["synth", "scene", "--width", "8"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("width"), "{}", stderr(&output));
    assert!(!dir.path().join("scene").exists());

    let output = run(&mut recon(
        dir.path(),
        &["synth", "huge", "--width", "9000", "--height", "9000"],
    ));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("KAI_MAX_IMAGE_PIXELS"),
        "{}",
        stderr(&output)
    );

    std::fs::create_dir(dir.path().join("used")).unwrap();
    std::fs::write(dir.path().join("used/image_000.png"), "old").unwrap();
    let output = run(&mut recon(dir.path(), &["synth", "used", "--images", "2"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn recon_synth_scene_reconstructs() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&mut recon(
        dir.path(),
        &[
            "synth",
            "scene",
            "--images",
            "8",
            "--seed",
            "3",
            "--width",
            "400",
            "--height",
            "300",
            "--arc-degrees",
            "80",
        ],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let scene = dir.path().join("scene");
    assert!(scene.join("image_000.png").is_file());
    assert!(scene.join("image_007.png").is_file());
    for name in ["cameras.txt", "images.txt", "points3D.txt"] {
        assert!(scene.join("ground_truth").join(name).is_file(), "{name}");
    }

    // ground_truth/ is a subfolder, so the photo listing skips it.
    let output = run(&mut recon(
        dir.path(),
        &["sfm", "scene", "-o", "model", "--set", "standard", "--json"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["images"], 8, "{report}");
    assert!(
        report["registeredImages"].as_u64().unwrap() >= 7,
        "{report}"
    );
    assert!(report["points"].as_u64().unwrap() >= 500, "{report}");
    assert!(
        report["meanReprojectionError"].as_f64().unwrap() < 1.0,
        "{report}"
    );
    assert_eq!(report["set"], "standard", "{report}");
    for name in ["cameras.txt", "images.txt", "points3D.txt", "points.ply"] {
        let path = dir.path().join("model").join(name);
        assert!(std::fs::metadata(&path).unwrap().len() > 0, "{name}");
    }

    let output = run(&mut recon(dir.path(), &["sfm", "scene", "-o", "model"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("of 8 photos"), "{text}");
    assert!(text.contains("mean reprojection error"), "{text}");

    // Every stage on its own, each reading the files of the one before.
    let json = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let output = run(&mut recon(dir.path(), &all));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let screening = json(&["screen", "scene", "-o", "work/screening.json"]);
    assert_eq!(
        screening["accepted"].as_array().unwrap().len(),
        8,
        "{screening}"
    );
    let sparse = json(&[
        "sfm",
        "scene",
        "--screening",
        "work/screening.json",
        "-o",
        "work/sparse",
        "--tier",
        "standard",
    ]);
    assert!(
        sparse["registeredImages"].as_u64().unwrap() >= 7,
        "{sparse}"
    );
    let dense = json(&[
        "dense",
        "work/sparse",
        "--images",
        "scene",
        "-o",
        "work/dense.ply",
    ]);
    assert!(dense["points"].as_u64().unwrap() > 1000, "{dense}");
    let mesh = json(&["mesh", "work/dense.ply", "-o", "work/mesh.ply"]);
    assert!(mesh["triangles"].as_u64().unwrap() > 1000, "{mesh}");
    // Premium adds a level; the standard run after it removes that level's file, so
    // export does not take it for part of the new chain.
    let premium = json(&[
        "lod",
        "work/mesh.ply",
        "-o",
        "work/lod",
        "--tier",
        "premium",
    ]);
    assert_eq!(premium.as_array().unwrap().len(), 4, "{premium}");
    let levels = json(&["lod", "work/mesh.ply", "-o", "work/lod"]);
    assert_eq!(levels.as_array().unwrap().len(), 3, "{levels}");
    assert!(!dir.path().join("work/lod/lod3.ply").exists());
    let exported = json(&["export", "work/lod", "-o", "out/model.glb"]);
    assert_eq!(exported[2]["file"], "model.lod2.glb", "{exported}");
    for name in ["model.glb", "model.lod1.glb", "model.lod2.glb"] {
        let bytes = std::fs::read(dir.path().join("out").join(name)).unwrap();
        assert_eq!(&bytes[..4], b"glTF", "{name}");
    }
    json(&["export", "work/mesh.ply", "-o", "out/mesh.obj"]);
    assert!(dir.path().join("out/mesh.mtl").is_file());

    // And all of them in one run.
    let full = json(&[
        "reconstruct",
        "scene",
        "-o",
        "full/model.glb",
        "--work",
        "full/work",
    ]);
    assert_eq!(full["images"], 8, "{full}");
    assert_eq!(
        full["model"]["levels"].as_array().unwrap().len(),
        3,
        "{full}"
    );
    assert!(dir.path().join("full/model.lod2.glb").is_file());
    assert!(dir.path().join("full/work/lod/lod0.ply").is_file());
    assert!(dir.path().join("full/work/sparse/cameras.txt").is_file());
    // The one run computes what the stages computed, file for file.
    for name in [
        "sparse/points3D.txt",
        "dense.ply",
        "mesh.ply",
        "lod/lod2.ply",
    ] {
        let staged = std::fs::read(dir.path().join("work").join(name)).unwrap();
        let whole = std::fs::read(dir.path().join("full/work").join(name)).unwrap();
        assert!(
            staged == whole,
            "{name} differs between the stages and the one run"
        );
    }
}

#[test]
fn recon_stages_reject_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.ply"),
        "ply\nformat ascii 1.0\nelement vertex 9999999999999\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.glb"), "glTF").unwrap();
    for (args, code, expected) in [
        (
            &["mesh", "broken.ply", "-o", "mesh.ply"][..],
            2,
            "broken.ply",
        ),
        (
            &["mesh", "missing.ply", "-o", "mesh.ply"][..],
            3,
            "missing.ply",
        ),
        (&["lod", "empty.glb", "-o", "lod"][..], 2, "empty.glb"),
        (
            &["export", "broken.ply", "-o", "model.stl"][..],
            2,
            "model.stl",
        ),
        (&["export", "nothing", "-o", "model.glb"][..], 3, "nothing"),
        (
            &["dense", "no-sparse", "--images", ".", "-o", "d.ply"][..],
            3,
            "no-sparse",
        ),
        (
            &["reconstruct", "no-photos", "-o", "m.glb"][..],
            3,
            "no-photos",
        ),
    ] {
        let output = run(&mut recon(dir.path(), args));
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn server_help_and_unknown_arguments() {
    let server = env!("CARGO_BIN_EXE_kai-server");
    let help = Command::new(server).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: kai-server"), "{text}");
    assert!(text.contains("KAI_DATA_DIR"), "{text}");

    let version = Command::new(server).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("kai-server "));

    // An unknown argument such as a mistaken `--store` must not start a server on the
    // default store.
    let wrong = Command::new(server)
        .args(["--store", "elsewhere"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains("unexpected argument `--store`"),
        "{message}"
    );
}
