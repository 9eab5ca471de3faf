//! The parameter registry on both backends: every test body runs once on SQLite and once
//! on PostgreSQL (skipped without a test server, see `common::postgres`).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};

use kai_core::db::StorageConfig;
use kai_core::image::QualityThresholds;
use kai_core::recognize::RecognizeOptions;
use kai_core::recon::pipeline::PipelineOptions;
use kai_core::recon::sfm::SfmOptions;
use kai_core::registry::{ParamValue, Registry, RegistrySettings, Schema, Values, WriteOptions};
use kai_core::registry::{pipeline_options, sfm_options};
use kai_core::{Error, ErrorKind};

use crate::common::{TestDatabase, postgres};

/// Where a test's registry lives; dropping it removes the database.
pub enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Place {
    fn config(&self) -> StorageConfig {
        match self {
            Place::Sqlite(_) => StorageConfig::default(),
            Place::Postgres(db) => StorageConfig {
                catalog: None,
                registry: Some(db.url.clone()),
            },
        }
    }

    fn root(&self) -> std::path::PathBuf {
        match self {
            Place::Sqlite(dir) => dir.path().to_path_buf(),
            Place::Postgres(_) => std::env::temp_dir(),
        }
    }

    /// Opens a registry handle of its own, as another process would.
    fn open(&self, settings: RegistrySettings) -> Registry {
        Registry::open(&self.root(), &self.config(), settings).unwrap()
    }
}

fn sqlite() -> Option<Place> {
    Some(Place::Sqlite(tempfile::tempdir().unwrap()))
}

fn pg() -> Option<Place> {
    postgres().map(Place::Postgres)
}

/// Runs each listed test body on both backends.
macro_rules! registry_on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn sqlite() {
                if let Some(place) = super::sqlite() {
                    super::$name(&place);
                }
            }

            #[test]
            fn postgres() {
                if let Some(place) = super::pg() {
                    super::$name(&place);
                }
            }
        })*
    };
}

registry_on_both_backends!(
    shipped_sets_match_the_code_defaults,
    versions_are_immutable_and_kept,
    invalid_values_are_rejected_and_write_nothing,
    stale_writers_get_a_conflict,
    diff_and_rollback,
    scoped_sets_fall_back_to_the_unscoped_set,
    missing_default_set_names_the_variable,
    purge_keeps_current_and_referenced_versions,
    concurrent_writers_lose_nothing,
    concurrent_versioned_writers_get_conflicts_not_lost_updates,
    schema_apply_adds_and_guards_parameters,
    schema_files_are_read_and_checked,
    results_are_recorded_and_validated,
    result_batches_are_all_or_none,
    float_values_keep_their_type,
    writes_are_visible_to_other_handles,
    bad_names_are_rejected,
    suggest_uses_results_of_similar_materials,
    resolve_for_material_tries_type_then_collection,
    results_are_checked_against_the_catalog,
    result_inputs_take_one_current_version,
);

fn values(pairs: &[(&str, ParamValue)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn float(v: f64) -> ParamValue {
    ParamValue::Float(v)
}

fn int(v: i64) -> ParamValue {
    ParamValue::Int(v)
}

fn shipped_sets_match_the_code_defaults(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let names: Vec<(String, u32)> = registry
        .list()
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.version))
        .collect();
    assert_eq!(
        names,
        [
            ("enterprise".to_owned(), 1),
            ("premium".to_owned(), 1),
            ("standard".to_owned(), 1)
        ]
    );
    let standard = registry.get("standard", None, None).unwrap();
    let recognize = RecognizeOptions::default();
    let quality = QualityThresholds::default();
    let v = &standard.values;
    assert_eq!(v["recognition.top_k"], int(recognize.top_k as i64));
    assert_eq!(
        v["recognition.unknown_threshold"].as_f64().unwrap() as f32,
        recognize.unknown_threshold
    );
    assert_eq!(
        v["recognition.hint_weight"].as_f64().unwrap() as f32,
        recognize.hint_weight
    );
    assert_eq!(
        v["recognition.min_resolution"],
        int(i64::from(recognize.min_resolution))
    );
    assert_eq!(
        v["quality.min_sharpness"].as_f64().unwrap() as f32,
        quality.min_sharpness
    );
    assert_eq!(
        v["quality.min_short_side"],
        int(i64::from(quality.min_short_side))
    );
    assert_eq!(
        v["quality.max_noise"].as_f64().unwrap() as f32,
        quality.max_noise
    );
    assert_eq!(v.len(), registry.schema().unwrap().parameters.len());
    let premium = registry.get("premium", None, None).unwrap();
    assert!(premium.values["quality.min_sharpness"].as_f64() > v["quality.min_sharpness"].as_f64());

    // The reconstruction parameters of migration 0003: `standard` contains the code's
    // defaults, the higher tiers detect more features.
    let sfm = sfm_options(v).unwrap();
    assert_eq!(
        SfmOptions {
            quality: None,
            ..sfm.clone()
        },
        SfmOptions::default()
    );
    assert_eq!(sfm.quality, Some(quality));
    let premium_sfm = sfm_options(&premium.values).unwrap();
    let enterprise = registry.get("enterprise", None, None).unwrap();
    let enterprise_sfm = sfm_options(&enterprise.values).unwrap();
    assert!(premium_sfm.max_features > sfm.max_features);
    assert!(enterprise_sfm.max_features > premium_sfm.max_features);
    assert!(enterprise_sfm.ba_max_iterations > sfm.ba_max_iterations);
    assert_eq!(enterprise.values.len(), v.len());

    // The model stages of migration 0004: `standard` has the code's defaults, and the
    // higher tiers use a finer grid and larger depth maps.
    let pipeline = pipeline_options(v).unwrap();
    let defaults = PipelineOptions::default();
    assert_eq!(pipeline.dense, defaults.dense);
    assert_eq!(pipeline.cloud, defaults.cloud);
    assert_eq!(pipeline.mesh, defaults.mesh);
    assert_eq!(pipeline.lod, defaults.lod);
    assert_eq!(pipeline.compression, defaults.compression);
    let premium_pipeline = pipeline_options(&premium.values).unwrap();
    let enterprise_pipeline = pipeline_options(&enterprise.values).unwrap();
    assert!(premium_pipeline.mesh.poisson.depth > pipeline.mesh.poisson.depth);
    assert!(enterprise_pipeline.dense.max_image_size > premium_pipeline.dense.max_image_size);
    assert!(enterprise_pipeline.cloud.voxel_size < pipeline.cloud.voxel_size);
}

