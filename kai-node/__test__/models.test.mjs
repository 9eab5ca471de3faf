// Tests the model methods of `Kai`: listing the model folder, loading and unloading models
// in the cache, and fetching a built-in model that is already present.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'

import { Kai, modelDir, rejectsWithCode, removeFolder, skip, tempFolder } from './helpers.mjs'

let kai
let store
before(async () => {
  if (!skip) {
    store = tempFolder('kai-node-models-')
    kai = await Kai.open({ store, modelDir, modelCacheSize: 2 })
  }
})
after(async () => {
  if (kai) {
    await kai.close()
    removeFolder(store)
  }
})

test('listModels shows the built-in models', { skip }, async () => {
  const list = await kai.listModels()
  assert.equal(list.modelDir, modelDir)
  assert.equal(list.cacheSize, 2)
  const text = list.models.find((m) => m.name === 'all-minilm-l6-v2')
  assert.equal(text.state, 'ready')
  assert.equal(text.builtin, true)
  assert.equal(text.task, 'text-embedding')
  assert.equal(text.dimension, 384)
  assert.equal(text.path, join(modelDir, 'all-minilm-l6-v2'))
  assert.equal(text.loaded, false)
  const image = list.models.find((m) => m.name === 'efficientnet-lite0')
  assert.equal(image.task, 'image-embedding')
  assert.deepEqual(list.loaded, [])
})

test('loadModel and unloadModel', { skip }, async () => {
  const loaded = await kai.loadModel('all-minilm-l6-v2')
  assert.equal(loaded.alreadyLoaded, false)
  assert.equal(loaded.model.name, 'all-minilm-l6-v2')
  assert.equal(loaded.model.task, 'text-embedding')
  assert.equal(loaded.model.dimension, 384)
  assert.deepEqual(loaded.loaded, ['all-minilm-l6-v2'])

  const again = await kai.loadModel('all-minilm-l6-v2')
  assert.equal(again.alreadyLoaded, true)
  const list = await kai.listModels()
  assert.equal(list.models.find((m) => m.name === 'all-minilm-l6-v2').loaded, true)
  assert.deepEqual(
    list.loaded.map((m) => m.name),
    ['all-minilm-l6-v2'],
  )

  assert.deepEqual(await kai.unloadModel('all-minilm-l6-v2'), { name: 'all-minilm-l6-v2', unloaded: true })
  assert.deepEqual(await kai.unloadModel('all-minilm-l6-v2'), { name: 'all-minilm-l6-v2', unloaded: false })
  assert.deepEqual((await kai.listModels()).loaded, [])
})

test('unknown model names are rejected', { skip }, async () => {
  await rejectsWithCode(kai.loadModel('no-such-model'), 'KAI_NOT_FOUND')
  await rejectsWithCode(kai.unloadModel('no-such-model'), 'KAI_NOT_FOUND')
  await rejectsWithCode(kai.loadModel('../all-minilm-l6-v2'), 'KAI_INVALID_INPUT')
  await rejectsWithCode(kai.fetchModel('no-such-model'), 'KAI_NOT_FOUND')
})

test('fetchModel keeps a verified model', { skip }, async () => {
  const report = await kai.fetchModel('all-minilm-l6-v2')
  assert.deepEqual(report, {
    name: 'all-minilm-l6-v2',
    path: join(modelDir, 'all-minilm-l6-v2'),
    downloaded: false,
    written: [],
  })
})
