// Shared set-up of the native module's tests: the model folder, a temporary store with the
// sample catalog imported, and a check of kai error codes.
import { after, before } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export { cosine } from './vectors.mjs'

// The tests use a SQLite store in a temporary folder and the default settings, whatever
// the environment configures. Node changes the process environment itself, so the native
// module reads the variables as deleted.
for (const name of [
  'KAI_DATABASE_URL',
  'KAI_DATA_DIR',
  'PARAM_STORAGE_TYPE',
  'PARAM_DB_CONNECTION',
  'DEFAULT_PARAMETER_SET',
  'SIMILARITY_THRESHOLD',
  'PARAM_HISTORY_RETENTION_DAYS',
  'MODEL_CACHE_SIZE',
  'KAI_MAX_IMAGE_BYTES',
  'KAI_MAX_IMAGE_PIXELS',
]) {
  delete process.env[name]
}

const require = createRequire(import.meta.url)
const native = require('../index.js')

export const { Kai, TextEmbedder } = native

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const sampleCatalog = join(repo, 'examples', 'catalog')

export const modelDir =
  process.env.MODEL_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kai', 'models')
// The text model ships safetensors, the image model a PyTorch checkpoint.
const haveModels =
  existsSync(join(modelDir, 'all-minilm-l6-v2', 'model.safetensors')) &&
  existsSync(join(modelDir, 'efficientnet-lite0')) &&
  readdirSync(join(modelDir, 'efficientnet-lite0')).some((file) => /\.(pth|safetensors)$/.test(file))
/** The `skip` option of tests that need the model weights. */
export const skip = haveModels ? false : `models missing in ${modelDir}; run \`python3 models/fetch.py\``

/** Returns the path of a query photo of examples/queries. */
export function queryPhoto(name) {
  return join(repo, 'examples', 'queries', name)
}

/** Returns a new empty folder that `removeFolder` deletes. */
export function tempFolder(prefix) {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function removeFolder(folder) {
  rmSync(folder, { recursive: true, force: true })
}

/**
 * Opens a `Kai` on a new store in a temporary folder and imports the sample catalog into
 * it. Resolves to the instance, the store folder and the import report.
 */
export async function openSampleStore() {
  const store = tempFolder('kai-node-store-')
  const kai = await Kai.open({ store, modelDir })
  const report = await kai.importCatalog(sampleCatalog)
  return { kai, store, report }
}

/**
 * Opens one store with the sample catalog before the file's tests run, and closes and
 * removes it after them. Returns the object that `openSampleStore` resolves to, filled
 * in by the `before` hook, and empty when the models are missing.
 */
export function useSampleStore() {
  const sample = {}
  before(async () => {
    if (!skip) {
      Object.assign(sample, await openSampleStore())
    }
  })
  after(async () => {
    if (sample.kai) {
      await sample.kai.close()
      removeFolder(sample.store)
    }
  })
  return sample
}

/** Asserts that `promise` rejects with an `Error` whose `code` is `code`. */
export async function rejectsWithCode(promise, code, message) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${err}`)
    assert.equal(err.code, code, err.message)
    if (message) {
      assert.match(err.message, message)
    }
    return true
  })
}

/** Returns the largest absolute difference between two vectors of one length. */
export function maxDifference(a, b) {
  assert.equal(a.length, b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]))
  }
  return max
}
