// Tests that RemoteKai and the native module return the same shapes and values for the
// same store, which the native module opens while kai-server serves it.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'

import { nativeBinding, nativeSkip, photo, remote, serverSkip, serverStore } from './helpers.mjs'

const skip =
  serverSkip || nativeSkip || (serverStore ? false : 'KAI_TEST_STORE is not set; run scripts/test_node_client.sh')

const PLANKS = photo('altered-red-brown-plank-floor.jpg')
const BRICK = photo('heldout-grey-brick-wall.jpg')

/**
 * Asserts that `actual` and `expected` have the same shape: the same keys, array lengths
 * and types, with numbers within `tolerance`. Keys listed in `ignored` are not compared.
 */
function assertSameShape(actual, expected, tolerance, path = 'result', ignored = []) {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path} is a number`)
    assert.ok(Math.abs(actual - expected) <= tolerance, `${path}: ${actual} vs ${expected}`)
    return
  }
  if (expected instanceof Float32Array || actual instanceof Float32Array) {
    assert.ok(actual instanceof Float32Array, `${path} is a Float32Array from the server`)
    assert.ok(expected instanceof Float32Array, `${path} is a Float32Array from the native module`)
    assert.equal(actual.length, expected.length, `${path}.length`)
    for (let i = 0; i < expected.length; i++) {
      assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${path}[${i}]: ${actual[i]} vs ${expected[i]}`)
    }
    return
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path} is an array`)
    assert.equal(actual.length, expected.length, `${path}.length`)
    expected.forEach((item, i) => assertSameShape(actual[i], item, tolerance, `${path}[${i}]`, ignored))
    return
  }
  if (typeof expected === 'object' && expected !== null) {
    assert.equal(typeof actual, 'object', `${path} is an object`)
    assert.notEqual(actual, null, `${path} is not null`)
    const keys = (object) => Object.keys(object).filter((key) => !ignored.includes(key)).sort()
    assert.deepEqual(keys(actual), keys(expected), `keys of ${path}`)
    for (const key of keys(expected)) {
      assertSameShape(actual[key], expected[key], tolerance, `${path}.${key}`, ignored)
    }
    return
  }
  assert.equal(actual, expected, path)
}

/** Resolves to the error code that `promise` rejects with. */
async function codeOf(promise) {
  try {
    await promise
  } catch (err) {
    return err.code
  }
  assert.fail('expected a rejection')
}

describe('remote and native parity', { skip }, () => {
  let local
  let server

  before(async () => {
    local = await nativeBinding.Kai.open({ store: serverStore, device: 'cpu' })
    server = remote()
  })
  after(async () => {
    await local?.close()
  })

  test('embedText within 1e-5', async () => {
    const texts = ['oak parquet flooring', 'brushed stainless steel', 'grey fieldstone wall']
    assertSameShape(await server.embedText(texts), await local.embedText(texts), 1e-5)
  })

  test('embedImages and classifyImages', async () => {
    const images = [PLANKS, readFileSync(BRICK)]
    assertSameShape(await server.embedImages(images), await local.embedImages(images), 1e-5)
    const labels = [await server.classifyImages(images, { topK: 3 }), await local.classifyImages(images, { topK: 3 })]
    assertSameShape(labels[0], labels[1], 1e-5)
  })

  test('recognize', async () => {
    const options = { topK: 3, hint: 'floorboards' }
    // Wall times differ between two runs.
    const ignored = ['processingTimeMs']
    assertSameShape(await server.recognize(PLANKS, options), await local.recognize(PLANKS, options), 1e-4, 'result', ignored)
    assertSameShape(await server.classifyTexture(BRICK), await local.classifyTexture(BRICK), 1e-4, 'result', ignored)
  })

  test('assessQuality', async () => {
    const thresholds = { minShortSide: 500 }
    assertSameShape(await server.assessQuality(PLANKS, thresholds), await local.assessQuality(PLANKS, thresholds), 1e-4)
  })

  test('searchMaterials', async () => {
    for (const query of [
      { query: 'weathered grey stone', topK: 5 },
      { query: 'planks', materialType: 'wood', tags: ['brown'], topK: 3 },
      { image: PLANKS, topK: 4, offset: 1 },
    ]) {
      assertSameShape(await server.searchMaterials(query), await local.searchMaterials(query), 1e-5)
    }
  })

  test('catalog reads', async () => {
    assertSameShape(await server.catalogSummary(), await local.catalogSummary(), 0)
    assertSameShape(await server.getMaterial('red-brown-plank-floor'), await local.getMaterial('red-brown-plank-floor'), 0)
    assert.equal(await local.getMaterial('no-such-material'), null)
    assertSameShape(await server.listMaterials({ materialType: 'wood', limit: 3 }), await local.listMaterials({ materialType: 'wood', limit: 3 }), 0)
    assertSameShape(await server.materialHistory('red-brown-plank-floor'), await local.materialHistory('red-brown-plank-floor'), 0)
    assertSameShape(await server.calibration(), await local.calibration(), 1e-6)
    assertSameShape(await server.heads(), await local.heads(), 1e-6)
  })

  test('registry reads', async () => {
    assertSameShape(await server.listParameterSets(), await local.listParameterSets(), 0)
    assertSameShape(await server.getParameters('standard'), await local.getParameters('standard'), 0)
    assertSameShape(await server.parameterSchema(), await local.parameterSchema(), 0)
    const options = { set: 'standard', materialId: 'red-brown-plank-floor' }
    assertSameShape(await server.resolveParameters(options), await local.resolveParameters(options), 0)
    const target = { materialId: 'red-brown-plank-floor' }
    assertSameShape(await server.suggestParameters(target), await local.suggestParameters(target), 1e-6)
  })

  test('error codes', async () => {
    for (const [name, call] of [
      ['materialHistory', (kai) => kai.materialHistory('no-such-material')],
      ['getParameters', (kai) => kai.getParameters('no-such-set')],
      ['recognize missing file', (kai) => kai.recognize('/nonexistent/photo.jpg')],
      ['recognize corrupt bytes', (kai) => kai.recognize(Buffer.from('not a photo'))],
      ['searchMaterials topK 0', (kai) => kai.searchMaterials({ query: 'oak', topK: 0 })],
      ['createMaterial existing', (kai) => kai.createMaterial({ id: 'red-brown-plank-floor', name: 'x', materialType: 'wood' })],
    ]) {
      assert.equal(await codeOf(call(server)), await codeOf(call(local)), name)
    }
  })
})
