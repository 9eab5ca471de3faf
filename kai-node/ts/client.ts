// `RemoteKai`: the `KaiApi` over kai-server's REST API. Each method sends one request
// (embeddings of more texts or photos than one request takes send several) and converts
// the JSON response, with vectors as Float32Arrays.

import type {
  CatalogSummary,
  Calibration,
  ClassifyOptions,
  EmbedOptions,
  FetchReport,
  GetParametersOptions,
  HeadManifest,
  HealthReport,
  ImageInput,
  ImportReport,
  KaiApi,
  LoadOutcome,
  Material,
  MaterialFilter,
  MaterialInput,
  MaterialVersion,
  ModelList,
  ParameterSchema,
  ParameterSet,
  ParamValue,
  Prediction,
  PurgeReport,
  QualityReport,
  QualityThresholds,
  ModelLevelFile,
  ReconJob,
  Recognition,
  RecognizeOptions,
  RecordedBatch,
  ReindexReport,
  ReplaceOptions,
  Resolution,
  ResolveOptions,
  ResultInput,
  ResultRecord,
  SchemaReport,
  ScopeOptions,
  SearchQuery,
  SearchResults,
  SetSummary,
  SubmitReconstructionOptions,
  Suggestion,
  SuggestTarget,
  TextureClasses,
  TrainHeadSpec,
  UnloadOutcome,
  ValueChange,
  WaitForReconstructionOptions,
  WriteParametersOptions,
} from './api.js'
import { DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SERVER_URL, parseMillis, parseServerUrl, parseToken } from './config.js'
import { isKaiError, kaiError, notRemote } from './errors.js'
import { type FieldValue, photoForm, readPhoto, readPhotos } from './form.js'
import { Transport } from './http.js'
import { waitForReconstruction } from './recon.js'

/** Texts one `POST /api/embed/text` takes at most (kai-server's `MAX_TEXTS`). */
export const MAX_TEXTS_PER_REQUEST = 256
/** Photos one `POST /api/embed/image` takes at most (kai-server's `MAX_IMAGES`). */
export const MAX_IMAGES_PER_REQUEST = 32

/** The connection settings of a `RemoteKai`. */
export interface RemoteKaiOptions {
  /** kai-server's base URL (default http://localhost:8000). */
  url?: string | URL
  /** A bearer token for a server that sets `JWT_SECRET`. */
  token?: string
  /** Milliseconds each request may take (default 120000). */
  timeoutMs?: number
}

/** The recognition options, sent as form fields of the same names. */
const RECOGNIZE_FIELDS = ['topK', 'hint', 'hintWeight', 'minResolution', 'unknownThreshold'] as const

/** The JSON body of `POST /api/embed/text`. */
interface TextEmbeddings {
  vectors: number[][]
}

/** The JSON body of `POST /api/embed/image`. */
interface ImageEmbeddings {
  vectors: number[][]
  labels: Prediction[][]
}

/** kai's API over kai-server's REST API. */
export class RemoteKai implements KaiApi {
  readonly #http: Transport

