// The API that both the native `Kai` class and the REST client `RemoteKai` implement, and
// the shapes of their results. Results are the camelCase JSON of `kai … --json` and of
// kai-server's REST API (its /openapi.json), except that vectors are Float32Arrays.

/** A photo: the encoded bytes (JPEG, PNG, WebP, BMP or TIFF) or a path to read them from. */
export type ImageInput = Buffer | Uint8Array | string

/** The codes on `err.code` of every error the API rejects with. */
export type KaiErrorCode =
  | 'KAI_INVALID_INPUT'
  | 'KAI_NOT_FOUND'
  | 'KAI_MODEL_NOT_FOUND'
  | 'KAI_CONFLICT'
  | 'KAI_STORAGE'
  | 'KAI_NOT_SUPPORTED'
  | 'KAI_INTERNAL'
  /** A method that kai-server has no route for, called on `RemoteKai`. */
  | 'KAI_NOT_REMOTE'
  /** HTTP 429 from kai-server. `retryAfterSeconds` is the wait before a retry. */
  | 'KAI_RATE_LIMITED'
  /** HTTP 401: a missing or invalid bearer token. */
  | 'KAI_UNAUTHORIZED'
  /** HTTP 403: a host name or browser origin that kai-server does not allow. */
  | 'KAI_FORBIDDEN'
  /** kai-server could not be reached, or closed the connection. */
  | 'KAI_UNAVAILABLE'
  /** kai-server did not respond within the request timeout. */
  | 'KAI_TIMEOUT'

/** An error of the API: an `Error` with a stable `code`. */
export interface KaiError extends Error {
  /** The stable code. */
  code: KaiErrorCode
  /** The HTTP status, for errors that kai-server returned. */
  status?: number
  /** Seconds after which a rate-limited request may be retried. */
  retryAfterSeconds?: number
}

/** The options of `Kai.open`, the in-process native module. */
export interface KaiOpenOptions {
  /** The store folder (default `KAI_DATA_DIR`, else `./kai-data`). */
  store?: string
  /** A PostgreSQL URL for the catalog and the registry (default `KAI_DATABASE_URL`). */
  databaseUrl?: string
  /** The model folder (default `MODEL_DIR`, else the user cache folder). */
  modelDir?: string
  /** `auto`, `cpu` or `cuda:N` (default `KAI_DEVICE`). */
  device?: string
  /** Models kept loaded at most (default `MODEL_CACHE_SIZE`). */
  modelCacheSize?: number
}

// Inference

/** One ImageNet class of a photo, with its softmax probability in [0, 1]. */
export interface Prediction {
  label: string
  score: number
}

/** A material type with the calibrated probability in [0, 1] that the photo shows it. */
export interface ClassConfidence {
  materialType: string
  confidence: number
}

/** A reason why a photo failed the quality thresholds. */
export type QualityIssue =
  | 'blurry'
  | 'underexposed'
  | 'overexposed'
  | 'low_resolution'
  | 'low_contrast'
  | 'noisy'

/** The limits a photo must meet. A field left out keeps its default. */
export interface QualityThresholds {
  /** Minimum variance of the Laplacian of luma (default 50). */
  minSharpness: number
  /** Luma level (0–255) at or below which a pixel counts as clipped shadow (default 5). */
  shadowLevel: number
  /** Maximum fraction of clipped-shadow pixels (default 0.3). */
  maxShadowsClipped: number
  /** Luma level (0–255) at or above which a pixel counts as clipped highlight (default 250). */
  highlightLevel: number
  /** Maximum fraction of clipped-highlight pixels (default 0.3). */
  maxHighlightsClipped: number
  /** Minimum mean luma as a fraction of white (default 0.1). */
  minMeanBrightness: number
  /** Maximum mean luma as a fraction of white (default 0.9). */
  maxMeanBrightness: number
  /** Minimum RMS contrast (default 0.05). */
  minContrast: number
  /** Maximum noise standard deviation in luma levels (default 10). */
  maxNoise: number
  /** Minimum length of the shorter side in pixels (default 224). */
  minShortSide: number
  /** Minimum size in megapixels, where 0 (the default) turns the rule off. */
  minMegapixels: number
}

