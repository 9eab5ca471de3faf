// Tests the native module against the real all-MiniLM-L6-v2 weights.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const { TextEmbedder } = require('../index.js')

const modelDir = process.env.MODEL_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kai', 'models')
const haveModel = existsSync(join(modelDir, 'all-minilm-l6-v2', 'model.safetensors'))
const skip = haveModel ? false : 'all-minilm-l6-v2 not fetched; run `python3 models/fetch.py`'

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}

test('embeds texts into unit Float32Arrays', { skip }, async () => {
  const embedder = TextEmbedder.load()
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
  const embedder = TextEmbedder.load()
  const texts = Array.from({ length: 256 }, (_, i) => `reclaimed brick wall number ${i} `.repeat(8))
  let ticks = 0
  const timer = setInterval(() => { ticks += 1 }, 1)
  const vectors = await embedder.embed(texts)
  clearInterval(timer)
  assert.equal(vectors.length, texts.length)
  assert.ok(ticks > 5, `only ${ticks} timer ticks ran during the batch`)
})

test('missing model throws with code KAI_MODEL_NOT_FOUND', () => {
  const empty = mkdtempSync(join(tmpdir(), 'kai-models-'))
  assert.throws(() => TextEmbedder.load('all-minilm-l6-v2', empty), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, 'KAI_MODEL_NOT_FOUND')
    assert.match(err.message, /kai models fetch all-minilm-l6-v2/)
    return true
  })
})

test('unknown model throws with code KAI_NOT_FOUND', () => {
  assert.throws(() => TextEmbedder.load('no-such-model', tmpdir()), { code: 'KAI_NOT_FOUND' })
})
