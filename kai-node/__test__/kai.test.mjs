// Tests opening and closing `Kai`, its health check, its error codes and that its work
// runs off the event loop, against the real models.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import {
  Kai,
  modelDir,
  rejectsWithCode,
  removeFolder,
  repo,
  skip,
  tempFolder,
  useSampleStore,
} from './helpers.mjs'

// One store with the sample catalog for the tests that only read it.
const sample = useSampleStore()

test('open creates an empty store', { skip }, async () => {
  const store = tempFolder('kai-node-empty-')
  try {
    const kai = await Kai.open({ store, modelDir })
    assert.ok(kai instanceof Kai)
    const summary = await kai.catalogSummary()
    assert.equal(summary.materials, 0)
    assert.equal(summary.storage, 'sqlite')
    await kai.close()
  } finally {
    removeFolder(store)
  }
})

test('open rejects unknown options', async () => {
  await rejectsWithCode(Kai.open({ stor: '/tmp/x' }), 'KAI_INVALID_INPUT', /unknown field `stor`/)
})

test('open rejects a cache of one model', async () => {
  const store = tempFolder('kai-node-cache-')
  try {
    await rejectsWithCode(Kai.open({ store, modelCacheSize: 1 }), 'KAI_INVALID_INPUT', /modelCacheSize/)
  } finally {
    removeFolder(store)
  }
})

test('open reads MODEL_CACHE_SIZE', async () => {
  const store = tempFolder('kai-node-cache-env-')
  process.env.MODEL_CACHE_SIZE = 'many'
  try {
    await rejectsWithCode(Kai.open({ store }), 'KAI_INVALID_INPUT', /MODEL_CACHE_SIZE/)
    process.env.MODEL_CACHE_SIZE = '1'
    await rejectsWithCode(Kai.open({ store }), 'KAI_INVALID_INPUT', /MODEL_CACHE_SIZE/)
  } finally {
    delete process.env.MODEL_CACHE_SIZE
    removeFolder(store)
  }
})

test('open rejects a malformed database URL', async () => {
  const store = tempFolder('kai-node-db-')
  try {
    await rejectsWithCode(Kai.open({ store, databaseUrl: 'mysql://x' }), 'KAI_INVALID_INPUT', /databaseUrl/)
  } finally {
    removeFolder(store)
  }
})

test('missing model folder gives KAI_MODEL_NOT_FOUND', async () => {
  const store = tempFolder('kai-node-nomodels-')
  const models = tempFolder('kai-node-models-')
  try {
    const kai = await Kai.open({ store, modelDir: models })
    await rejectsWithCode(kai.embedText(['oak']), 'KAI_MODEL_NOT_FOUND', /kai models fetch all-minilm-l6-v2/)
    const health = await kai.health()
    assert.equal(health.status, 'not ready')
    const text = health.components.find((c) => c.name === 'text-model')
    assert.equal(text.status, 'failed')
    const catalog = health.components.find((c) => c.name === 'catalog')
    assert.equal(catalog.status, 'ok')
    await kai.close()
  } finally {
    removeFolder(store)
    removeFolder(models)
  }
})

test('health reports every component ready', { skip }, async () => {
  const { kai } = sample
  const health = await kai.health()
  assert.equal(health.status, 'ready')
  assert.equal(typeof health.version, 'string')
  assert.deepEqual(
    health.components.map((c) => c.name),
    ['text-model', 'image-model', 'catalog', 'registry'],
  )
  for (const component of health.components) {
    assert.equal(component.status, 'ok', `${component.name}: ${component.message}`)
    assert.equal(typeof component.durationMs, 'number')
  }
  assert.equal(health.components[2].message, '44 materials')
})

test('closed instance rejects calls', { skip }, async () => {
  const store = tempFolder('kai-node-closed-')
  try {
    const kai = await Kai.open({ store, modelDir })
    await kai.close()
    await rejectsWithCode(kai.catalogSummary(), 'KAI_INVALID_INPUT', /closed/)
    await rejectsWithCode(kai.embedText(['oak']), 'KAI_INVALID_INPUT', /closed/)
    // A second close is harmless.
    await kai.close()
  } finally {
    removeFolder(store)
  }
})

test('bad arguments reject instead of throwing', { skip }, async () => {
  const { kai } = sample
  const cases = [
    [() => kai.embedText('oak'), /invalid texts/],
    [() => kai.embedText([1]), /invalid texts/],
    [() => kai.embedImages([{}]), /invalid images\[0\]/],
    [() => kai.getMaterial(5), /invalid id/],
    [() => kai.listMaterials({ limit: -1 }), /invalid filter/],
    [() => kai.listMaterials({ limit: 0 }), /filter\.limit/],
    [() => kai.recognize(join(repo, 'README.md'), { topk: 3 }), /unknown field `topk`/],
    [() => kai.diffParameters('standard', 1.5, 2), /invalid from/],
    [() => kai.setParameters('standard', { 'recognition.top_k': () => 1 }), /invalid values/],
  ]
  for (const [call, message] of cases) {
    let promise
    assert.doesNotThrow(() => {
      promise = call()
    })
    await rejectsWithCode(promise, 'KAI_INVALID_INPUT', message)
  }
})

test('corrupt image gives KAI_INVALID_INPUT', { skip }, async () => {
  const { kai } = sample
  const garbage = Buffer.from('this is not an image')
  await rejectsWithCode(kai.recognize(garbage), 'KAI_INVALID_INPUT', /invalid image/)
  await rejectsWithCode(kai.assessQuality(new Uint8Array(0)), 'KAI_INVALID_INPUT')
  const photo = readFileSync(join(repo, 'examples', 'queries', 'heldout-grey-brick-wall.jpg'))
  await rejectsWithCode(kai.embedImages([photo, garbage]), 'KAI_INVALID_INPUT', /images\[1\]/)
})

test('event loop runs during a long batch', { skip }, async () => {
  const { kai } = sample
  // Loaded first, so the batch below measures only embedding.
  await kai.loadModel('all-minilm-l6-v2')
  const texts = Array.from({ length: 500 }, (_, i) => `reclaimed brick wall number ${i} `.repeat(8))
  let ticks = 0
  const timer = setInterval(() => {
    ticks += 1
  }, 1)
  const started = Date.now()
  const vectors = await kai.embedText(texts)
  const elapsed = Date.now() - started
  clearInterval(timer)
  assert.equal(vectors.length, texts.length)
  // A blocked loop runs the timer at most once after the call returns.
  assert.ok(ticks > 10, `only ${ticks} timer ticks ran during ${elapsed} ms of embedding`)
})

test('loader exports every native class', () => {
  const require = createRequire(import.meta.url)
  const loader = Object.keys(require('../index.js')).sort()
  const binding = Object.keys(require('../kai.node')).sort()
  assert.deepEqual(loader, binding)
})