/** The measurements of a photo and whether it passed the thresholds. */
export interface QualityReport {
  width: number
  height: number
  sharpness: number
  shadowsClipped: number
  highlightsClipped: number
  meanBrightness: number
  contrast: number
  noise: number
  /** Overall quality from 0 to 1, below 0.5 exactly when `passed` is false. */
  score: number
  reasons: QualityIssue[]
  passed: boolean
}

/** The options of a recognition. */
export interface RecognizeOptions {
  /** Materials returned, 1 to 100 (default 5). */
  topK?: number
  /** Text describing the material, fused into the material ranking. */
  hint?: string
  /** Share of the hint's similarity in the material score, 0 to 1 (default 0.3). */
  hintWeight?: number
  /** Photos whose shorter side has fewer pixels are rejected (default 64). */
  minResolution?: number
  /** Below this cosine similarity to every catalog image the photo is `unknown` (default 0.3). */
  unknownThreshold?: number
}

/** A catalog material that matches a photo. */
export interface MaterialMatch {
  id: string
  name: string
  materialType: string
  /** Cosine similarity to the material's closest image, fused with the hint's when given. */
  score: number
}

/** The result of recognizing one photo. */
export interface Recognition {
  /** The best-matching materials, best first. */
  materials: MaterialMatch[]
  /** Every material type of the catalog, most probable first. */
  classes: ClassConfidence[]
  /** Whether the photo is too far from every catalog image to name a material. */
  unknown: boolean
  /** `head` (the material-type head) or `neighbours` (the vote of the nearest images). */
  classifiedBy: string
  processingTimeMs: number
  quality: QualityReport
}

/** The five most probable material types of a texture photo. */
export interface TextureClasses {
  classes: ClassConfidence[]
  unknown: boolean
  processingTimeMs: number
}

/** The model option of the embedding methods. */
export interface EmbedOptions {
  /** The model name (default: the catalog's text or image model). */
  model?: string
}

/** The options of `classifyImages`. */
export interface ClassifyOptions extends EmbedOptions {
  /** ImageNet classes listed per photo, 0 to 100 (default 5). */
  topK?: number
}

// Catalog

/** One stored image of a material. */
export interface ImageRef {
  /** Path relative to the store's `images` folder. */
  path: string
  sha256: string
  width: number
  height: number
}

/** The fields of a material that a caller provides, as in `catalog.json`. */
export interface MaterialInput {
  /** Unique id: letters, digits, `-`, `_` and `.`. */
  id: string
  name: string
  materialType: string
  collectionId?: string | null
  manufacturer?: string | null
  tags?: string[]
  description?: string
  properties?: Record<string, unknown>
  /** Stored image paths to keep on a replace, empty on a create. */
  images?: string[]
}

/** A stored material. */
export interface Material {
  id: string
  name: string
  materialType: string
  collectionId?: string | null
  manufacturer?: string | null
  tags: string[]
  description: string
  properties: Record<string, unknown>
  images: ImageRef[]
  /** 1 for a new record, one more for each update. */
  version: number
  /** RFC 3339 in UTC. */
  createdAt: string
  /** RFC 3339 in UTC. */
  updatedAt: string
}

/** One entry of a material's history. */
export interface MaterialVersion {
  version: number
  /** `created`, `updated` or `deleted`. */
  change: string
  /** RFC 3339 in UTC. */
  changedAt: string
  /** The record after the change (before it, for `deleted`). */
  record: MaterialInput
}

/** A page of `listMaterials`. */
export interface MaterialFilter {
  materialType?: string
  collection?: string
  tag?: string
  /** Materials skipped (default 0). */
  offset?: number
  /** Materials returned, 1 to 1000 (default 100). */
  limit?: number
}

/** A catalog search by text, by photo, or both. */
export interface SearchQuery {
  /** Words and meaning to look for, optional when `image` is given. */
  query?: string
  image?: ImageInput
  materialType?: string
  /** Only materials that have every one of these tags. */
  tags?: string[]
  collection?: string
  /** Results per page, 1 to 1000 (default 10). */
  topK?: number
  /** Results skipped, for paging. */
  offset?: number
}

