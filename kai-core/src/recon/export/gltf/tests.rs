use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::reader::split_chunks;
use super::writer::{assemble, encode_glb};
use super::*;
use crate::recon::export::test_meshes::{grid, sphere};

const PLAIN: GlbOptions = GlbOptions {
    compression: Compression::None,
};
const MESHOPT: GlbOptions = GlbOptions {
    compression: Compression::Meshopt,
};

/// Collects the triangles of a mesh into a multiset of vertex records (position, normal
/// and colour bits). Each triangle is rotated to start at its smallest record, so meshes
/// that differ only in vertex and triangle order compare equal.
fn triangle_set(mesh: &TriangleMesh) -> BTreeMap<Vec<Vec<u32>>, usize> {
    let record = |v: u32| -> Vec<u32> {
        let v = v as usize;
        let mut bits: Vec<u32> = mesh.positions[v].iter().map(|x| x.to_bits()).collect();
        if let Some(normals) = &mesh.normals {
            bits.extend(normals[v].iter().map(|x| x.to_bits()));
        }
        if let Some(colors) = &mesh.colors {
            bits.extend(colors[v].iter().map(|&c| u32::from(c)));
        }
        bits
    };
    let mut set = BTreeMap::new();
    for triangle in &mesh.triangles {
        let mut corners: Vec<Vec<u32>> = triangle.iter().map(|&v| record(v)).collect();
        let first = (0..3).min_by_key(|&i| corners[i].clone()).unwrap_or(0);
        corners.rotate_left(first);
        *set.entry(corners).or_insert(0) += 1;
    }
    set
}

fn json_of(bytes: &[u8]) -> Value {
    let (json, _) = split_chunks(bytes).expect("chunks");
    serde_json::from_slice(json).expect("JSON")
}

/// Rewrites a GLB: `edit` changes the JSON document and the binary chunk.
fn rewrite(bytes: &[u8], edit: impl FnOnce(&mut Value, &mut Vec<u8>)) -> Vec<u8> {
    let (json, bin) = split_chunks(bytes).expect("chunks");
    let mut json: Value = serde_json::from_slice(json).expect("JSON");
    let mut bin = bin.map(<[u8]>::to_vec).unwrap_or_default();
    edit(&mut json, &mut bin);
    assemble(serde_json::to_vec(&json).expect("JSON text"), bin).expect("assembled")
}

fn meshes() -> Vec<(&'static str, TriangleMesh)> {
    let full = sphere(12, 17);
    vec![
        ("full", full.clone()),
        (
            "bare",
            TriangleMesh {
                normals: None,
                colors: None,
                ..full.clone()
            },
        ),
        (
            "colors only",
            TriangleMesh {
                normals: None,
                ..full
            },
        ),
        // More than 65535 vertices, so indices are 32-bit.
        ("large grid", grid(260)),
    ]
}

#[test]
fn plain_round_trip_is_exact() {
    let dir = tempfile::tempdir().expect("temporary folder");
    for (name, mesh) in meshes() {
        let path = dir.path().join(format!("{}.glb", name.replace(' ', "_")));
        mesh.write_glb(&path, &PLAIN).expect("written");
        let back = TriangleMesh::read_glb(&path).expect("read");
        assert_eq!(back, mesh, "{name}");
    }
}

#[test]
fn meshopt_round_trip_keeps_triangles() {
    let dir = tempfile::tempdir().expect("temporary folder");
    for (name, mesh) in meshes() {
        let path = dir.path().join(format!("{}.glb", name.replace(' ', "_")));
        mesh.write_glb(&path, &MESHOPT).expect("written");
        let back = TriangleMesh::read_glb(&path).expect("read");
        assert_eq!(back.positions.len(), mesh.positions.len(), "{name}");
        assert_eq!(back.triangles.len(), mesh.triangles.len(), "{name}");
        assert_eq!(triangle_set(&back), triangle_set(&mesh), "{name}");
    }
}