  constructor(options: RemoteKaiOptions = {}) {
    this.#http = new Transport({
      url: parseServerUrl('url', options.url ?? DEFAULT_SERVER_URL),
      token: options.token === undefined ? undefined : parseToken('token', options.token),
      timeoutMs: parseMillis('timeoutMs', options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS),
    })
  }

  /** The server's base URL. */
  get url(): string {
    return this.#http.baseUrl
  }

  /**
   * Sends `GET /ready` with `timeoutMs` to respond. Resolves to null when it returns 200,
   * else to the reason the server is not usable. It never rejects.
   */
  async checkReady(timeoutMs: number): Promise<string | null> {
    try {
      const response = await this.#http.send({ method: 'GET', path: '/ready', accept: [503] }, timeoutMs)
      if (response.status === 200) {
        return null
      }
      const failed = readinessFailures(response.body)
      return `GET ${this.url}/ready returned HTTP ${response.status}${failed === '' ? '' : ` (${failed})`}`
    } catch (err) {
      if (isKaiError(err) && err.status !== undefined) {
        return `GET ${this.url}/ready returned HTTP ${err.status}: ${err.message}`
      }
      if (isKaiError(err) && err.code === 'KAI_TIMEOUT') {
        // The request's own message names the request timeout, but this check has its own limit.
        return (
          `GET ${this.url}/ready did not answer within ${timeoutMs} ms ` +
          '(healthCheckTimeoutMs, MCP_HEALTH_CHECK_TIMEOUT)'
        )
      }
      return err instanceof Error ? err.message : String(err)
    }
  }

  // Inference

  async embedText(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    requireArray('texts', texts)
    const vectors: Float32Array[] = []
    for (const chunk of chunks(texts, MAX_TEXTS_PER_REQUEST)) {
      const body = await this.#http.json<TextEmbeddings>({
        method: 'POST',
        path: '/api/embed/text',
        json: { texts: chunk, model: options.model },
      })
      vectors.push(...body.vectors.map(toFloat32))
    }
    return vectors
  }

  async embedImages(images: ImageInput[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const outputs = await this.#embedImages(images, options.model, 0)
    return outputs.flatMap((output) => output.vectors.map(toFloat32))
  }

  async classifyImages(images: ImageInput[], options: ClassifyOptions = {}): Promise<Prediction[][]> {
    const outputs = await this.#embedImages(images, options.model, options.topK ?? 5)
    return outputs.flatMap((output) => output.labels)
  }

  /** Sends the photos to `POST /api/embed/image`, at most a request's worth at a time. */
  async #embedImages(images: ImageInput[], model: string | undefined, topK: number): Promise<ImageEmbeddings[]> {
    const photos = await readPhotos(images)
    const outputs: ImageEmbeddings[] = []
    for (const chunk of chunks(photos, MAX_IMAGES_PER_REQUEST)) {
      outputs.push(
        await this.#http.json<ImageEmbeddings>({
          method: 'POST',
          path: '/api/embed/image',
          form: photoForm({ model, topK }, chunk),
        }),
      )
    }
    return outputs
  }

  async assessQuality(image: ImageInput, thresholds: Partial<QualityThresholds> = {}): Promise<QualityReport> {
    const photo = await readPhoto(image)
    return this.#http.json<QualityReport>({
      method: 'POST',
      path: '/api/quality',
      form: photoForm(thresholds, [photo]),
    })
  }

  async recognize(image: ImageInput, options: RecognizeOptions = {}): Promise<Recognition> {
    const photo = await readPhoto(image)
    const fields: Record<string, FieldValue> = {}
    for (const name of RECOGNIZE_FIELDS) {
      fields[name] = options[name]
    }
    return this.#http.json<Recognition>({ method: 'POST', path: '/api/recognize', form: photoForm(fields, [photo]) })
  }

  async classifyTexture(image: ImageInput): Promise<TextureClasses> {
    const photo = await readPhoto(image)
    return this.#http.json<TextureClasses>({
      method: 'POST',
      path: '/api/classify-texture',
      form: photoForm({}, [photo]),
    })
  }

  // Catalog

  async searchMaterials(query: SearchQuery): Promise<SearchResults> {
    if (typeof query !== 'object' || query === null) {
      throw kaiError('KAI_INVALID_INPUT', 'invalid search query: expected an object such as {query: "oak"}')
    }
    const { image, tags, ...fields } = query
    if (image === undefined) {
      return this.#http.json<SearchResults>({
        method: 'POST',
        path: '/api/materials/search',
        json: {
          query: fields.query,
          materialType: fields.materialType,
          tags,
          collection: fields.collection,
          topK: fields.topK,
          offset: fields.offset,
        },
      })
    }
    const photo = await readPhoto(image)
    const form = photoForm(
      {
        query: fields.query,
        materialType: fields.materialType,
        tag: tags,
        collection: fields.collection,
        topK: fields.topK,
        offset: fields.offset,
      },
      [photo],
    )
    return this.#http.json<SearchResults>({ method: 'POST', path: '/api/materials/search', form })
  }

  async getMaterial(id: string): Promise<Material | null> {
    try {
      return await this.#http.json<Material>({ method: 'GET', path: `/api/materials/${segment('id', id)}` })
    } catch (err) {
      if (isKaiError(err) && err.code === 'KAI_NOT_FOUND') {
        return null
      }
      throw err
    }
  }

  async listMaterials(filter: MaterialFilter = {}): Promise<Material[]> {
    return this.#http.json<Material[]>({
      method: 'GET',
      path: '/api/materials',
      query: {
        type: filter.materialType,
        collection: filter.collection,
        tag: filter.tag,
        offset: filter.offset,
        limit: filter.limit,
      },
    })
  }

  async createMaterial(record: MaterialInput, images: ImageInput[] = []): Promise<Material> {
    requireRecord(record)
    return this.#http.json<Material>({ method: 'POST', path: '/api/materials', ...(await recordBody(record, images)) })
  }

  async replaceMaterial(
    record: MaterialInput,
    images: ImageInput[] = [],
    options: ReplaceOptions = {},
  ): Promise<Material> {
    requireRecord(record)
    return this.#http.json<Material>({
      method: 'PUT',
      path: `/api/materials/${segment('record.id', record.id)}`,
      query: { expectVersion: options.expectVersion },
      ...(await recordBody(record, images)),
    })
  }

  async deleteMaterial(id: string): Promise<boolean> {
    try {
      await this.#http.send({ method: 'DELETE', path: `/api/materials/${segment('id', id)}` })
      return true
    } catch (err) {
      if (isKaiError(err) && err.code === 'KAI_NOT_FOUND') {
        return false
      }
      throw err
    }
  }

  async materialHistory(id: string): Promise<MaterialVersion[]> {
    return this.#http.json<MaterialVersion[]>({ method: 'GET', path: `/api/materials/${segment('id', id)}/history` })
  }

  async importCatalog(_folder: string): Promise<ImportReport> {
    throw notRemote(
      'importCatalog',
      'import where the server runs with `kai import FOLDER --store STORE`, or use the native module',
    )
  }

  async catalogSummary(): Promise<CatalogSummary> {
    return this.#http.json<CatalogSummary>({ method: 'GET', path: '/api/catalog' })
  }

  async reindex(): Promise<ReindexReport> {
    return this.#http.json<ReindexReport>({ method: 'POST', path: '/api/catalog/reindex' })
  }

  async calibration(): Promise<Calibration> {
    return this.#http.json<Calibration>({ method: 'GET', path: '/api/catalog/calibration' })
  }

  async calibrate(): Promise<Calibration> {
    return this.#http.json<Calibration>({ method: 'POST', path: '/api/catalog/calibrate' })
  }

  // Heads

  async heads(): Promise<HeadManifest[]> {
    return this.#http.json<HeadManifest[]>({ method: 'GET', path: '/api/heads' })
  }

  async trainHead(spec: TrainHeadSpec = {}): Promise<HeadManifest> {
    return this.#http.json<HeadManifest>({
      method: 'POST',
      path: '/api/heads',
      json: { domain: spec.domain, label: spec.label, materialType: spec.materialType },
    })
  }

  // Parameter registry

  async listParameterSets(): Promise<SetSummary[]> {
    return this.#http.json<SetSummary[]>({ method: 'GET', path: '/api/parameters' })
  }

  async getParameters(name: string, options: GetParametersOptions = {}): Promise<ParameterSet> {
    return this.#http.json<ParameterSet>({
      method: 'GET',
      path: setPath(name),
      query: { scope: options.scope, version: options.version },
    })
  }

  async setParameters(
    name: string,
    values: Record<string, ParamValue>,
    options: WriteParametersOptions = {},
  ): Promise<ParameterSet> {
    return this.#http.json<ParameterSet>({
      method: 'PUT',
      path: setPath(name),
      json: { values, ...writeFields(options) },
    })
  }

  async parameterHistory(name: string, options: ScopeOptions = {}): Promise<ParameterSet[]> {
    return this.#http.json<ParameterSet[]>({
      method: 'GET',
      path: `${setPath(name)}/history`,
      query: { scope: options.scope },
    })
  }

  async diffParameters(name: string, from: number, to: number, options: ScopeOptions = {}): Promise<ValueChange[]> {
    return this.#http.json<ValueChange[]>({
      method: 'GET',
      path: `${setPath(name)}/diff`,
      query: { from, to, scope: options.scope },
    })
  }

  async rollbackParameters(name: string, to: number, options: WriteParametersOptions = {}): Promise<ParameterSet> {
    return this.#http.json<ParameterSet>({
      method: 'POST',
      path: `${setPath(name)}/rollback`,
      json: { to, ...writeFields(options) },
    })
  }

  async recordResult(result: ResultInput): Promise<ResultRecord> {
    return this.#http.json<ResultRecord>({ method: 'POST', path: '/api/parameters/results', json: resultBody(result) })
  }

  async recordResults(results: ResultInput[]): Promise<RecordedBatch> {
    requireArray('results', results)
    return this.#http.json<RecordedBatch>({
      method: 'POST',
      path: '/api/parameters/results',
      json: { results: results.map(resultBody) },
    })
  }

  async resolveParameters(options: ResolveOptions = {}): Promise<Resolution> {
    return this.#http.json<Resolution>({
      method: 'GET',
      path: '/api/parameters/resolve',
      query: { set: options.set, materialId: options.materialId, scope: options.scopes },
    })
  }

  async suggestParameters(target: SuggestTarget): Promise<Suggestion> {
    if (typeof target !== 'object' || target === null) {
      throw kaiError('KAI_INVALID_INPUT', 'invalid suggest target: expected {materialId} or {embedding}')
    }
    return this.#http.json<Suggestion>({
      method: 'POST',
      path: '/api/parameters/suggest',
      json: {
        materialId: target.materialId,
        embedding: target.embedding === undefined ? undefined : Array.from(target.embedding),
        metric: target.metric,
        lowerIsBetter: target.higherIsBetter === undefined ? undefined : !target.higherIsBetter,
      },
    })
  }

  async purgeParameters(): Promise<PurgeReport> {
    return this.#http.json<PurgeReport>({ method: 'POST', path: '/api/parameters/purge' })
  }

  async parameterSchema(): Promise<ParameterSchema> {
    return this.#http.json<ParameterSchema>({ method: 'GET', path: '/api/parameters/schema' })
  }

  async applyParameterSchema(schema: ParameterSchema): Promise<SchemaReport> {
    return this.#http.json<SchemaReport>({ method: 'PUT', path: '/api/parameters/schema', json: schema })
  }

  // Models

  async listModels(): Promise<ModelList> {
    return this.#http.json<ModelList>({ method: 'GET', path: '/api/models' })
  }

  async loadModel(name: string): Promise<LoadOutcome> {
    return this.#http.json<LoadOutcome>({ method: 'POST', path: `/api/models/${segment('name', name)}/load` })
  }

  async unloadModel(name: string): Promise<UnloadOutcome> {
    return this.#http.json<UnloadOutcome>({ method: 'POST', path: `/api/models/${segment('name', name)}/unload` })
  }

  async fetchModel(_name: string): Promise<FetchReport> {
    throw notRemote(
      'fetchModel',
      'fetch models where the server runs with `kai models fetch NAME` or `python3 models/fetch.py NAME`',
    )
  }

  // Reconstruction

  async submitReconstruction(images: ImageInput[], options: SubmitReconstructionOptions = {}): Promise<ReconJob> {
    const photos = await readPhotos(images)
    return this.#http.json<ReconJob>({
      method: 'POST',
      path: '/api/recon/jobs',
      form: photoForm({ parameterSet: options.set }, photos, 'images'),
    })
  }

  async getReconstructionJob(id: string): Promise<ReconJob | null> {
    try {
      return await this.#http.json<ReconJob>({ method: 'GET', path: `/api/recon/jobs/${segment('id', id)}` })
    } catch (err) {
      if (isKaiError(err) && err.code === 'KAI_NOT_FOUND') {
        return null
      }
      throw err
    }
  }

  async listReconstructionJobs(): Promise<ReconJob[]> {
    const body = await this.#http.json<{ jobs: ReconJob[] }>({ method: 'GET', path: '/api/recon/jobs' })
    return body.jobs
  }

  /**
   * Requests the job every `intervalMs` until it succeeded or failed and resolves to it,
   * as the package's `waitForReconstruction` does.
   */
  async waitForReconstruction(id: string, options: WaitForReconstructionOptions = {}): Promise<ReconJob> {
    return waitForReconstruction(this, id, options)
  }

  /**
   * Downloads an output file of a succeeded job, such as `cameras.txt` or `points.ply`.
   * Rejects with `KAI_NOT_FOUND` for an unknown job or a name not in its `files`.
   */
  async reconstructionFile(id: string, name: string): Promise<Uint8Array> {
    return this.#http.bytes({
      method: 'GET',
      path: `/api/recon/jobs/${segment('id', id)}/files/${segment('name', name)}`,
    })
  }

  /**
   * Downloads the model files of a succeeded job, one at a time, the full mesh first:
   * `model.glb`, `model.lod1.glb`, ... Each comes with its name and the counts of the
   * job's result. Rejects with `KAI_NOT_FOUND` when no job has the id, and with
   * `KAI_INVALID_INPUT` when the job has not succeeded or has no model (jobs of kai
   * versions that ran structure from motion only).
   */
  async reconstructionModel(id: string): Promise<ModelLevelFile[]> {
    const job = await this.getReconstructionJob(id)
    if (job === null) {
      throw kaiError('KAI_NOT_FOUND', `reconstruction job \`${id}\` not found`)
    }
    const model = job.result?.model
    if (job.status !== 'succeeded' || !model) {
      const state = job.status === 'succeeded' ? 'succeeded without a model' : `is ${job.status}`
      throw kaiError('KAI_INVALID_INPUT', `invalid job: reconstruction job ${id} ${state}; only a succeeded job has model files`)
    }
    const files: ModelLevelFile[] = []
    for (const level of model.levels) {
      files.push({ ...level, bytes: await this.reconstructionFile(id, level.file) })
    }
    return files
  }

  // Health

  async health(): Promise<HealthReport> {
    const response = await this.#http.send({ method: 'GET', path: '/ready', accept: [503] })
    const body = response.body
    if (typeof body !== 'object' || body === null || typeof (body as { status?: unknown }).status !== 'string') {
      throw kaiError('KAI_UNAVAILABLE', `GET ${this.url}/ready returned HTTP ${response.status} without a readiness report`, {
        status: response.status,
      })
    }
    return body as HealthReport
  }

  async close(): Promise<void> {
    // Nothing to release, because Node's fetch closes idle keep-alive connections itself.
  }
}