/** One search result. Only the order of the scores is meaningful. */
export interface SearchHit {
  id: string
  name: string
  materialType: string
  score: number
}

/** A page of search results, best first. */
export interface SearchResults {
  results: SearchHit[]
}

/** The options of `replaceMaterial`. */
export interface ReplaceOptions {
  /** Reject with `KAI_CONFLICT` unless the material is at this version. */
  expectVersion?: number
}

/** A record that an import could not store, with the reason. */
export interface RecordError {
  /** The record's id, else its position. */
  record: string
  message: string
}

/** The recognition calibration: the temperature of the class vote and its held-out fit. */
export interface Calibration {
  temperature: number
  samples: number
  accuracy?: number | null
  expectedCalibrationError?: number | null
}

/** The outcome of an import, record by record. */
export interface ImportReport {
  created: string[]
  updated: string[]
  unchanged: string[]
  failed: RecordError[]
  /** The calibration fitted after the import, when anything changed. */
  calibration?: Calibration | null
}

/** The contents of the catalog and its storage. */
export interface CatalogSummary {
  materials: number
  images: number
  materialTypes: string[]
  textModel: string
  imageModel: string
  /** `sqlite` or `postgres`. */
  storage: string
}

/** The outcome of re-embedding the catalog. */
export interface ReindexReport {
  reindexed: number
}

// Heads

/** The target of a head. */
export interface HeadSpec {
  domain: string
  /** `materialType`, or `property:NAME` for a property's value. */
  label: string
  materialType?: string | null
}

/** A head to train. `{}` trains the material-type head. */
export interface TrainHeadSpec {
  /** The head's name (default `material-type`). */
  domain?: string
  /** `materialType` (the default), or `property:NAME`. */
  label?: string
  /** Only materials of this type. */
  materialType?: string
}

/** A trained head and its held-out accuracy beside the nearest-neighbour vote. */
export interface HeadManifest {
  spec: HeadSpec
  classes: string[]
  imageModel: string
  dimension: number
  temperature: number
  heldoutAccuracy: number
  neighbourAccuracy: number
  trainingImages: number
  heldoutImages: number
}

// Parameter registry

/** A parameter value. */
export type ParamValue = boolean | number | string

/** The current state of one parameter set. */
export interface SetSummary {
  name: string
  scope?: string | null
  version: number
  versions: number
  updatedAt: string
}

/** One immutable version of a parameter set. */
export interface ParameterSet {
  name: string
  scope?: string | null
  version: number
  values: Record<string, ParamValue>
  author: string
  note: string
  createdAt: string
}

/** A parameter whose value differs between two versions, with null for an absent value. */
export interface ValueChange {
  parameter: string
  from?: ParamValue | null
  to?: ParamValue | null
}

/** A set version identified by name, scope and version. */
export interface VersionRef {
  name: string
  scope?: string | null
  version: number
}

/** The scope of a set. */
export interface ScopeOptions {
  /** A material type or collection, unset for the unscoped set. */
  scope?: string
}

/** The options of `getParameters`. */
export interface GetParametersOptions extends ScopeOptions {
  /** The version (default: the current one). */
  version?: number
}

/** The options of a registry write. */
export interface WriteParametersOptions extends ScopeOptions {
  /** The author of the change (default `unknown`). */
  author?: string
  /** The reason for the change. */
  note?: string
  /** Reject with `KAI_CONFLICT` unless the set is at this version (0: must not exist). */
  expectVersion?: number
}

/** A result to record: how a set version performed on a catalog material. */
export interface ResultInput {
  set: string
  scope?: string
  /** The set version used (default: the current one). */
  version?: number
  materialId: string
  metrics: Record<string, number>
}

/** A recorded result. */
export interface ResultRecord {
  set: string
  scope?: string | null
  version: number
  materialId: string
  metrics: Record<string, number>
  recordedAt: string
}

/** The outcome of recording several results. */
export interface RecordedBatch {
  recorded: number
}

