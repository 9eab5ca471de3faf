-- Reconstruction parameters: the settings of structure from motion (features, matching,
-- RANSAC, bundle adjustment), with the defaults of kai-core's SfmOptions.
--
-- The shipped tiers get their reconstruction values in every unscoped version they have.
-- Versions are otherwise never rewritten; this is safe because no version could hold or
-- resolve a recon.* value before this migration, and a value already present wins.
-- Sets users created resolve the new parameters to their defaults.

INSERT INTO parameter_schema (name, spec, updated_at) VALUES
    ('recon.max_image_size', '{"type":"int","min":256,"max":16384,"default":1600,"unit":"px","description":"Photos are downscaled so their longer side is at most this before feature detection."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.max_features', '{"type":"int","min":100,"max":65536,"default":4000,"unit":"keypoints","description":"Most keypoints kept per photo, strongest first."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.match_ratio', '{"type":"float","min":0.5,"max":1,"default":0.8,"unit":"ratio","description":"Lowe ratio test: a match is kept when its distance is below this share of the second-best distance."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.min_pair_inliers', '{"type":"int","min":8,"max":100000,"default":30,"unit":"matches","description":"Geometrically verified matches a photo pair needs to take part."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ransac_threshold_px', '{"type":"float","min":0.1,"max":50,"default":2.0,"unit":"px","description":"Largest epipolar error of a two-view inlier."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ransac_confidence', '{"type":"float","min":0.5,"max":0.999999,"default":0.9999,"unit":"probability","description":"RANSAC stops once it has found the best model with this probability."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ransac_max_iterations', '{"type":"int","min":10,"max":1000000,"default":10000,"unit":"iterations","description":"Upper bound on RANSAC iterations per estimate."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.pnp_threshold_px', '{"type":"float","min":0.1,"max":50,"default":4.0,"unit":"px","description":"Largest reprojection error of a 2D-3D inlier when a photo is registered."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.min_registration_inliers', '{"type":"int","min":6,"max":100000,"default":30,"unit":"matches","description":"2D-3D inliers a photo needs to be registered."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.min_triangulation_angle', '{"type":"float","min":0,"max":45,"default":1.5,"unit":"degrees","description":"Smallest angle between viewing rays for a point to be triangulated."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.max_reprojection_error', '{"type":"float","min":0.5,"max":50,"default":4.0,"unit":"px","description":"Observations with a larger reprojection error are removed after bundle adjustment."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ba_max_iterations', '{"type":"int","min":1,"max":1000,"default":50,"unit":"iterations","description":"Levenberg-Marquardt iterations of a global bundle adjustment."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ba_loss', '{"type":"enum","allowed":["trivial","huber","cauchy"],"default":"cauchy","description":"Robust loss that bundle adjustment applies to reprojection errors."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.ba_loss_scale_px', '{"type":"float","min":0.01,"max":100,"default":1.0,"unit":"px","description":"Reprojection error at which the robust loss starts to down-weight an observation."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.refine_intrinsics', '{"type":"bool","default":true,"description":"Whether the global bundle adjustment refines focal length and lens distortion."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.local_ba_images', '{"type":"int","min":2,"max":100,"default":6,"unit":"photos","description":"Photos whose poses a local bundle adjustment refines after each registration."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.camera_model', '{"type":"enum","allowed":["pinhole","opencv"],"default":"opencv","description":"Intrinsic model estimated for each camera: pinhole, or OpenCV radial-tangential distortion."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.screen_quality', '{"type":"bool","default":true,"description":"Whether photos failing the quality.* thresholds are left out before reconstruction."}', (extract(epoch FROM now()) * 1000)::BIGINT),
    ('recon.seed', '{"type":"int","min":0,"max":4294967295,"default":0,"description":"Seed of every random choice, so a run repeats exactly."}', (extract(epoch FROM now()) * 1000)::BIGINT);

-- `standard` takes the defaults; `premium` and `enterprise` detect more features on
-- larger photos and iterate bundle adjustment longer.
UPDATE parameter_sets SET vals = ('{"recon.max_image_size":1600,"recon.max_features":4000,"recon.match_ratio":0.8,"recon.min_pair_inliers":30,"recon.ransac_threshold_px":2.0,"recon.ransac_confidence":0.9999,"recon.ransac_max_iterations":10000,"recon.pnp_threshold_px":4.0,"recon.min_registration_inliers":30,"recon.min_triangulation_angle":1.5,"recon.max_reprojection_error":4.0,"recon.ba_max_iterations":50,"recon.ba_loss":"cauchy","recon.ba_loss_scale_px":1.0,"recon.refine_intrinsics":true,"recon.local_ba_images":6,"recon.camera_model":"opencv","recon.screen_quality":true,"recon.seed":0}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'standard' AND scope = '';

UPDATE parameter_sets SET vals = ('{"recon.max_image_size":2400,"recon.max_features":8000,"recon.match_ratio":0.8,"recon.min_pair_inliers":30,"recon.ransac_threshold_px":2.0,"recon.ransac_confidence":0.9999,"recon.ransac_max_iterations":10000,"recon.pnp_threshold_px":4.0,"recon.min_registration_inliers":30,"recon.min_triangulation_angle":1.5,"recon.max_reprojection_error":4.0,"recon.ba_max_iterations":100,"recon.ba_loss":"cauchy","recon.ba_loss_scale_px":1.0,"recon.refine_intrinsics":true,"recon.local_ba_images":6,"recon.camera_model":"opencv","recon.screen_quality":true,"recon.seed":0}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'premium' AND scope = '';

UPDATE parameter_sets SET vals = ('{"recon.max_image_size":3200,"recon.max_features":12000,"recon.match_ratio":0.8,"recon.min_pair_inliers":30,"recon.ransac_threshold_px":2.0,"recon.ransac_confidence":0.9999,"recon.ransac_max_iterations":50000,"recon.pnp_threshold_px":4.0,"recon.min_registration_inliers":30,"recon.min_triangulation_angle":1.5,"recon.max_reprojection_error":4.0,"recon.ba_max_iterations":200,"recon.ba_loss":"cauchy","recon.ba_loss_scale_px":1.0,"recon.refine_intrinsics":true,"recon.local_ba_images":6,"recon.camera_model":"opencv","recon.screen_quality":true,"recon.seed":0}'::JSONB || vals::JSONB)::TEXT
WHERE name = 'enterprise' AND scope = '';
