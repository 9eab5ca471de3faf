-- Material catalog: current records, their images, every earlier version, and a
-- full-text index over the searchable fields.

CREATE TABLE materials (
    -- Numeric key that the vector indexes store; never reused.
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    material_type TEXT    NOT NULL,
    collection_id TEXT,
    manufacturer  TEXT,
    tags          TEXT    NOT NULL,  -- JSON array of strings
    description   TEXT    NOT NULL,
    properties    TEXT    NOT NULL,  -- JSON object
    content_hash  TEXT    NOT NULL,  -- SHA-256 of the record and its image bytes
    version       INTEGER NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

CREATE INDEX materials_type ON materials (material_type);

CREATE TABLE images (
    pk          INTEGER PRIMARY KEY AUTOINCREMENT,
    material_pk INTEGER NOT NULL REFERENCES materials (pk) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    path        TEXT    NOT NULL,  -- relative to the store's images folder
    sha256      TEXT    NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    UNIQUE (material_pk, position)
);

-- Earlier versions stay after updates and deletes, keyed by the material id.
CREATE TABLE material_versions (
    id         TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    record     TEXT    NOT NULL,  -- the record as JSON
    change     TEXT    NOT NULL,  -- created, updated or deleted
    changed_at TEXT    NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE VIRTUAL TABLE materials_fts USING fts5 (
    name, description, tags, material_type,
    content = 'materials', content_rowid = 'pk'
);

CREATE TRIGGER materials_fts_insert AFTER INSERT ON materials BEGIN
    INSERT INTO materials_fts (rowid, name, description, tags, material_type)
    VALUES (new.pk, new.name, new.description, new.tags, new.material_type);
END;

CREATE TRIGGER materials_fts_delete AFTER DELETE ON materials BEGIN
    INSERT INTO materials_fts (materials_fts, rowid, name, description, tags, material_type)
    VALUES ('delete', old.pk, old.name, old.description, old.tags, old.material_type);
END;

CREATE TRIGGER materials_fts_update AFTER UPDATE ON materials BEGIN
    INSERT INTO materials_fts (materials_fts, rowid, name, description, tags, material_type)
    VALUES ('delete', old.pk, old.name, old.description, old.tags, old.material_type);
    INSERT INTO materials_fts (rowid, name, description, tags, material_type)
    VALUES (new.pk, new.name, new.description, new.tags, new.material_type);
END;