/** The set and the scopes of a resolution. */
export interface ResolveOptions {
  /** The set name (default `DEFAULT_PARAMETER_SET`). */
  set?: string
  /** Scopes to try in order, not allowed with `materialId`. */
  scopes?: string[]
  /** A catalog material, whose type and collection are the scopes. */
  materialId?: string
}

/** The set version that applies, and how it was found. */
export interface Resolution {
  name: string
  scope?: string | null
  version: number
  values: Record<string, ParamValue>
  tried: string[]
  fallback: boolean
  materialId?: string | null
}

/** The target of a suggestion: a catalog material or an embedding. */
export interface SuggestTarget {
  materialId?: string
  embedding?: Float32Array | number[]
  /** The metric that ranks versions (default `score`). */
  metric?: string
  /** Whether higher metric values are better (default true). */
  higherIsBetter?: boolean
}

/** One result that supports a suggestion. */
export interface Evidence {
  materialId: string
  similarity: number
  set: VersionRef
  value: number
}

/** A suggested set version, or the default set when no evidence qualified. */
export interface Suggestion {
  set: VersionRef
  metric: string
  score?: number | null
  fallback: boolean
  reason: string
  evidence: Evidence[]
  values: Record<string, ParamValue>
}

/** The outcome of a purge. */
export interface PurgeReport {
  cutoff: string
  purged: VersionRef[]
}

/** The definition of one parameter. */
export interface ParamSpec {
  type: 'float' | 'int' | 'bool' | 'enum' | 'string'
  default: ParamValue
  min?: number | null
  max?: number | null
  maxLength?: number | null
  allowed?: string[]
  unit?: string | null
  description?: string
}

/** Parameter definitions by name. */
export interface ParameterSchema {
  parameters: Record<string, ParamSpec>
}

/** The outcome of applying a schema. */
export interface SchemaReport {
  added: string[]
  changed: string[]
  unchanged: string[]
}

// Models

/** A model of the model folder. */
export interface ModelSummary {
  name: string
  /** `ready`, `unverified`, `missing` or `corrupt`. */
  state: string
  builtin: boolean
  /** `text-embedding` or `image-embedding`. */
  task: string
  path: string
  dimension?: number | null
  license?: string | null
  problemFiles?: string[]
}

/** A model in the cache of loaded models. */
export interface LoadedModelInfo {
  name: string
  task: string
  dimension: number
  device: string
  loadSeconds: number
  loadedAt: string
  lastUsedAt: string
  hits: number
}

/** The models of the model folder and the cache of loaded models. */
export interface ModelList {
  modelDir: string
  cacheSize: number
  models: Array<ModelSummary & { loaded: boolean }>
  /** Most recently used first. */
  loaded: LoadedModelInfo[]
}

/** The outcome of `loadModel`. */
export interface LoadOutcome {
  model: LoadedModelInfo
  alreadyLoaded: boolean
  /** Names of the loaded models afterwards, most recently used first. */
  loaded: string[]
}

/** The outcome of `fetchModel`, the shape of `kai models fetch --json`. */
export interface FetchReport {
  name: string
  /** The model folder. */
  path: string
  /** Whether a download happened, false when every file was already verified. */
  downloaded: boolean
  /** The files written, relative to the folder. */
  written: string[]
}

/** The outcome of `unloadModel`. */
export interface UnloadOutcome {
  name: string
  /** Whether the model was loaded and so was removed from the cache. */
  unloaded: boolean
}

// Health

/** The outcome of one component's check. */
export interface ComponentCheck {
  /** `text-model`, `image-model`, `catalog` or `registry`. */
  name: string
  /** `ok`, `failed` or `timeout`. */
  status: string
  message?: string | null
  durationMs: number
}

/** Whether kai can serve requests: `ready` when every component passed. */
export interface HealthReport {
  /** `ready` or `not ready`. */
  status: string
  version?: string
  components: ComponentCheck[]
}

// Reconstruction

/**
 * A stage of a reconstruction, in the order the stages run: structure from motion
 * (`screening` to `refinement`), then dense points (`depth_maps`, `fusion`), the surface
 * (`meshing`), levels of detail (`simplification`) and the model files (`export`).
 */