/** Splits `items` into runs of at most `size`. An empty list is one empty run. */
function chunks<T>(items: readonly T[], size: number): T[][] {
  if (items.length === 0) {
    return [[]]
  }
  const runs: T[][] = []
  for (let start = 0; start < items.length; start += size) {
    runs.push(items.slice(start, start + size))
  }
  return runs
}

function toFloat32(vector: number[]): Float32Array {
  return Float32Array.from(vector)
}

function requireArray(name: string, value: unknown): void {
  if (!Array.isArray(value)) {
    throw kaiError('KAI_INVALID_INPUT', `invalid ${name}: expected an array, got ${value === null ? 'null' : typeof value}`)
  }
}

function requireRecord(record: MaterialInput): void {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw kaiError('KAI_INVALID_INPUT', 'invalid record: expected an object with id, name and materialType')
  }
}

/** Encodes a path segment, rejecting an empty one that would name another route. */
function segment(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw kaiError('KAI_INVALID_INPUT', `invalid ${name}: expected a non-empty string, got ${typeof value === 'string' ? 'an empty string' : typeof value}`)
  }
  return encodeURIComponent(value)
}

function setPath(name: string): string {
  return `/api/parameters/sets/${segment('name', name)}`
}

/** Builds the body of a material write: JSON, or a multipart form when there are photos. */
async function recordBody(record: MaterialInput, images: ImageInput[]): Promise<{ json: unknown } | { form: FormData }> {
  const photos = await readPhotos(images)
  if (photos.length === 0) {
    return { json: record }
  }
  return { form: photoForm({ record: JSON.stringify(record) }, photos) }
}

/** Returns the fields of a registry write that its request body takes. */
function writeFields(options: WriteParametersOptions): Record<string, unknown> {
  return {
    scope: options.scope,
    author: options.author,
    note: options.note,
    expectVersion: options.expectVersion,
  }
}

/** Picks the fields of a result, so a caller's extra fields are not sent and rejected. */
function resultBody(result: ResultInput): Record<string, unknown> {
  if (typeof result !== 'object' || result === null) {
    throw kaiError('KAI_INVALID_INPUT', 'invalid result: expected {set, materialId, metrics}')
  }
  return {
    set: result.set,
    scope: result.scope,
    version: result.version,
    materialId: result.materialId,
    metrics: result.metrics,
  }
}

/** Lists the components that a readiness report names as failed, such as `image-model: failed`. */
function readinessFailures(body: unknown): string {
  const components = (body as { components?: unknown } | undefined)?.components
  if (!Array.isArray(components)) {
    return ''
  }
  return components
    .filter((check: { status?: unknown }) => check.status !== 'ok')
    .map((check: { name?: unknown; status?: unknown; message?: unknown }) =>
      `${String(check.name)}: ${String(check.status)}${typeof check.message === 'string' ? ` (${check.message})` : ''}`)
    .join(', ')
}
