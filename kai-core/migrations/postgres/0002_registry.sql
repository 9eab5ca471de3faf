-- Parameter registry: the typed schema of every parameter, immutable versions of the
-- parameter sets, and the results that a set version gave on a material.
--
-- JSON is stored as TEXT, verbatim: JSONB would rewrite numbers (1e15 as
-- 1000000000000000), and a float value would come back as an integer.

CREATE TABLE parameter_schema (
    name       TEXT    PRIMARY KEY,
    spec       TEXT    NOT NULL,  -- JSON: type, min/max or allowed, default, unit, description
    updated_at BIGINT  NOT NULL   -- milliseconds since the Unix epoch
);

-- One row per version; a change inserts a row and never updates one. Two writers that read
-- the same version collide on the unique key, so neither overwrites the other.
CREATE TABLE parameter_sets (
    pk         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,  -- '' for a set that applies to every material
    version    INTEGER NOT NULL,
    vals       TEXT    NOT NULL,  -- JSON object of every parameter's value
    author     TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (name, scope, version)
);

-- A result keeps its set version from being purged.
CREATE TABLE parameter_results (
    pk          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    set_pk      BIGINT  NOT NULL REFERENCES parameter_sets (pk),
    material_id TEXT    NOT NULL,
    metrics     TEXT    NOT NULL,  -- JSON object of metric name to number
    recorded_at BIGINT  NOT NULL
);

CREATE INDEX parameter_results_material ON parameter_results (material_id);
CREATE INDEX parameter_results_set ON parameter_results (set_pk);
CREATE INDEX parameter_sets_created ON parameter_sets (created_at);

-- The shipped schema: recognition and image-quality parameters, with the defaults of
-- kai-core's RecognizeOptions and QualityThresholds.
INSERT INTO parameter_schema (name, spec, updated_at) VALUES
    ('recognition.top_k', '{"type":"int","min":1,"max":100,"default":5,"unit":"materials","description":"Materials that recognition returns."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recognition.hint_weight', '{"type":"float","min":0,"max":1,"default":0.3,"unit":"fraction","description":"Share of the text hint''s similarity in the fused material score."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recognition.min_resolution', '{"type":"int","min":1,"max":65535,"default":64,"unit":"px","description":"Photos whose shorter side is below this are rejected before recognition."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recognition.unknown_threshold', '{"type":"float","min":-1,"max":1,"default":0.3,"unit":"cosine similarity","description":"Below this similarity to the nearest catalog image a photo is reported as unknown."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.min_sharpness', '{"type":"float","min":0,"default":50.0,"unit":"Laplacian variance","description":"Minimum variance of the Laplacian of luma; a photo below it is blurry."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.shadow_level', '{"type":"float","min":0,"max":255,"default":5.0,"unit":"luma level","description":"Luma at or below which a pixel counts as clipped shadow."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.max_shadows_clipped', '{"type":"float","min":0,"max":1,"default":0.3,"unit":"fraction","description":"Largest share of clipped-shadow pixels; above it a photo is underexposed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.highlight_level', '{"type":"float","min":0,"max":255,"default":250.0,"unit":"luma level","description":"Luma at or above which a pixel counts as clipped highlight."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.max_highlights_clipped', '{"type":"float","min":0,"max":1,"default":0.3,"unit":"fraction","description":"Largest share of clipped-highlight pixels; above it a photo is overexposed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.min_mean_brightness', '{"type":"float","min":0,"max":1,"default":0.1,"unit":"fraction of white","description":"Lowest mean luma; below it a photo is underexposed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.max_mean_brightness', '{"type":"float","min":0,"max":1,"default":0.9,"unit":"fraction of white","description":"Highest mean luma; above it a photo is overexposed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.min_contrast', '{"type":"float","min":0,"max":1,"default":0.05,"unit":"RMS contrast","description":"Lowest RMS contrast; below it a photo has low contrast."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.max_noise', '{"type":"float","min":0,"default":10.0,"unit":"luma levels","description":"Largest noise standard deviation; above it a photo is noisy."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.min_short_side', '{"type":"int","min":0,"max":65535,"default":224,"unit":"px","description":"Shortest accepted shorter side; below it a photo has low resolution."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('quality.min_megapixels', '{"type":"float","min":0,"default":0.0,"unit":"megapixels","description":"Smallest accepted pixel count; 0 turns the rule off."}', (extract(epoch FROM now()) * 1000)::BIGINT);

-- Three quality tiers: `standard` keeps the defaults; `premium` and `enterprise` screen
-- photos more strictly and ask for a closer catalog match.
INSERT INTO parameter_sets (name, scope, version, vals, author, note, created_at)
SELECT 'standard', '', 1, (SELECT jsonb_object_agg(name, spec::JSONB -> 'default') FROM parameter_schema)::TEXT, 'kai', 'shipped defaults', (extract(epoch FROM now()) * 1000)::BIGINT
UNION ALL
SELECT 'premium', '', 1, ((SELECT jsonb_object_agg(name, spec::JSONB -> 'default') FROM parameter_schema) || '{"recognition.unknown_threshold":0.35,"quality.min_sharpness":100.0,"quality.max_noise":8.0,"quality.min_short_side":512}'::JSONB)::TEXT, 'kai', 'shipped defaults', (extract(epoch FROM now()) * 1000)::BIGINT
UNION ALL
SELECT 'enterprise', '', 1, ((SELECT jsonb_object_agg(name, spec::JSONB -> 'default') FROM parameter_schema) || '{"recognition.top_k":10,"recognition.unknown_threshold":0.4,"quality.min_sharpness":150.0,"quality.max_noise":6.0,"quality.min_short_side":1024,"quality.min_megapixels":1.0}'::JSONB)::TEXT, 'kai', 'shipped defaults', (extract(epoch FROM now()) * 1000)::BIGINT;