fn versions_are_immutable_and_kept(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let first = registry.get("standard", None, None).unwrap();
    let written = registry
        .set(
            "standard",
            None,
            &values(&[("recognition.top_k", int(8))]),
            &WriteOptions::by("ana").with_note("wider shortlist"),
        )
        .unwrap();
    assert_eq!(written.version, 2);
    assert_eq!(written.author, "ana");
    registry
        .set(
            "standard",
            None,
            &values(&[("quality.min_sharpness", float(80.0))]),
            &WriteOptions::by("ben"),
        )
        .unwrap();
    let current = registry.get("standard", None, None).unwrap();
    assert_eq!(current.version, 3);
    assert_eq!(current.values["recognition.top_k"], int(8));
    assert_eq!(current.values["quality.min_sharpness"], float(80.0));
    assert_eq!(
        registry.get("standard", None, Some(1)).unwrap().values,
        first.values
    );
    let history = registry.history("standard", None).unwrap();
    let versions: Vec<u32> = history.iter().map(|s| s.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(history[1].note, "wider shortlist");
    let err = registry.get("standard", None, Some(9)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("standard version 9"), "{err}");
}

fn invalid_values_are_rejected_and_write_nothing(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let cases: Vec<(Values, &str)> = vec![
        (
            values(&[("recognition.top_k", int(500))]),
            "invalid parameter recognition.top_k: 500 is above the maximum 100",
        ),
        (
            values(&[("recognition.hint_weight", float(-0.5))]),
            "invalid parameter recognition.hint_weight: -0.5 is below the minimum 0",
        ),
        (
            values(&[("recognition.top_k", float(2.5))]),
            "invalid parameter recognition.top_k: 2.5 is not an int value",
        ),
        (
            values(&[("quality.max_noise", float(f64::NAN))]),
            "invalid parameter quality.max_noise: NaN is not a finite number",
        ),
        (
            values(&[("recognition.no_such_thing", int(1))]),
            "invalid parameter recognition.no_such_thing: is not in the schema",
        ),
        (Values::new(), "invalid changes"),
    ];
    for (changes, message) in cases {
        let err = registry
            .set("standard", None, &changes, &WriteOptions::default())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().starts_with(message), "{err}");
    }
    for raw in [
        "recognition.top_k=lots",
        "recognition.top_k",
        "quality.min_sharpness=inf",
    ] {
        let err = registry.parse_assignments(&[raw]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{raw}: {err}");
    }
    assert_eq!(
        registry
            .parse_assignments(&["recognition.top_k=7"])
            .unwrap()["recognition.top_k"],
        int(7)
    );
    assert_eq!(registry.history("standard", None).unwrap().len(), 1);
}

fn stale_writers_get_a_conflict(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let change = values(&[("recognition.top_k", int(6))]);
    registry
        .set(
            "premium",
            None,
            &change,
            &WriteOptions::by("a").expecting(1),
        )
        .unwrap();
    let err = registry
        .set(
            "premium",
            None,
            &change,
            &WriteOptions::by("b").expecting(1),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("`premium` is at version 2, not 1"),
        "{err}"
    );
    // Expecting 0 creates a set only if it does not exist yet.
    registry
        .set("trial", None, &change, &WriteOptions::by("a").expecting(0))
        .unwrap();
    let err = registry
        .set("trial", None, &change, &WriteOptions::by("a").expecting(0))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(registry.history("premium", None).unwrap().len(), 2);
}

fn diff_and_rollback(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    registry
        .set(
            "standard",
            None,
            &values(&[
                ("recognition.top_k", int(9)),
                ("quality.max_noise", float(4.0)),
            ]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    let changes = registry.diff("standard", None, 1, 2).unwrap();
    let names: Vec<&str> = changes.iter().map(|c| c.parameter.as_str()).collect();
    assert_eq!(names, ["quality.max_noise", "recognition.top_k"]);
    assert_eq!(changes[1].from, Some(int(5)));
    assert_eq!(changes[1].to, Some(int(9)));
    let rolled = registry
        .rollback("standard", None, 1, &WriteOptions::by("a"))
        .unwrap();
    assert_eq!(rolled.version, 3);
    assert_eq!(rolled.note, "rollback to version 1");
    assert!(registry.diff("standard", None, 1, 3).unwrap().is_empty());
    let err = registry
        .rollback("standard", None, 7, &WriteOptions::by("a"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = registry
        .rollback("standard", None, 1, &WriteOptions::by("a").expecting(2))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

fn scoped_sets_fall_back_to_the_unscoped_set(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    registry
        .set(
            "standard",
            None,
            &values(&[("quality.max_noise", float(7.0))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    let wood = registry
        .set(
            "standard",
            Some("Wood"),
            &values(&[("recognition.unknown_threshold", float(0.5))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    assert_eq!(wood.scope.as_deref(), Some("wood"));
    assert_eq!(wood.version, 1);
    // A new scoped set starts from the unscoped set's current values.
    assert_eq!(wood.values["quality.max_noise"], float(7.0));

    let resolved = registry.resolve(None, &["wood"]).unwrap();
    assert_eq!(
        (
            resolved.name.as_str(),
            resolved.scope.as_deref(),
            resolved.version
        ),
        ("standard", Some("wood"), 1)
    );
    assert!(!resolved.fallback);
    assert_eq!(resolved.values["recognition.unknown_threshold"], float(0.5));

    let resolved = registry.resolve(None, &["stone", "facades"]).unwrap();
    assert_eq!((resolved.scope.clone(), resolved.version), (None, 2));
    assert!(resolved.fallback);
    assert_eq!(resolved.tried, ["stone", "facades"]);
    let resolved = registry.resolve(Some("premium"), &["wood"]).unwrap();
    assert_eq!(resolved.name, "premium");
    assert!(resolved.fallback);
    let listed: Vec<(String, Option<String>)> = registry
        .list()
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.scope))
        .collect();
    assert!(listed.contains(&("standard".to_owned(), Some("wood".to_owned()))));
}

fn missing_default_set_names_the_variable(place: &Place) {
    let settings = RegistrySettings {
        default_set: "gold".to_owned(),
        ..RegistrySettings::default()
    };
    let registry = place.open(settings);
    let err = registry.resolve(None, &["wood"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("DEFAULT_PARAMETER_SET"), "{err}");
}

const DAY: i64 = 86_400_000;

fn purge_keeps_current_and_referenced_versions(place: &Place) {
    let now = Arc::new(AtomicI64::new(kai_core::db::now_millis()));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let registry = place.open(RegistrySettings::default()).with_clock(clock);
    let write = |top_k: i64| {
        registry
            .set(
                "enterprise",
                None,
                &values(&[("recognition.top_k", int(top_k))]),
                &WriteOptions::by("a"),
            )
            .unwrap()
    };
    write(11); // version 2
    write(12); // version 3, referenced by a result below
    write(13); // version 4
    registry
        .record(
            "enterprise",
            None,
            Some(3),
            "oak-1",
            &BTreeMap::from([("score".to_owned(), 0.9)]),
        )
        .unwrap();
    now.fetch_add(60 * DAY, Ordering::SeqCst);
    write(14); // version 5, only 30 days old at the purge
    now.fetch_add(31 * DAY, Ordering::SeqCst);
    let report = registry.purge().unwrap();
    let purged: Vec<u32> = report.purged.iter().map(|v| v.version).collect();
    // The shipped version 1 was written at migration time, by the real clock.
    assert_eq!(purged, [1, 2, 4]);
    let kept: Vec<u32> = registry
        .history("enterprise", None)
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, [3, 5]);
    // The other sets have one (current) version each and keep it.
    assert_eq!(registry.get("standard", None, None).unwrap().version, 1);
    // A purged version is gone for diff and rollback, with a clear error.
    let err = registry.diff("enterprise", None, 2, 5).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Writes purge too: after another 91 days version 3 stays (referenced), 5 goes.
    now.fetch_add(91 * DAY, Ordering::SeqCst);
    write(15);
    let kept: Vec<u32> = registry
        .history("enterprise", None)
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, [3, 6]);
}

const WRITERS: usize = 8;
const WRITES: usize = 12;

fn concurrent_writers_lose_nothing(place: &Place) {
    let barrier = Barrier::new(WRITERS);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let barrier = &barrier;
            scope.spawn(move || {
                let registry = place.open(RegistrySettings::default());
                barrier.wait();
                for write in 0..WRITES {
                    registry
                        .set(
                            "standard",
                            None,
                            &values(&[("recognition.top_k", int((write % 90 + 1) as i64))]),
                            &WriteOptions::by(format!("w{writer}")).with_note(format!("{write}")),
                        )
                        .unwrap();
                }
            });
        }
    });
    let registry = place.open(RegistrySettings::default());
    let history = registry.history("standard", None).unwrap();
    assert_eq!(history.len(), 1 + WRITERS * WRITES);
    let versions: Vec<u32> = history.iter().map(|s| s.version).collect();
    assert_eq!(
        versions,
        (1..=(1 + WRITERS * WRITES) as u32).collect::<Vec<_>>()
    );
    let writes: HashSet<(String, String)> = history[1..]
        .iter()
        .map(|s| (s.author.clone(), s.note.clone()))
        .collect();
    assert_eq!(writes.len(), WRITERS * WRITES);
}

fn concurrent_versioned_writers_get_conflicts_not_lost_updates(place: &Place) {
    let barrier = Barrier::new(WRITERS);
    let accepted: Vec<Vec<(u32, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let registry = place.open(RegistrySettings::default());
                    barrier.wait();
                    let mut accepted = Vec::new();
                    for attempt in 0..WRITES {
                        let read = registry.get("premium", None, None).unwrap();
                        let note = format!("w{writer}-{attempt}");
                        match registry.set(
                            "premium",
                            None,
                            &values(&[("recognition.top_k", int(attempt as i64 + 1))]),
                            &WriteOptions::by("t")
                                .expecting(read.version)
                                .with_note(note.clone()),
                        ) {
                            Ok(written) => {
                                assert_eq!(written.version, read.version + 1);
                                accepted.push((written.version, note));
                            }
                            Err(Error::Conflict(_)) => {}
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted: Vec<(u32, String)> = accepted.into_iter().flatten().collect();
    let registry = place.open(RegistrySettings::default());
    let history = registry.history("premium", None).unwrap();
    assert_eq!(history.len(), 1 + accepted.len());
    for (version, note) in &accepted {
        let matching: Vec<_> = history.iter().filter(|s| &s.note == note).collect();
        assert_eq!(matching.len(), 1, "{note} is in the history once");
        assert_eq!(matching[0].version, *version);
    }
    assert!(
        accepted.len() >= WRITES,
        "at least one writer progressed each round"
    );
}

fn schema_apply_adds_and_guards_parameters(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let schema: Schema = serde_json::from_value(serde_json::json!({
        "parameters": {
            "demo.matcher": {"type": "enum", "allowed": ["exhaustive", "sequential"],
                              "default": "exhaustive", "description": "Image pairs to match."},
            "demo.refine_intrinsics": {"type": "bool", "default": false},
        }
    }))
    .unwrap();
    let report = registry.apply_schema(&schema).unwrap();
    assert_eq!(report.added, ["demo.matcher", "demo.refine_intrinsics"]);
    // Versions written before the schema change stay as written; resolving fills the
    // new parameters with their defaults.
    let standard = registry.get("standard", None, None).unwrap();
    assert!(!standard.values.contains_key("demo.matcher"));
    let resolved = registry.resolve(None, &[]).unwrap();
    assert_eq!(
        resolved.values["demo.matcher"],
        ParamValue::Text("exhaustive".into())
    );
    let changed = registry
        .set(
            "standard",
            None,
            &registry
                .parse_assignments(&["demo.matcher=sequential", "demo.refine_intrinsics=true"])
                .unwrap(),
            &WriteOptions::by("a"),
        )
        .unwrap();
    assert_eq!(
        changed.values["demo.refine_intrinsics"],
        ParamValue::Bool(true)
    );
    // Narrowing a rule that a current set breaks is refused, and nothing changes.
    let narrower: Schema = serde_json::from_value(serde_json::json!({
        "parameters": {"demo.matcher": {"type": "enum", "allowed": ["exhaustive"],
                                         "default": "exhaustive"}}
    }))
    .unwrap();
    let err = registry.apply_schema(&narrower).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains("demo.matcher") && message.contains("set `standard`"),
        "{message}"
    );
    let spec = &registry.schema().unwrap().parameters["demo.matcher"];
    assert_eq!(spec.allowed, ["exhaustive", "sequential"]);
    // Applying the same schema again changes nothing.
    let again = registry.apply_schema(&schema).unwrap();
    assert_eq!(again.unchanged.len(), 2);
    // A changed default does not rewrite history: version 2 keeps its values.
    let before = registry.get("standard", None, Some(2)).unwrap();
    let new_default: Schema = serde_json::from_value(serde_json::json!({
        "parameters": {"demo.refine_intrinsics": {"type": "bool", "default": true}}
    }))
    .unwrap();
    registry.apply_schema(&new_default).unwrap();
    assert_eq!(registry.get("standard", None, Some(2)).unwrap(), before);
    assert!(
        !registry
            .get("standard", None, Some(1))
            .unwrap()
            .values
            .contains_key("demo.refine_intrinsics")
    );
}

fn schema_files_are_read_and_checked(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("schema.toml");
    std::fs::write(
        &toml,
        "[parameters.\"recon.max_features\"]\ntype = \"int\"\nmin = 100\nmax = 100000\n\
         default = 8000\nunit = \"features\"\ndescription = \"Features kept per image.\"\n",
    )
    .unwrap();
    let schema = Schema::from_file(&toml).unwrap();
    registry.apply_schema(&schema).unwrap();
    assert_eq!(
        registry.resolve(Some("premium"), &[]).unwrap().values["recon.max_features"],
        int(8000)
    );
    let cases = [
        (
            "bad.json",
            "{\"parameters\": {\"x\": {\"type\": \"complex\", \"default\": 1}}}",
        ),
        (
            "bad2.json",
            "{\"parameters\": {\"x\": {\"type\": \"int\", \"default\": 500, \"max\": 10}}}",
        ),
        ("bad3.json", "not json"),
        (
            "bad4.json",
            "{\"parameters\": {\"two words\": {\"type\": \"bool\", \"default\": true}}}",
        ),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = Schema::from_file(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
    }
    let huge = dir.path().join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(kai_core::registry::MAX_SCHEMA_FILE_BYTES + 1)
        .unwrap();
    let err = Schema::from_file(&huge).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bytes, more than"), "{err}");
    let missing = Schema::from_file(&dir.path().join("absent.toml")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

fn results_are_recorded_and_validated(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let metrics = BTreeMap::from([("accuracy".to_owned(), 0.93), ("score".to_owned(), 71.5)]);
    let recorded = registry
        .record("standard", None, None, "oak-1", &metrics)
        .unwrap();
    assert_eq!(recorded.version, 1);
    let stored = registry
        .storage()
        .results_for(&["oak-1".to_owned(), "none".to_owned()])
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].metrics, metrics);
    assert_eq!(
        registry.storage().materials_with_results().unwrap(),
        ["oak-1"]
    );
    let bad: Vec<(BTreeMap<String, f64>, &str)> = vec![
        (BTreeMap::new(), "invalid metrics"),
        (
            BTreeMap::from([("score".to_owned(), f64::INFINITY)]),
            "invalid metric score: inf",
        ),
        (
            BTreeMap::from([("a b".to_owned(), 1.0)]),
            "invalid metric name",
        ),
    ];
    for (metrics, message) in bad {
        let err = registry
            .record("standard", None, None, "oak-1", &metrics)
            .unwrap_err();
        assert!(err.to_string().starts_with(message), "{err}");
    }
    let err = registry
        .record(
            "standard",
            None,
            Some(4),
            "oak-1",
            &BTreeMap::from([("s".to_owned(), 1.0)]),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = registry
        .record(
            "standard",
            None,
            None,
            &"x".repeat(300),
            &BTreeMap::from([("s".to_owned(), 1.0)]),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

fn result_batches_are_all_or_none(place: &Place) {
    use kai_core::registry::{MAX_BATCH_RESULTS, NewResult, VersionRef};
    let registry = place.open(RegistrySettings::default());
    let result = |name: &str, version: u32, material: &str| NewResult {
        set: VersionRef {
            name: name.to_owned(),
            scope: None,
            version,
        },
        material_id: material.to_owned(),
        metrics: BTreeMap::from([("score".to_owned(), 1.0)]),
    };
    registry
        .record_batch(&[result("standard", 1, "a"), result("premium", 1, "b")])
        .unwrap();
    let count = || registry.storage().materials_with_results().unwrap().len();
    assert_eq!(count(), 2);
    // The second result names a version that does not exist: nothing is recorded.
    let err = registry
        .record_batch(&[result("standard", 1, "c"), result("premium", 9, "d")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("premium version 9"), "{err}");
    assert_eq!(count(), 2);
    let too_many = vec![result("standard", 1, "e"); MAX_BATCH_RESULTS + 1];
    let err = registry.record_batch(&too_many).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(count(), 2);
}

fn float_values_keep_their_type(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    for value in [1e15, 2.0, 1e-9] {
        registry
            .set(
                "standard",
                None,
                &values(&[("quality.min_sharpness", float(value))]),
                &WriteOptions::by("a"),
            )
            .unwrap();
        let stored = registry.get("standard", None, None).unwrap();
        assert_eq!(stored.values["quality.min_sharpness"], float(value));
    }
}

fn writes_are_visible_to_other_handles(place: &Place) {
    let writer = place.open(RegistrySettings::default());
    let reader = place.open(RegistrySettings::default());
    assert_eq!(reader.get("standard", None, None).unwrap().version, 1);
    writer
        .set(
            "standard",
            None,
            &values(&[("recognition.top_k", int(3))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    let seen = reader.get("standard", None, None).unwrap();
    assert_eq!(seen.version, 2);
    assert_eq!(seen.values["recognition.top_k"], int(3));
}

fn bad_names_are_rejected(place: &Place) {
    let registry = place.open(RegistrySettings::default());
    let change = values(&[("recognition.top_k", int(3))]);
    for (name, scope) in [("", None), ("two words", None), ("ok", Some("bad scope!"))] {
        let err = registry
            .set(name, scope, &change, &WriteOptions::default())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?} {scope:?}");
    }
    let err = registry
        .set("standard", Some("  "), &change, &WriteOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().starts_with("invalid scope: is empty"),
        "{err}"
    );
    let forged = WriteOptions::by("a").with_note("fine\nversion 99  fake");
    let err = registry
        .set("standard", None, &change, &forged)
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid note"), "{err}");
    let err = registry
        .parse_assignments(&["recognition.top_k=5", "recognition.top_k=6"])
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    let err = registry.parse_assignments(&["=5"]).unwrap_err();
    assert!(err.to_string().contains("no parameter name"), "{err}");
    let err = registry.resolve(Some("bad name"), &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let long_note = WriteOptions::by("a").with_note("n".repeat(5000));
    let err = registry
        .set("standard", None, &change, &long_note)
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid note"), "{err}");
    assert_eq!(registry.history("standard", None).unwrap().len(), 1);
    let err = registry.get("nope", None, None).unwrap_err();
    assert!(err.to_string().contains("kai params list"), "{err}");
}

#[test]
fn sqlite_registry_copies_into_postgres() {
    let Some(Place::Postgres(db)) = pg() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::open(
        dir.path(),
        &StorageConfig::default(),
        RegistrySettings::default(),
    )
    .unwrap();
    source
        .set(
            "standard",
            Some("wood"),
            &values(&[("recognition.top_k", int(4))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    source
        .record(
            "standard",
            Some("wood"),
            None,
            "oak-1",
            &BTreeMap::from([("score".to_owned(), 0.5)]),
        )
        .unwrap();
    // Names that SQLite (byte order) and PostgreSQL (its collation) may sort apart.
    for name in ["Zeta", "alpha", "a_b", "a-b", "A.b"] {
        source
            .set(
                name,
                None,
                &values(&[("recognition.top_k", int(3))]),
                &WriteOptions::by("a"),
            )
            .unwrap();
    }
    let config = StorageConfig {
        catalog: None,
        registry: Some(db.url.clone()),
    };
    let target = Registry::open(dir.path(), &config, RegistrySettings::default()).unwrap();
    let dump = source.copy_to(&target).unwrap();
    assert_eq!(
        target.storage().dump().unwrap().versions.len(),
        dump.versions.len()
    );
    assert_eq!(
        target.get("standard", Some("wood"), None).unwrap().values["recognition.top_k"],
        int(4)
    );
    // Copying again finds the finished copy and changes nothing.
    assert_eq!(source.copy_to(&target).unwrap(), dump);
    assert_eq!(target.storage().dump().unwrap().results, dump.results);
    // A target that has changed since is not overwritten.
    target
        .set(
            "premium",
            None,
            &values(&[("recognition.top_k", int(6))]),
            &WriteOptions::by("b"),
        )
        .unwrap();
    let err = source.copy_to(&target).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(target.get("premium", None, None).unwrap().version, 2);
}

/// Returns a unit vector near axis `axis`, tilted by `tilt` towards axis `axis + 1`.
fn near_axis(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = vec![0.0f32; 384];
    v[axis] = 1.0;
    v[axis + 1] = tilt;
    let norm = (1.0 + tilt * tilt).sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn catalog_at(place: &Place) -> kai_core::catalog::Catalog {
    use kai_core::catalog::{Catalog, StoreOptions};
    let mut options = StoreOptions::new(
        place.root().join("store"),
        kai_core::ModelStore::from_env(),
        kai_core::Device::Cpu,
    );
    if let Place::Postgres(db) = place {
        options = options.with_database(db.url.clone());
    }
    Catalog::open(options).unwrap()
}

fn embedded(
    id: &str,
    material_type: &str,
    vector: Vec<f32>,
) -> kai_core::catalog::EmbeddedMaterial {
    kai_core::catalog::EmbeddedMaterial {
        record: serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "materialType": material_type, "collectionId": "walls"
        }))
        .unwrap(),
        text_vector: vector,
        image_vectors: Vec::new(),
        expected: kai_core::catalog::ExpectedVersion::Any,
    }
}

fn suggest_uses_results_of_similar_materials(place: &Place) {
    use kai_core::registry::{SuggestOptions, SuggestTarget};
    let mut catalog = catalog_at(place);
    let materials = [
        embedded("oak-1", "wood", near_axis(0, 0.0)),
        embedded("oak-2", "wood", near_axis(0, 0.2)),
        embedded("oak-3", "wood", near_axis(0, 0.3)),
        embedded("slate-1", "stone", near_axis(10, 0.0)),
        embedded("slate-2", "stone", near_axis(10, 0.2)),
        embedded("lonely", "metal", near_axis(20, 0.0)),
    ];
    catalog.put_embedded(&materials, &place.root()).unwrap();
    let registry = place.open(RegistrySettings::default());
    let score = |v: f64| BTreeMap::from([("score".to_owned(), v)]);
    registry
        .record("standard", None, None, "oak-2", &score(0.5))
        .unwrap();
    registry
        .record("premium", None, None, "oak-3", &score(0.9))
        .unwrap();
    registry
        .record("enterprise", None, None, "slate-1", &score(1.0))
        .unwrap();

    let options = SuggestOptions::default();
    let oak = SuggestTarget::Material("oak-1".to_owned());
    let suggestion = registry.suggest(&catalog, &oak, &options).unwrap();
    assert_eq!(suggestion.set.name, "premium");
    assert!(!suggestion.fallback);
    let evidence: HashSet<&str> = suggestion
        .evidence
        .iter()
        .map(|e| e.material_id.as_str())
        .collect();
    assert_eq!(evidence, HashSet::from(["oak-2", "oak-3"]));
    assert!(suggestion.evidence.iter().all(|e| e.similarity >= 0.75));
    assert_eq!(
        suggestion.values,
        registry.get("premium", None, None).unwrap().values
    );

    let lower = SuggestOptions {
        higher_is_better: false,
        ..SuggestOptions::default()
    };
    let suggestion = registry.suggest(&catalog, &oak, &lower).unwrap();
    assert_eq!(suggestion.set.name, "standard");

    let slate = SuggestTarget::Embedding(near_axis(10, 0.1));
    let suggestion = registry.suggest(&catalog, &slate, &options).unwrap();
    assert_eq!(suggestion.set.name, "enterprise");
    assert_eq!(suggestion.evidence.len(), 1);

    // No similar material has results: the default set is resolved for the material.
    let lonely = SuggestTarget::Material("lonely".to_owned());
    let suggestion = registry.suggest(&catalog, &lonely, &options).unwrap();
    assert!(suggestion.fallback);
    assert_eq!(suggestion.set.name, "standard");
    assert!(suggestion.evidence.is_empty());
    // A metric no result has counts as no evidence.
    let accuracy = SuggestOptions {
        metric: "accuracy".to_owned(),
        ..SuggestOptions::default()
    };
    assert!(
        registry
            .suggest(&catalog, &oak, &accuracy)
            .unwrap()
            .fallback
    );

    let err = registry
        .suggest(&catalog, &SuggestTarget::Embedding(vec![0.5; 7]), &options)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("has 7 dimensions"), "{err}");
    let mut nan = near_axis(0, 0.0);
    nan[3] = f32::NAN;
    let err = registry
        .suggest(&catalog, &SuggestTarget::Embedding(nan), &options)
        .unwrap_err();
    assert!(err.to_string().contains("component 3 is NaN"), "{err}");
    let err = registry
        .suggest(
            &catalog,
            &SuggestTarget::Material("nope".to_owned()),
            &options,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

fn resolve_for_material_tries_type_then_collection(place: &Place) {
    let mut catalog = catalog_at(place);
    catalog
        .put_embedded(
            &[
                embedded("oak-1", "wood", near_axis(0, 0.0)),
                embedded("slate-1", "stone", near_axis(10, 0.0)),
                embedded("steel-1", "metal", near_axis(20, 0.0)),
            ],
            &place.root(),
        )
        .unwrap();
    let registry = place.open(RegistrySettings::default());
    let change = values(&[("recognition.top_k", int(2))]);
    registry
        .set("standard", Some("wood"), &change, &WriteOptions::by("a"))
        .unwrap();
    registry
        .set("standard", Some("walls"), &change, &WriteOptions::by("a"))
        .unwrap();
    let wood = registry
        .resolve_for_material(&catalog, "oak-1", None)
        .unwrap();
    assert_eq!(wood.scope.as_deref(), Some("wood"));
    assert_eq!(wood.material_id.as_deref(), Some("oak-1"));
    let stone = registry
        .resolve_for_material(&catalog, "slate-1", None)
        .unwrap();
    assert_eq!(stone.scope.as_deref(), Some("walls"));
    assert_eq!(stone.tried, ["stone", "walls"]);
    let premium = registry
        .resolve_for_material(&catalog, "steel-1", Some("premium"))
        .unwrap();
    assert!(premium.fallback);
    assert_eq!(premium.scope, None);
    let err = registry
        .resolve_for_material(&catalog, "missing", None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Results of a material that the catalog does not contain are rejected, one or in a
/// batch, and the catalog is queried once per material.
fn results_are_checked_against_the_catalog(place: &Place) {
    use kai_core::registry::ResultInput;
    let mut catalog = catalog_at(place);
    catalog
        .put_embedded(
            &[embedded("oak-1", "wood", near_axis(0, 0.0))],
            &place.root(),
        )
        .unwrap();
    let registry = place.open(RegistrySettings::default());
    let input = |material: &str| ResultInput {
        set: "standard".to_owned(),
        scope: None,
        version: None,
        material_id: material.to_owned(),
        metrics: BTreeMap::from([("score".to_owned(), 1.0)]),
    };
    let mut asked = Vec::new();
    let mut known = |id: &str| {
        asked.push(id.to_owned());
        Ok(catalog.get(id)?.is_some())
    };
    let recorded = registry.record_result(&input("oak-1"), &mut known).unwrap();
    assert_eq!(
        (recorded.version, recorded.material_id.as_str()),
        (1, "oak-1")
    );
    let err = registry
        .record_result(&input("missing"), &mut known)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");
    asked.clear();
    let mut known = |id: &str| {
        asked.push(id.to_owned());
        Ok(catalog.get(id)?.is_some())
    };
    let batch = vec![
        input("oak-1"),
        input("oak-1"),
        input("gone"),
        input("oak-1"),
    ];
    let err = registry.record_results(batch, &mut known).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("gone"), "{err}");
    assert_eq!(asked, ["oak-1", "gone"]);
    // The refused batch recorded nothing: only the first single result is stored.
    let stored = registry
        .storage()
        .results_for(&["oak-1".to_owned()])
        .unwrap();
    assert_eq!(stored.len(), 1);
    // A failing lookup fails the recording with its own error.
    let err = registry
        .record_result(&input("oak-1"), |_| {
            Err(Error::Storage("the catalog is unreachable".to_owned()))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
}

/// Checks that results without a version take their set's current version, per set and
/// scope. An explicit version is kept, and an unknown one fails the whole batch.
fn result_inputs_take_one_current_version(place: &Place) {
    use kai_core::registry::{MAX_BATCH_RESULTS, ResultInput};
    let registry = place.open(RegistrySettings::default());
    registry
        .set(
            "standard",
            Some("wood"),
            &values(&[("recognition.top_k", int(2))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    registry
        .set(
            "standard",
            None,
            &values(&[("recognition.top_k", int(3))]),
            &WriteOptions::by("a"),
        )
        .unwrap();
    let input = |scope: Option<&str>, version: Option<u32>, material: &str| ResultInput {
        set: "standard".to_owned(),
        scope: scope.map(str::to_owned),
        version,
        material_id: material.to_owned(),
        metrics: BTreeMap::from([("score".to_owned(), 1.0)]),
    };
    let all = |_: &str| Ok(true);
    let batch = vec![
        input(None, None, "a"),
        input(Some("wood"), None, "b"),
        input(None, Some(1), "c"),
        input(None, None, "d"),
    ];
    assert_eq!(registry.record_results(batch, all).unwrap(), 4);
    let ids: Vec<String> = ["a", "b", "c", "d"].map(str::to_owned).to_vec();
    let mut stored: Vec<(String, Option<String>, u32)> = registry
        .storage()
        .results_for(&ids)
        .unwrap()
        .into_iter()
        .map(|r| (r.material_id, r.scope, r.version))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("a".to_owned(), None, 2),
            ("b".to_owned(), Some("wood".to_owned()), 1),
            ("c".to_owned(), None, 1),
            ("d".to_owned(), None, 2),
        ]
    );
    let err = registry
        .record_results(vec![input(None, None, "e"), input(None, Some(9), "f")], all)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("version 9"), "{err}");
    let err = registry
        .record_results(vec![input(None, None, "g"); MAX_BATCH_RESULTS + 1], all)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let none = registry
        .storage()
        .results_for(&["e".to_owned(), "f".to_owned(), "g".to_owned()])
        .unwrap();
    assert!(none.is_empty());
}