#[test]
fn meshopt_file_is_smaller_and_declares_extension() {
    let mesh = grid(100);
    let plain = encode_glb(&mesh, &PLAIN).expect("plain");
    let compressed = encode_glb(&mesh, &MESHOPT).expect("compressed");
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} compressed bytes vs {} plain",
        compressed.len(),
        plain.len()
    );

    let json = json_of(&compressed);
    assert_eq!(json["extensionsUsed"], json!(["EXT_meshopt_compression"]));
    assert_eq!(
        json["extensionsRequired"],
        json!(["EXT_meshopt_compression"])
    );
    assert_eq!(json["asset"]["generator"], json!("kai"));
    assert_eq!(
        json["buffers"][1]["extensions"]["EXT_meshopt_compression"]["fallback"],
        json!(true)
    );

    let views = json["bufferViews"].as_array().expect("views");
    let modes: Vec<&str> = views
        .iter()
        .map(|v| {
            v["extensions"]["EXT_meshopt_compression"]["mode"]
                .as_str()
                .expect("mode")
        })
        .collect();
    assert_eq!(modes, ["ATTRIBUTES", "TRIANGLES"]);

    // The vertex codec stream starts with its version byte: 0xa0 is version 0.
    let (_, bin) = split_chunks(&compressed).expect("chunks");
    assert_eq!(bin.expect("binary chunk")[0], 0xa0);
}

#[test]
fn position_bounds_are_written() {
    let json = json_of(&encode_glb(&sphere(6, 8), &PLAIN).expect("encoded"));
    let position = &json["accessors"][0];
    assert_eq!(position["min"], json!([-1.0, -1.0, -1.0]));
    assert_eq!(position["max"], json!([1.0, 1.0, 1.0]));
    assert_eq!(json["accessors"][3]["componentType"], json!(5123));
}

#[test]
fn srgb_conversion_round_trips_every_value() {
    for value in 0..=255u8 {
        let linear = f64::from(srgb_to_linear_u16(value)) / 65535.0;
        assert_eq!(linear_to_srgb_u8(linear), value);
    }
}

#[test]
fn non_unit_normals_are_normalized() {
    let mut mesh = sphere(4, 5);
    if let Some(normals) = &mut mesh.normals {
        normals[0] = [0.0, 0.0, 3.0];
        normals[1] = [0.0, 0.0, 0.0];
    }
    let back =
        super::reader::decode_glb(&encode_glb(&mesh, &PLAIN).expect("encoded")).expect("decoded");
    let normals = back.normals.expect("normals");
    assert_eq!(normals[0], [0.0, 0.0, 1.0]);
    assert_eq!(normals[1], [0.0, 0.0, 1.0]);
}

#[test]
fn empty_mesh_is_not_written() {
    let err = encode_glb(&TriangleMesh::default(), &PLAIN).expect_err("empty");
    assert!(err.to_string().contains("has no triangles"), "{err}");
}

