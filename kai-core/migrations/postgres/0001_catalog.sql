-- Material catalog: current records, their images, every earlier version, a full-text
-- index over the searchable fields, and the vectors of the two vector spaces.

CREATE EXTENSION IF NOT EXISTS vector;

-- array_to_string is only STABLE, because some element types print differently under
-- different settings, and a generated column accepts only IMMUTABLE expressions. Text
-- elements print as themselves, so joining tags is immutable.
CREATE FUNCTION catalog_tags_text(tags TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(tags, ' ') $$;

CREATE TABLE materials (
    -- Numeric key that the vector tables store; never reused.
    pk            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT        NOT NULL UNIQUE,
    name          TEXT        NOT NULL,
    material_type TEXT        NOT NULL,
    collection_id TEXT,
    manufacturer  TEXT,
    tags          TEXT[]      NOT NULL,
    description   TEXT        NOT NULL,
    properties    JSONB       NOT NULL,
    content_hash  TEXT        NOT NULL,  -- SHA-256 of the record and its image bytes
    version       INTEGER     NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    -- The 'simple' configuration lower-cases words without stemming, so keyword search
    -- matches whole words as SQLite's FTS5 index does, in any language.
    search        TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', name), 'A')
        || setweight(to_tsvector('simple', material_type), 'A')
        || setweight(to_tsvector('simple', catalog_tags_text(tags)), 'B')
        || setweight(to_tsvector('simple', description), 'C')
    ) STORED
);

CREATE INDEX materials_type ON materials (material_type);
CREATE INDEX materials_collection ON materials (collection_id);
CREATE INDEX materials_tags ON materials USING GIN (tags);
CREATE INDEX materials_search ON materials USING GIN (search);

CREATE TABLE images (
    pk          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    material_pk BIGINT  NOT NULL REFERENCES materials (pk) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    path        TEXT    NOT NULL,  -- relative to the store's images folder
    sha256      TEXT    NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    UNIQUE (material_pk, position)
);

CREATE INDEX images_material ON images (material_pk);

-- Earlier versions stay after updates and deletes, keyed by the material id.
CREATE TABLE material_versions (
    id         TEXT        NOT NULL,
    version    INTEGER     NOT NULL,
    record     JSONB       NOT NULL,
    change     TEXT        NOT NULL,  -- created, updated or deleted
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, version)
);

-- One row per vector space once its first vector is stored: the model that produced its
-- vectors and their dimension.
CREATE TABLE vector_spaces (
    name      TEXT    PRIMARY KEY,  -- images or texts
    model     TEXT    NOT NULL,
    dimension INTEGER NOT NULL
);

-- The vector columns get their dimension and an HNSW index (cosine distance) when the
-- space's first vector is stored, because the dimension depends on the model. Vectors are
-- stored at unit length. Deleting a material or an image deletes its vectors.
CREATE TABLE text_vectors (
    material_pk BIGINT PRIMARY KEY REFERENCES materials (pk) ON DELETE CASCADE,
    embedding   vector NOT NULL
);

CREATE TABLE image_vectors (
    image_pk    BIGINT PRIMARY KEY REFERENCES images (pk) ON DELETE CASCADE,
    -- The owning material, so filtered searches join materials without images.
    material_pk BIGINT NOT NULL REFERENCES materials (pk) ON DELETE CASCADE,
    embedding   vector NOT NULL
);

CREATE INDEX image_vectors_material ON image_vectors (material_pk);