export type ReconStage =
  | 'screening'
  | 'features'
  | 'matching'
  | 'verification'
  | 'registration'
  | 'refinement'
  | 'depth_maps'
  | 'fusion'
  | 'meshing'
  | 'simplification'
  | 'export'

/** A photo that a reconstruction left out, with the reason. */
export interface UnregisteredImage {
  name: string
  /** For example `blurry` from quality screening, or too few matches. */
  reason: string
}

/** Counts and errors of structure from motion, as kai-server returns them. */
export interface ReconstructionSummary {
  /** Photos given to the reconstruction. */
  images: number
  /** Photos with an estimated pose. */
  registeredImages: number
  /** Triangulated 3D points. */
  points: number
  /** Observations over all points. */
  observations: number
  /** Mean observations per point. */
  meanTrackLength: number
  /** Mean reprojection error over all observations, in pixels. */
  meanReprojectionError: number
  /** Photos left out, with the reason for each. */
  unregistered: UnregisteredImage[]
}

/** The options of the native `Kai.reconstruct`. */
export interface ReconstructOptions {
  /** A folder to write the COLMAP text model and points.ply into. */
  out?: string
  /** The parameter set whose `recon.*` values configure the run (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
  /**
   * Called on the event loop as the run goes on, with a fraction in [0, 1] that never
   * decreases. Every call comes before the Promise settles. When it throws, it is not
   * called again and the Promise rejects with `KAI_INVALID_INPUT` once the run has ended.
   */
  onProgress?: (stage: ReconStage, fraction: number) => void
}

/** A camera's intrinsics, with COLMAP's model name and parameter order. */
export interface ReconCamera {
  /** `PINHOLE` (fx, fy, cx, cy) or `OPENCV` (fx, fy, cx, cy, k1, k2, p1, p2). */
  model: 'PINHOLE' | 'OPENCV'
  width: number
  height: number
  /** Focal lengths and principal point in pixels, then the distortion terms. */
  params: number[]
}

/** A registered photo and its world-to-camera pose, `x_cam = R x_world + t`. */
export interface ReconImage {
  name: string
  /** Index into `cameras`. */
  camera: number
  /** The rows of the rotation matrix R. */
  rotation: number[][]
  /** The translation t. */
  translation: number[]
  /** The camera centre in world coordinates, `-Rᵀ t`. */
  center: number[]
}

/** The triangulated points as parallel typed arrays. */
export interface ReconPoints {
  /** World coordinates, x y z per point. */
  xyz: Float64Array
  /** Colours sampled from the photos, r g b per point. */
  rgb: Uint8Array
  /** Mean reprojection error over each point's track, in pixels. */
  error: Float64Array
  /** Photos that observe each point. */
  trackLength: Uint32Array
}

/** The outcome of the native `Kai.reconstruct`. */
export interface ReconstructionResult {
  summary: ReconstructionSummary
  cameras: ReconCamera[]
  /** The registered photos, in registration order. */
  images: ReconImage[]
  points: ReconPoints
  /** The files written into `options.out`, empty without it. */
  files: string[]
}

/** The options of `generateScene`. */
export interface SceneOptions {
  /** Number of photos, 1 to 1000 (default 30). */
  images?: number
  /** Seed of every random choice (default 0); the same options give the same pixels. */
  seed?: number
  /** Photo width in pixels, 16 to 8192 (default 640). */
  width?: number
  /** Photo height in pixels, 16 to 8192 (default 480). */
  height?: number
  /** Surface points sampled for the ground truth (default 5000). */
  points?: number
  /**
   * Arc of azimuths the cameras cover, in degrees, 10 to 360 (default 360, a full ring).
   * Neighbouring photos should differ by at most about 15 degrees for reliable matching.
   */
  arcDegrees?: number
}

/** A rendered synthetic scene: the ground truth as a reconstruction, and its files. */
export interface SyntheticScene extends ReconstructionResult {
  /** The PNG files, in capture order. */
  photos: string[]
  /** The folder of the ground truth's COLMAP text model and points.ply. */
  groundTruthDir: string
}