/// Sets a little-endian `u16` or `f32` inside the binary chunk.
fn poke(bin: &mut [u8], at: usize, bytes: &[u8]) {
    bin[at..at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn malformed_files_are_rejected() {
    let mesh = sphere(5, 6);
    let plain = encode_glb(&mesh, &PLAIN).expect("plain");
    let compressed = encode_glb(&mesh, &MESHOPT).expect("compressed");
    let index_offset = json_of(&plain)["bufferViews"][3]["byteOffset"]
        .as_u64()
        .expect("offset") as usize;

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "short",
            b"glTF\x02\0".to_vec(),
            "shorter than the 12-byte GLB header",
        ),
        (
            "bad magic",
            [b"GLTF".as_slice(), &plain[4..]].concat(),
            "does not start with the GLB magic",
        ),
        (
            "version 1",
            [&plain[..4], &1u32.to_le_bytes(), &plain[8..]].concat(),
            "container version 1, but only version 2",
        ),
        (
            "truncated",
            plain[..plain.len() - 10].to_vec(),
            "truncated or corrupt",
        ),
        (
            "chunk too long",
            {
                let mut bytes = plain.clone();
                bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
                bytes
            },
            "chunk 0 declares 4294967295 bytes",
        ),
        (
            "index out of range",
            rewrite(&plain, |_, bin| {
                poke(bin, index_offset + 2, &999u16.to_le_bytes())
            }),
            "index 999 is out of range for 26 vertices",
        ),
        (
            "NaN position",
            rewrite(&plain, |_, bin| poke(bin, 4, &f32::NAN.to_le_bytes())),
            "vertex 0 has a coordinate that is not finite",
        ),
        (
            "count beyond view",
            rewrite(&plain, |json, _| {
                json["accessors"][0]["count"] = json!(1_000_000_000)
            }),
            "accessor 0: 1000000000 elements of 12 bytes",
        ),
        (
            "view beyond buffer",
            rewrite(&plain, |json, _| {
                json["bufferViews"][1]["byteOffset"] = json!(1u64 << 40)
            }),
            "buffer view 1: bytes 1099511627776..",
        ),
        (
            "wrong component type",
            rewrite(&plain, |json, _| {
                json["accessors"][0]["componentType"] = json!(5123)
            }),
            "component type 5123 with type VEC3 is not valid here",
        ),
        (
            "unknown required extension",
            rewrite(&plain, |json, _| {
                json["extensionsRequired"] = json!(["KHR_draco_mesh_compression"]);
            }),
            "requires extension `KHR_draco_mesh_compression`",
        ),
        (
            "external buffer",
            rewrite(&plain, |json, _| {
                json["buffers"][0]["uri"] = json!("mesh.bin")
            }),
            "buffer 0 has uri `mesh.bin`",
        ),
        (
            "not glTF JSON",
            rewrite(&plain, |json, _| *json = json!({"hello": 1})),
            "is not a valid glTF document",
        ),
        (
            "line mode",
            rewrite(&plain, |json, _| {
                json["meshes"][0]["primitives"][0]["mode"] = json!(1)
            }),
            "mesh 0 primitive 0: mode 1 is not supported",
        ),
        (
            "meshopt count beyond limit",
            rewrite(&compressed, |json, _| {
                json["bufferViews"][0]["extensions"]["EXT_meshopt_compression"]["count"] =
                    json!(1u64 << 40);
            }),
            "more than the limit of 1073741824",
        ),
        (
            "meshopt filter",
            rewrite(&compressed, |json, _| {
                json["bufferViews"][1]["extensions"]["EXT_meshopt_compression"]["filter"] =
                    json!("OCTAHEDRAL");
            }),
            "meshopt filter `OCTAHEDRAL` is not supported",
        ),
        (
            "meshopt data cut short",
            rewrite(&compressed, |json, _| {
                json["bufferViews"][0]["extensions"]["EXT_meshopt_compression"]["byteLength"] =
                    json!(10);
            }),
            "buffer view 0: meshopt data cannot be decoded",
        ),
        (
            "fallback read without decoding",
            rewrite(&compressed, |json, _| {
                json["bufferViews"][0]["extensions"] = json!({});
            }),
            "refers to fallback buffer 1, which has no data",
        ),
    ];

    // A JSON chunk over the limit, declared consistently so only the size check fails.
    let mut huge = vec![b' '; (64 << 20) + 4];
    huge[0] = b'{';
    huge[1] = b'}';
    cases.push((
        "huge JSON",
        assemble(huge, Vec::new()).expect("assembled"),
        "JSON chunk is 67108868 bytes, more than the limit",
    ));

    let dir = tempfile::tempdir().expect("temporary folder");
    for (name, bytes, expected) in cases {
        let path = dir.path().join(format!("{}.glb", name.replace(' ', "_")));
        std::fs::write(&path, bytes).expect("written");
        let err = TriangleMesh::read_glb(&path).expect_err(name);
        assert!(err.to_string().contains(expected), "{name}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
}
