// Tests the inference methods of `Kai` (embeddings, ImageNet classes, quality,
// recognition, texture classes) against the real models and the sample catalog.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import {
  TextEmbedder,
  cosine,
  maxDifference,
  modelDir,
  queryPhoto,
  rejectsWithCode,
  repo,
  skip,
  useSampleStore,
} from './helpers.mjs'

const sample = useSampleStore()

/** Asserts that `vector` is a Float32Array of `dimension` values with length 1. */
function assertUnitVector(vector, dimension) {
  assert.ok(vector instanceof Float32Array, `expected a Float32Array, got ${vector?.constructor?.name}`)
  assert.equal(vector.length, dimension)
  assert.ok(Math.abs(cosine(vector, vector) - 1) < 1e-5)
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0))
  assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`)
}

test('embedText matches sentence-transformers', { skip }, async () => {
  // The vectors that kai-core's parity test checks, computed by sentence-transformers.
  const reference = JSON.parse(
    readFileSync(join(repo, 'kai-core', 'tests', 'fixtures', 'text_reference.json'), 'utf8'),
  )
  const texts = reference.sentences.map((s) => s.text)
  const vectors = await sample.kai.embedText(texts)
  assert.equal(vectors.length, texts.length)
  reference.sentences.forEach((sentence, i) => {
    assertUnitVector(vectors[i], 384)
    const difference = maxDifference(vectors[i], sentence.vector)
    assert.ok(difference <= 1e-5, `${JSON.stringify(sentence.text.slice(0, 40))}: max difference ${difference}`)
  })
})

test('embedText equals TextEmbedder', { skip }, async () => {
  const texts = ['oak parquet flooring', 'solid wood floor boards', 'stainless steel sink']
  const [fromKai, fromEmbedder] = await Promise.all([
    sample.kai.embedText(texts, { model: 'all-minilm-l6-v2' }),
    TextEmbedder.load('all-minilm-l6-v2', modelDir).embed(texts),
  ])
  for (let i = 0; i < texts.length; i++) {
    assert.ok(maxDifference(fromKai[i], fromEmbedder[i]) <= 1e-6)
  }
  assert.ok(cosine(fromKai[0], fromKai[1]) > cosine(fromKai[0], fromKai[2]) + 0.2)
})

test('embedText of no texts', { skip }, async () => {
  assert.deepEqual(await sample.kai.embedText([]), [])
})

test('embedText rejects an unknown model', { skip }, async () => {
  await rejectsWithCode(sample.kai.embedText(['oak'], { model: 'no-such-model' }), 'KAI_NOT_FOUND')
})

test('embedImages takes paths and buffers', { skip }, async () => {
  const path = queryPhoto('heldout-grey-brick-wall.jpg')
  const bytes = readFileSync(path)
  const vectors = await sample.kai.embedImages([path, bytes, new Uint8Array(bytes)])
  assert.equal(vectors.length, 3)
  for (const vector of vectors) {
    assertUnitVector(vector, 1280)
  }
  assert.ok(maxDifference(vectors[0], vectors[1]) <= 1e-6)
  assert.ok(maxDifference(vectors[0], vectors[2]) <= 1e-6)
})

test('embedImages rejects a missing file', { skip }, async () => {
  await rejectsWithCode(sample.kai.embedImages([join(repo, 'no-such-photo.jpg')]), 'KAI_STORAGE')
})

test('classifyImages lists ImageNet classes', { skip }, async () => {
  const photos = [queryPhoto('heldout-grey-brick-wall.jpg'), queryPhoto('heldout-weathered-plank.jpg')]
  const three = await sample.kai.classifyImages(photos, { topK: 3 })
  assert.equal(three.length, 2)
  for (const labels of three) {
    assert.equal(labels.length, 3)
    for (const { label, score } of labels) {
      assert.equal(typeof label, 'string')
      assert.ok(score >= 0)
      assert.ok(score <= 1)
    }
    assert.ok(labels[0].score >= labels[1].score)
    assert.ok(labels[1].score >= labels[2].score)
  }
  const defaults = await sample.kai.classifyImages(photos)
  assert.equal(defaults[0].length, 5)
  assert.deepEqual(defaults[0].slice(0, 3), three[0])
})

test('assessQuality measures a photo', { skip }, async () => {
  const report = await sample.kai.assessQuality(queryPhoto('heldout-grey-brick-wall.jpg'))
  assert.equal(report.width, 256)
  assert.equal(report.height, 256)
  assert.equal(report.passed, true)
  assert.deepEqual(report.reasons, [])
  assert.ok(report.score >= 0.5)
  assert.ok(report.sharpness > 0)
})

test('assessQuality applies thresholds', { skip }, async () => {
  const photo = readFileSync(queryPhoto('heldout-grey-brick-wall.jpg'))
  const report = await sample.kai.assessQuality(photo, { minShortSide: 1000 })
  assert.equal(report.passed, false)
  assert.deepEqual(report.reasons, ['low_resolution'])
  await rejectsWithCode(sample.kai.assessQuality(photo, { minSharpnes: 3 }), 'KAI_INVALID_INPUT', /minSharpnes/)
  await rejectsWithCode(sample.kai.assessQuality(photo, { minContrast: -1 }), 'KAI_INVALID_INPUT')
})

test('recognize finds the source material', { skip }, async () => {
  // An edited copy of a catalog photo, so its material is known.
  const recognition = await sample.kai.recognize(queryPhoto('altered-red-brown-plank-floor.jpg'))
  assert.equal(recognition.materials.length, 5)
  const ids = recognition.materials.map((m) => m.id)
  assert.ok(ids.includes('red-brown-plank-floor'), `not among ${ids}`)
  assert.equal(recognition.classes[0].materialType, 'wood')
  assert.equal(recognition.unknown, false)
  assert.equal(typeof recognition.processingTimeMs, 'number')
  assert.equal(typeof recognition.quality.passed, 'boolean')
  assert.equal(recognition.classifiedBy, 'neighbours')
})

test('recognize applies options', { skip }, async () => {
  const photo = readFileSync(queryPhoto('altered-olive-stained-planks.jpg'))
  const recognition = await sample.kai.recognize(photo, { topK: 2, hint: 'wooden planks', hintWeight: 0.5 })
  assert.equal(recognition.materials.length, 2)
  assert.equal(recognition.materials[0].materialType, 'wood')
  await rejectsWithCode(sample.kai.recognize(photo, { topK: 0 }), 'KAI_INVALID_INPUT')
  await rejectsWithCode(sample.kai.recognize(photo, { minResolution: 4000 }), 'KAI_INVALID_INPUT')
})

test('classifyTexture returns five classes', { skip }, async () => {
  const classes = await sample.kai.classifyTexture(queryPhoto('altered-perforated-steel-sheet.jpg'))
  assert.deepEqual(Object.keys(classes).sort(), ['classes', 'processingTimeMs', 'unknown'])
  assert.equal(classes.classes.length, 5)
  assert.equal(classes.classes[0].materialType, 'metal')
  assert.equal(classes.unknown, false)
})