/** Counts of one level of detail of a model, and its file name. */
export interface LevelSummary {
  /** The file name, such as `model.lod1.glb`. */
  file: string
  vertices: number
  triangles: number
}

/** Counts of the stages after structure from motion. */
export interface ModelSummary {
  /** Points fused from the depth maps. */
  densePoints: number
  /** Points left after clean-up, which the surface was reconstructed from. */
  surfacePoints: number
  /** Every level of detail, the full mesh first. */
  levels: LevelSummary[]
}

/** Counts of a whole reconstruction: those of structure from motion, and the model's. */
export interface PipelineSummary extends ReconstructionSummary {
  /** Dense points, mesh and levels; null for jobs of kai versions that ran structure from motion only. */
  model: ModelSummary | null
}

/** The options of the native `Kai.reconstructModel`. */
export interface ReconstructModelOptions {
  /** The parameter set whose `recon.*` values configure the run (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
  /** A folder that keeps the files between the stages: `sparse/`, `dense.ply`, `mesh.ply` and `lod/`. */
  work?: string
  /** Called as for `reconstruct`, through every stage of the run. */
  onProgress?: (stage: ReconStage, fraction: number) => void
}

/** The outcome of the native `Kai.reconstructModel`: the sparse model, the files and the model's counts. */
export interface ModelReconstructionResult extends ReconstructionResult {
  /** Every file written: the model files first (level 0, then the coarser levels), then those kept in `work`. */
  files: string[]
  model: ModelSummary
}

/** A photo that passed quality screening. */
export interface AcceptedPhoto {
  name: string
  /** Width in pixels, after the EXIF orientation. */
  width: number
  /** Height in pixels, after the EXIF orientation. */
  height: number
  /** Focal length in pixels from EXIF, or null when the photo has none. */
  focalPx: number | null
}

/** Result of quality screening (`screening.json`): accepted photos, and rejected ones with the reason. */
export interface ScreeningReport {
  /** Photos that passed, in input order. */
  accepted: AcceptedPhoto[]
  /** Photos left out, in input order, with the reason. */
  rejected: UnregisteredImage[]
}

/** The options of the native `Kai.screenPhotos`. */
export interface ScreenPhotosOptions {
  /** A file to write the report to as JSON. */
  output?: string
  /** The parameter set whose quality thresholds apply (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
  /** Called as for `reconstruct`, with the fraction of the photos screened. */
  onProgress?: (stage: ReconStage, fraction: number) => void
}

/** The options of the native `Kai.densify` and `Kai.meshPoints`. */
export interface StageOptions {
  /** The parameter set whose `recon.*` values configure the stage (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
  /** Called as for `reconstruct`, with the fraction of the stage's work. */
  onProgress?: (stage: ReconStage, fraction: number) => void
}

/** The file and counts of the native `Kai.densify` and `Kai.meshPoints`. */
export interface StageReport {
  /** The file written. */
  output: string
  /** Dense points written (`densify`), or points the surface was made from (`meshPoints`). */
  points: number
  /** Vertices of the mesh (`meshPoints` only). */
  vertices?: number
  /** Triangles of the mesh (`meshPoints` only). */
  triangles?: number
}

