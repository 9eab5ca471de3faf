-- Reconstruction parameters for the model stages after structure from motion: dense
-- multi-view stereo, point cloud clean-up, Poisson meshing, levels of detail and export,
-- with the defaults of kai-core's pipeline options.
--
-- As in 0003_recon, the shipped tiers get these values in every unscoped version they
-- have; no version could hold or resolve one before this migration, and a value already
-- present wins. Sets users created resolve the new parameters to their defaults.

INSERT INTO parameter_schema (name, spec, updated_at) VALUES
    ('recon.dense.max_image_size', '{"type":"int","min":128,"max":8192,"default":800,"unit":"px","description":"Photos are downscaled so their longer side is at most this before depth maps are computed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.dense.neighbors', '{"type":"int","min":1,"max":16,"default":4,"unit":"photos","description":"Source photos matched against each reference photo in multi-view stereo."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.dense.depth_planes', '{"type":"int","min":16,"max":1024,"default":128,"unit":"planes","description":"Depth hypotheses swept per reference photo, spaced evenly in inverse depth."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.dense.window_radius', '{"type":"int","min":1,"max":10,"default":3,"unit":"px","description":"Half-size of the window over which photo consistency (NCC) is measured."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.dense.min_ncc', '{"type":"float","min":-1,"max":0.99,"default":0.5,"unit":"correlation","description":"Depths whose normalised cross-correlation is below this are dropped."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.dense.min_consistent_views', '{"type":"int","min":1,"max":16,"default":2,"unit":"photos","description":"Other depth maps that must agree with a depth for it to become a dense point."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.cloud.voxel_size', '{"type":"float","min":0,"max":0.1,"default":0.002,"unit":"share of the scene diagonal","description":"Edge of the voxels the dense points are averaged in; 0 keeps every point."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.cloud.outlier_neighbors', '{"type":"int","min":2,"max":256,"default":20,"unit":"points","description":"Neighbours whose mean distance decides whether a dense point is an outlier."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.cloud.outlier_std_ratio', '{"type":"float","min":0.1,"max":10,"default":2.0,"unit":"standard deviations","description":"Points whose mean neighbour distance exceeds the average by this many standard deviations are removed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.cloud.normal_neighbors', '{"type":"int","min":3,"max":256,"default":30,"unit":"points","description":"Neighbours of the plane fit that gives each point its normal."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.mesh.depth', '{"type":"int","min":5,"max":12,"default":8,"unit":"levels","description":"Poisson reconstruction depth: the finest grid has 2^depth cells along the longest side."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.mesh.screening', '{"type":"float","min":0,"max":100,"default":4.0,"unit":"weight","description":"How strongly the Poisson surface is pulled through the points; 0 is unscreened Poisson."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.mesh.density_trim', '{"type":"float","min":0,"max":0.5,"default":0.05,"unit":"quantile","description":"Surface areas with fewer supporting points than this quantile are trimmed away."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.mesh.min_component_share', '{"type":"float","min":0,"max":1,"default":0.02,"unit":"share of triangles","description":"Connected pieces of the mesh smaller than this share are removed."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.lod.levels', '{"type":"int","min":1,"max":8,"default":3,"unit":"levels","description":"Number of levels of detail, the full mesh included."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.lod.ratio', '{"type":"float","min":0.01,"max":0.9,"default":0.25,"unit":"share of triangles","description":"Each level of detail keeps this share of the triangles of the previous level."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.lod.target_error', '{"type":"float","min":0.0001,"max":1,"default":0.01,"unit":"share of the mesh extent","description":"Largest geometric error simplification may introduce per level."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.export.compression', '{"type":"enum","allowed":["meshopt","none"],"default":"meshopt","description":"Mesh compression in the GLB files: EXT_meshopt_compression, or none."}', (extract(epoch FROM now()) * 1000)::BIGINT);

-- `standard` takes the defaults; `premium` and `enterprise` use larger photos, more depth
-- planes and neighbours, a finer voxel grid and a deeper Poisson grid, and one more level
-- of detail.
UPDATE parameter_sets SET vals = ('{"recon.dense.max_image_size":800,"recon.dense.neighbors":4,"recon.dense.depth_planes":128,"recon.dense.window_radius":3,"recon.dense.min_ncc":0.5,"recon.dense.min_consistent_views":2,"recon.cloud.voxel_size":0.002,"recon.cloud.outlier_neighbors":20,"recon.cloud.outlier_std_ratio":2.0,"recon.cloud.normal_neighbors":30,"recon.mesh.depth":8,"recon.mesh.screening":4.0,"recon.mesh.density_trim":0.05,"recon.mesh.min_component_share":0.02,"recon.lod.levels":3,"recon.lod.ratio":0.25,"recon.lod.target_error":0.01,"recon.export.compression":"meshopt"}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'standard' AND scope = '';

UPDATE parameter_sets SET vals = ('{"recon.dense.max_image_size":1200,"recon.dense.neighbors":6,"recon.dense.depth_planes":192,"recon.dense.window_radius":3,"recon.dense.min_ncc":0.5,"recon.dense.min_consistent_views":2,"recon.cloud.voxel_size":0.001,"recon.cloud.outlier_neighbors":20,"recon.cloud.outlier_std_ratio":2.0,"recon.cloud.normal_neighbors":30,"recon.mesh.depth":9,"recon.mesh.screening":4.0,"recon.mesh.density_trim":0.05,"recon.mesh.min_component_share":0.02,"recon.lod.levels":4,"recon.lod.ratio":0.25,"recon.lod.target_error":0.01,"recon.export.compression":"meshopt"}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'premium' AND scope = '';

UPDATE parameter_sets SET vals = ('{"recon.dense.max_image_size":1600,"recon.dense.neighbors":8,"recon.dense.depth_planes":256,"recon.dense.window_radius":3,"recon.dense.min_ncc":0.5,"recon.dense.min_consistent_views":2,"recon.cloud.voxel_size":0.0005,"recon.cloud.outlier_neighbors":20,"recon.cloud.outlier_std_ratio":2.0,"recon.cloud.normal_neighbors":30,"recon.mesh.depth":10,"recon.mesh.screening":4.0,"recon.mesh.density_trim":0.05,"recon.mesh.min_component_share":0.02,"recon.lod.levels":4,"recon.lod.ratio":0.25,"recon.lod.target_error":0.01,"recon.export.compression":"meshopt"}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'enterprise' AND scope = '';
