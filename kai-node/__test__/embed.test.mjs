// Tests `TextEmbedder`, a text model loaded outside any store, against the real
// all-MiniLM-L6-v2 weights.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { TextEmbedder, cosine, modelDir, rejectsWithCode, removeFolder, skip, tempFolder } from './helpers.mjs'

test('embeds texts into unit Float32Arrays', { skip }, async () => {
  const embedder = TextEmbedder.load(undefined, modelDir)
  assert.equal(embedder.name, 'all-minilm-l6-v2')
  assert.equal(embedder.dimension, 384)
  const vectors = await embedder.embed(['oak parquet flooring', 'solid wood floor boards', 'stainless steel sink'])
  assert.equal(vectors.length, 3)
  for (const v of vectors) {
    assert.ok(v instanceof Float32Array)
    assert.equal(v.length, 384)
    assert.ok(Math.abs(cosine(v, v) - 1) < 1e-5)
  }
  assert.ok(cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2)
})

test('event loop keeps running during a long batch', { skip }, async () => {
  const embedder = TextEmbedder.load(undefined, modelDir)
  const texts = Array.from({ length: 256 }, (_, i) => `reclaimed brick wall number ${i} `.repeat(8))
  let ticks = 0
  const timer = setInterval(() => {
    ticks += 1
  }, 1)
  const vectors = await embedder.embed(texts)
  clearInterval(timer)
  assert.equal(vectors.length, texts.length)
  assert.ok(ticks > 5, `only ${ticks} timer ticks ran during the batch`)
})

test('embed rejects texts that are not strings', { skip }, async () => {
  const embedder = TextEmbedder.load(undefined, modelDir)
  await rejectsWithCode(embedder.embed('oak'), 'KAI_INVALID_INPUT', /invalid texts/)
})

test('missing model throws with code KAI_MODEL_NOT_FOUND', () => {
  const empty = tempFolder('kai-models-')
  try {
    assert.throws(
      () => TextEmbedder.load('all-minilm-l6-v2', empty),
      (err) => {
        assert.ok(err instanceof Error)
        assert.equal(err.code, 'KAI_MODEL_NOT_FOUND')
        assert.match(err.message, /kai models fetch all-minilm-l6-v2/)
        return true
      },
    )
  } finally {
    removeFolder(empty)
  }
})

test('unknown model throws with code KAI_NOT_FOUND', () => {
  const empty = tempFolder('kai-models-')
  try {
    assert.throws(() => TextEmbedder.load('no-such-model', empty), { code: 'KAI_NOT_FOUND' })
  } finally {
    removeFolder(empty)
  }
})