/** The options of the native `Kai.levelsOfDetail`. */
export interface LevelsOfDetailOptions {
  /** The parameter set whose `recon.lod.*` values give the levels (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
}

/** Mesh compression of GLB files: `meshopt` (EXT_meshopt_compression) or `none`. */
export type MeshCompression = 'meshopt' | 'none'

/** The options of the native `Kai.exportModel`. */
export interface ExportModelOptions {
  /** The parameter set whose `recon.export.compression` applies unless `compression` is given. */
  set?: string
  /** Mesh compression of GLB files (default: the set's). */
  compression?: MeshCompression
}

/** A level of detail written to a file. */
export interface LevelFile {
  /** The file's path. */
  file: string
  vertices: number
  triangles: number
}

/** A triangle mesh as `readMesh` returns it: three values per vertex or triangle. */
export interface MeshArrays {
  /** Vertex positions, x y z per vertex. */
  positions: Float32Array
  /** Unit vertex normals, x y z per vertex, or null when the file has none. */
  normals: Float32Array | null
  /** Vertex colours, r g b per vertex, or null when the file has none. */
  colors: Uint8Array | null
  /** Vertex indices, three per triangle, counter-clockwise seen from outside. */
  triangles: Uint32Array
}

/** A triangle mesh to write with `writeMesh`; normals and colours are optional. */
export interface MeshInput {
  positions: Float32Array
  triangles: Uint32Array
  normals?: Float32Array | null
  colors?: Uint8Array | null
}

/** The options of `writeMesh`. */
export interface WriteMeshOptions {
  /** Mesh compression of a GLB file (default `meshopt`). */
  compression?: MeshCompression
}

/** A model file of a reconstruction job, downloaded by `RemoteKai.reconstructionModel`. */
export interface ModelLevelFile extends LevelSummary {
  /** The file's bytes (GLB unless the job was made otherwise). */
  bytes: Uint8Array
}

/** The state of a reconstruction job. */
export type ReconJobStatus = 'queued' | 'running' | 'succeeded' | 'failed'

/** The error that ended a failed reconstruction job. */
export interface ReconJobError {
  /** A kai error code, such as `KAI_INVALID_INPUT`. */
  code: string
  message: string
}

/** A reconstruction job, as `/api/recon/jobs` returns it; the keys are snake_case. */
export interface ReconJob {
  /** A lower-case UUID. */
  id: string
  status: ReconJobStatus
  /** The running or last stage; null before the job starts. */
  stage: ReconStage | null
  /** Share of the work done, from 0 to 1. */
  progress: number
  /** The error that ended the job; null unless `status` is `failed`. */
  error: ReconJobError | null
  /** Counts and errors; null unless `status` is `succeeded`. */
  result: PipelineSummary | null
  /**
   * Output files of a succeeded job: the models first (`model.glb`, `model.lod1.glb`, ...),
   * then cameras.txt, images.txt, points3D.txt, points.ply, dense.ply and mesh.ply.
   */
  files: string[]
  /** Submission time, RFC 3339 in UTC. */
  createdAt: string
  /** End time, RFC 3339 in UTC; null while the job waits or runs. */
  finishedAt: string | null
}

/** The options of `submitReconstruction`. */
export interface SubmitReconstructionOptions {
  /** The parameter set whose `recon.*` values configure the job (default `DEFAULT_PARAMETER_SET`, else `standard`). */
  set?: string
}

/** The options of `waitForReconstruction`. */
export interface WaitForReconstructionOptions {
  /** Milliseconds between two status requests (default 1000). */
  intervalMs?: number
  /** Milliseconds after which waiting rejects with `KAI_TIMEOUT` (default: no limit). */
  timeoutMs?: number
}

/**
 * kai's API. `createKai` returns the in-process native module or the REST client
 * `RemoteKai`, and both reject with `KaiError`s.
 */
export interface KaiApi {
  /** Embeds texts into one unit-length vector per text. */
  embedText(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>
  /** Embeds photos with an image model into one unit-length vector per photo. */
  embedImages(images: ImageInput[], options?: EmbedOptions): Promise<Float32Array[]>
  /** Lists each photo's most probable ImageNet classes. */
  classifyImages(images: ImageInput[], options?: ClassifyOptions): Promise<Prediction[][]>
  /** Measures a photo's sharpness, exposure, contrast, noise and resolution. */
  assessQuality(image: ImageInput, thresholds?: Partial<QualityThresholds>): Promise<QualityReport>
  /** Recognizes the material in a photo. */
  recognize(image: ImageInput, options?: RecognizeOptions): Promise<Recognition>
  /** Returns the five most probable material types of a texture photo. */
  classifyTexture(image: ImageInput): Promise<TextureClasses>

  /** Searches the catalog by text, by photo, or both. */
  searchMaterials(query: SearchQuery): Promise<SearchResults>
  /** Returns a material, or null when no material has the id. */
  getMaterial(id: string): Promise<Material | null>
  /** Lists materials in id order, a page at a time. */
  listMaterials(filter?: MaterialFilter): Promise<Material[]>
  /** Stores a new material with its photos. */
  createMaterial(record: MaterialInput, images?: ImageInput[]): Promise<Material>
  /** Replaces a material's fields, and its photos when `images` or `record.images` are given. */
  replaceMaterial(
    record: MaterialInput,
    images?: ImageInput[],
    options?: ReplaceOptions,
  ): Promise<Material>
  /** Deletes a material and resolves to false when no material has the id. */
  deleteMaterial(id: string): Promise<boolean>
  /** Returns every version of a material, oldest first. */
  materialHistory(id: string): Promise<MaterialVersion[]>
  /** Imports a catalog folder (`catalog.json` and its images). */
  importCatalog(folder: string): Promise<ImportReport>
  /** Returns the numbers of materials and images, the material types and the models. */
  catalogSummary(): Promise<CatalogSummary>
  /** Re-embeds every material and refits the calibration. */
  reindex(): Promise<ReindexReport>
  /** Returns the stored recognition calibration. */
  calibration(): Promise<Calibration>
  /** Fits the recognition calibration again and stores it. */
  calibrate(): Promise<Calibration>

  /** Lists the trained heads. */
  heads(): Promise<HeadManifest[]>
  /** Trains a head on the catalog's image embeddings and stores it. */
  trainHead(spec?: TrainHeadSpec): Promise<HeadManifest>

  /** Lists every parameter set with its current version. */
  listParameterSets(): Promise<SetSummary[]>
  /** Returns a version of a set (the current one by default). */
  getParameters(name: string, options?: GetParametersOptions): Promise<ParameterSet>
  /** Writes a new version of a set with the given values changed. */
  setParameters(
    name: string,
    values: Record<string, ParamValue>,
    options?: WriteParametersOptions,
  ): Promise<ParameterSet>
  /** Lists every kept version of a set, oldest first. */
  parameterHistory(name: string, options?: ScopeOptions): Promise<ParameterSet[]>
  /** Returns the parameters whose values differ between two versions of a set. */
  diffParameters(
    name: string,
    from: number,
    to: number,
    options?: ScopeOptions,
  ): Promise<ValueChange[]>
  /** Writes a new version of a set equal to version `to`. */
  rollbackParameters(
    name: string,
    to: number,
    options?: WriteParametersOptions,
  ): Promise<ParameterSet>
  /** Records how a set version performed on a catalog material. */
  recordResult(result: ResultInput): Promise<ResultRecord>
  /** Records several results, all or none. */
  recordResults(results: ResultInput[]): Promise<RecordedBatch>
  /** Resolves the set version that applies to a material or to the first matching scope. */
  resolveParameters(options?: ResolveOptions): Promise<Resolution>
  /** Suggests the set version that performed best on similar materials. */
  suggestParameters(target: SuggestTarget): Promise<Suggestion>
  /** Deletes old versions that are neither current nor referenced by a result. */
  purgeParameters(): Promise<PurgeReport>
  /** Returns every parameter's definition. */
  parameterSchema(): Promise<ParameterSchema>
  /** Adds or replaces the definitions given. */
  applyParameterSchema(schema: ParameterSchema): Promise<SchemaReport>

  /** Lists the models of the model folder and the loaded ones. */
  listModels(): Promise<ModelList>
  /** Loads a model into the cache. */
  loadModel(name: string): Promise<LoadOutcome>
  /** Removes a model from the cache. */
  unloadModel(name: string): Promise<UnloadOutcome>
  /** Downloads a built-in model into the model folder. */
  fetchModel(name: string): Promise<FetchReport>

  /** Stores photos (at least 2) in a new reconstruction job and queues it. */
  submitReconstruction(images: ImageInput[], options?: SubmitReconstructionOptions): Promise<ReconJob>
  /** Returns a reconstruction job, or null when no job has the id. */
  getReconstructionJob(id: string): Promise<ReconJob | null>
  /** Lists the reconstruction jobs, oldest first. */
  listReconstructionJobs(): Promise<ReconJob[]>

  /** Checks that the models load and the storage responds. */
  health(): Promise<HealthReport>
  /** Releases the models and storage of the native module. `RemoteKai` has nothing to release. */
  close(): Promise<void>
}
