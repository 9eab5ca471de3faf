// Tests every RemoteKai method against a real kai-server that scripts/test_node_client.sh
// starts on a copy of examples/catalog.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'

import { cosine, photo, remote, serverSkip } from './helpers.mjs'

const skip = serverSkip
const kai = skip ? undefined : remote()

const PLANKS = photo('altered-red-brown-plank-floor.jpg')
const BRICK = photo('heldout-grey-brick-wall.jpg')

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Asserts that `vector` is a Float32Array of `dimension` with unit length. */
function assertUnitVector(vector, dimension) {
  assert.ok(vector instanceof Float32Array, `expected a Float32Array, got ${vector?.constructor?.name}`)
  assert.equal(vector.length, dimension)
  assert.ok(Math.abs(cosine(vector, vector) - 1) < 1e-5)
  let norm = 0
  for (const x of vector) {
    norm += x * x
  }
  assert.ok(Math.abs(Math.sqrt(norm) - 1) < 1e-3, `norm ${Math.sqrt(norm)}`)
}

describe('inference', { skip }, () => {
  test('embedText returns Float32Arrays', async () => {
    const vectors = await kai.embedText(['oak parquet flooring', 'solid wood floor boards', 'stainless steel sink'])
    assert.equal(vectors.length, 3)
    for (const vector of vectors) {
      assertUnitVector(vector, 384)
    }
    assert.ok(cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2)
  })

  test('embedText names the model', async () => {
    const [named] = await kai.embedText(['oak'], { model: 'all-minilm-l6-v2' })
    const [plain] = await kai.embedText(['oak'])
    assert.deepEqual(named, plain)
  })

  test('embedText splits large batches', async () => {
    const texts = Array.from({ length: 300 }, (_, i) => `plank ${i}`)
    const vectors = await kai.embedText(texts)
    assert.equal(vectors.length, 300)
    const [last] = await kai.embedText([texts[299]])
    assert.ok(cosine(vectors[299], last) > 0.99999)
  })

  test('embedImages takes paths and Buffers', async () => {
    const vectors = await kai.embedImages([PLANKS, readFileSync(PLANKS), new Uint8Array(readFileSync(BRICK))])
    assert.equal(vectors.length, 3)
    for (const vector of vectors) {
      assertUnitVector(vector, 1280)
    }
    assert.ok(cosine(vectors[0], vectors[1]) > 0.99999, 'the path and its bytes embed alike')
    assert.ok(cosine(vectors[0], vectors[2]) < 0.99)
  })

  test('classifyImages lists ImageNet labels', async () => {
    const labels = await kai.classifyImages([PLANKS, BRICK], { topK: 3 })
    assert.equal(labels.length, 2)
    for (const predictions of labels) {
      assert.equal(predictions.length, 3)
      for (const prediction of predictions) {
        assert.equal(typeof prediction.label, 'string')
        assert.ok(prediction.score >= 0, `score ${prediction.score}`)
        assert.ok(prediction.score <= 1, `score ${prediction.score}`)
      }
      assert.ok(predictions[0].score >= predictions[1].score)
    }
    const defaults = await kai.classifyImages([PLANKS])
    assert.equal(defaults[0].length, 5)
  })

  test('assessQuality reports and applies thresholds', async () => {
    const report = await kai.assessQuality(PLANKS)
    for (const field of ['width', 'height', 'sharpness', 'contrast', 'noise', 'score', 'meanBrightness']) {
      assert.equal(typeof report[field], 'number', field)
    }
    assert.ok(Array.isArray(report.reasons))
    assert.equal(typeof report.passed, 'boolean')

    const strict = await kai.assessQuality(readFileSync(PLANKS), { minShortSide: 100000 })
    assert.equal(strict.passed, false)
    assert.ok(strict.reasons.includes('low_resolution'), strict.reasons.join())
  })

  test('recognize finds the source material', async () => {
    const result = await kai.recognize(PLANKS, { topK: 3 })
    assert.equal(result.materials.length, 3)
    assert.equal(result.materials[0].id, 'red-brown-plank-floor')
    assert.equal(result.classes[0].materialType, 'wood')
    assert.equal(result.unknown, false)
    assert.equal(typeof result.classifiedBy, 'string')
    assert.equal(typeof result.processingTimeMs, 'number')
    assert.equal(typeof result.quality.passed, 'boolean')
  })

  test('recognize takes a hint and thresholds', async () => {
    const result = await kai.recognize(readFileSync(PLANKS), {
      topK: 1,
      hint: 'reddish floorboards',
      hintWeight: 0.5,
      minResolution: 32,
      unknownThreshold: 0.99,
    })
    assert.equal(result.materials.length, 1)
    assert.equal(result.unknown, true, 'no catalog image is 0.99 similar')
  })

  test('classifyTexture returns five classes', async () => {
    const result = await kai.classifyTexture(PLANKS)
    assert.equal(result.classes.length, 5)
    assert.equal(result.classes[0].materialType, 'wood')
    const total = result.classes.reduce((sum, c) => sum + c.confidence, 0)
    assert.ok(total <= 1.0001, `confidences sum to ${total}`)
    assert.equal(result.unknown, false)
    assert.equal(typeof result.processingTimeMs, 'number')
  })
})

describe('catalog', { skip }, () => {
  test('searchMaterials by text with filters and paging', async () => {
    const { results } = await kai.searchMaterials({ query: 'weathered planks', topK: 4 })
    assert.equal(results.length, 4)
    for (const hit of results) {
      assert.deepEqual(Object.keys(hit).sort(), ['id', 'materialType', 'name', 'score'])
    }

    const stone = await kai.searchMaterials({ query: 'grey', materialType: 'stone', topK: 50 })
    assert.ok(stone.results.length > 0)
    assert.ok(stone.results.every((hit) => hit.materialType === 'stone'))

    const tagged = await kai.searchMaterials({ query: 'floor', tags: ['red', 'planks'] })
    assert.deepEqual(
      tagged.results.map((hit) => hit.id),
      ['red-brown-plank-floor'],
    )

    const page = await kai.searchMaterials({ query: 'weathered planks', topK: 2, offset: 2 })
    assert.deepEqual(
      page.results.map((hit) => hit.id),
      results.slice(2).map((hit) => hit.id),
    )
  })

  test('searchMaterials by photo', async () => {
    const byPath = await kai.searchMaterials({ image: PLANKS, topK: 3 })
    assert.equal(byPath.results[0].id, 'red-brown-plank-floor')
    const byBytes = await kai.searchMaterials({
      image: readFileSync(PLANKS),
      query: 'planks',
      tags: ['brown'],
      materialType: 'wood',
      collection: 'ufoai-classic',
      topK: 2,
    })
    assert.equal(byBytes.results[0].id, 'red-brown-plank-floor')
    assert.ok(byBytes.results.every((hit) => hit.materialType === 'wood'))
  })

  test('getMaterial returns the record or null', async () => {
    const material = await kai.getMaterial('red-brown-plank-floor')
    assert.equal(material.name, 'Red-brown plank flooring')
    assert.equal(material.materialType, 'wood')
    assert.equal(material.collectionId, 'ufoai-classic')
    assert.equal(material.version, 1)
    assert.equal(material.images.length, 1)
    assert.match(material.images[0].sha256, /^[0-9a-f]{64}$/)
    assert.equal(await kai.getMaterial('no-such-material'), null)
  })

  test('listMaterials pages and filters', async () => {
    const first = await kai.listMaterials({ limit: 5 })
    assert.equal(first.length, 5)
    const ids = first.map((m) => m.id)
    assert.deepEqual(ids, [...ids].sort())
    const next = await kai.listMaterials({ limit: 5, offset: 5 })
    assert.ok(next[0].id > ids[4])

    const wood = await kai.listMaterials({ materialType: 'wood' })
    assert.equal(wood.length, 6)
    assert.ok(wood.every((m) => m.materialType === 'wood'))
    const red = await kai.listMaterials({ tag: 'red' })
    assert.ok(red.every((m) => m.tags.includes('red')))
    const classic = await kai.listMaterials({ collection: 'ufoai-classic' })
    assert.ok(classic.length > 0 && classic.every((m) => m.collectionId === 'ufoai-classic'))
    const all = await kai.listMaterials()
    assert.equal(all.length, 44)
  })

  test('materials are created, replaced and deleted', async (t) => {
    const id = 'node-client-oak'
    // A failed check leaves no material behind for the later tests to count.
    t.after(() => kai.deleteMaterial(id))
    const created = await kai.createMaterial(
      {
        id,
        name: 'Node client oak',
        materialType: 'Wood',
        tags: ['Oak', 'test'],
        description: 'Created by the Node client tests.',
        properties: { finish: 'oiled' },
      },
      [PLANKS],
    )
    assert.equal(created.id, id)
    assert.equal(created.version, 1)
    assert.equal(created.materialType, 'wood')
    assert.deepEqual(created.tags, ['oak', 'test'])
    assert.equal(created.images.length, 1)
    assert.equal(created.images[0].sha256, sha256(readFileSync(PLANKS)))

    const replaced = await kai.replaceMaterial(
      { id, name: 'Node client oiled oak', materialType: 'wood' },
      [readFileSync(BRICK)],
      { expectVersion: 1 },
    )
    assert.equal(replaced.version, 2)
    assert.equal(replaced.name, 'Node client oiled oak')
    assert.equal(replaced.images.length, 1)
    assert.equal(replaced.images[0].sha256, sha256(readFileSync(BRICK)))

    const keptPhotos = await kai.replaceMaterial({ id, name: 'Node client oak, kept photos', materialType: 'wood' })
    assert.equal(keptPhotos.version, 3)
    assert.deepEqual(keptPhotos.images, replaced.images)

    const history = await kai.materialHistory(id)
    assert.deepEqual(
      history.map((entry) => [entry.version, entry.change]),
      [
        [1, 'created'],
        [2, 'updated'],
        [3, 'updated'],
      ],
    )
    assert.equal(history[1].record.name, 'Node client oiled oak')

    assert.equal(await kai.deleteMaterial(id), true)
    assert.equal(await kai.deleteMaterial(id), false)
    assert.equal(await kai.getMaterial(id), null)
    const after = await kai.materialHistory(id)
    assert.equal(after.at(-1).change, 'deleted')
  })

  test('createMaterial without photos sends JSON', async (t) => {
    const id = 'node-client-plain'
    t.after(() => kai.deleteMaterial(id))
    const created = await kai.createMaterial({ id, name: 'Plain', materialType: 'plaster' })
    assert.equal(created.images.length, 0)
    assert.equal(await kai.deleteMaterial(id), true)
  })

  test('catalogSummary counts the catalog', async () => {
    const summary = await kai.catalogSummary()
    assert.equal(summary.materials, 44)
    assert.equal(summary.images, 44)
    assert.ok(summary.materialTypes.includes('wood'))
    assert.equal(summary.textModel, 'all-minilm-l6-v2')
    assert.equal(summary.imageModel, 'efficientnet-lite0')
    assert.equal(summary.storage, 'sqlite')
  })

  test('reindex re-embeds every material', async () => {
    assert.deepEqual(await kai.reindex(), { reindexed: 44 })
  })

  test('calibration and calibrate', async () => {
    const stored = await kai.calibration()
    assert.ok(stored.temperature > 0)
    const fitted = await kai.calibrate()
    assert.ok(fitted.temperature > 0)
    assert.ok(fitted.samples > 0)
    assert.equal(typeof fitted.accuracy, 'number')
    assert.deepEqual(await kai.calibration(), fitted)
  })
})

describe('heads', { skip }, () => {
  test('trainHead trains a property head', async () => {
    const manifest = await kai.trainHead({ domain: 'node-client-finish', label: 'property:finish' })
    assert.equal(manifest.spec.domain, 'node-client-finish')
    assert.equal(manifest.spec.label, 'property:finish')
    assert.ok(manifest.classes.includes('weathered'))
    assert.equal(manifest.dimension, 1280)
    assert.ok(manifest.trainingImages > 0)
    const heads = await kai.heads()
    assert.ok(heads.some((head) => head.spec.domain === 'node-client-finish'))
  })
})

describe('parameter registry', { skip }, () => {
  const name = 'node-client'

  test('sets are written, read, diffed and rolled back', async () => {
    const sets = await kai.listParameterSets()
    assert.ok(sets.some((set) => set.name === 'standard'))
    const standard = await kai.getParameters('standard')
    assert.equal(typeof standard.values['recognition.top_k'], 'number')

    const first = await kai.setParameters(name, { 'recognition.top_k': 7 }, { author: 'node-tests', note: 'first' })
    assert.equal(first.version, 1)
    assert.equal(first.author, 'node-tests')
    assert.equal(first.values['recognition.top_k'], 7)
    const second = await kai.setParameters(name, { 'recognition.top_k': 9 }, { expectVersion: 1 })
    assert.equal(second.version, 2)
    assert.equal(second.author, 'unknown')

    const history = await kai.parameterHistory(name)
    assert.deepEqual(
      history.map((set) => set.version),
      [1, 2],
    )
    assert.deepEqual(await kai.diffParameters(name, 1, 2), [{ parameter: 'recognition.top_k', from: 7, to: 9 }])

    const rolled = await kai.rollbackParameters(name, 1, { author: 'node-tests', expectVersion: 2 })
    assert.equal(rolled.version, 3)
    assert.equal(rolled.values['recognition.top_k'], 7)
    assert.equal((await kai.getParameters(name, { version: 2 })).values['recognition.top_k'], 9)
    assert.equal((await kai.getParameters(name)).version, 3)
  })

  test('scoped sets resolve for a material', async () => {
    const scoped = await kai.setParameters(name, { 'recognition.top_k': 4 }, { scope: 'wood' })
    assert.equal(scoped.scope, 'wood')
    assert.equal((await kai.getParameters(name, { scope: 'wood' })).values['recognition.top_k'], 4)
    assert.equal((await kai.parameterHistory(name, { scope: 'wood' })).length, 1)
    assert.deepEqual(await kai.diffParameters(name, 1, 1, { scope: 'wood' }), [])

    const byScope = await kai.resolveParameters({ set: name, scopes: ['stone', 'wood'] })
    assert.equal(byScope.scope, 'wood')
    assert.deepEqual(byScope.tried, ['stone', 'wood'])
    const byMaterial = await kai.resolveParameters({ set: name, materialId: 'red-brown-plank-floor' })
    assert.equal(byMaterial.scope, 'wood')
    assert.equal(byMaterial.materialId, 'red-brown-plank-floor')
    const unscoped = await kai.resolveParameters({ set: name, scopes: ['metal'] })
    assert.equal(unscoped.fallback, true)
    const fallback = await kai.resolveParameters()
    assert.equal(fallback.name, 'standard')
  })

  test('results are recorded and drive suggestions', async () => {
    const record = await kai.recordResult({ set: name, materialId: 'red-brown-plank-floor', metrics: { score: 0.9 } })
    assert.equal(record.set, name)
    assert.equal(record.version, 3)
    assert.equal(record.metrics.score, 0.9)
    const batch = await kai.recordResults([
      { set: name, version: 2, materialId: 'dark-knotty-boards', metrics: { score: 0.4 } },
      { set: 'standard', materialId: 'dark-knotty-boards', metrics: { score: 0.5, seconds: 2 } },
    ])
    assert.deepEqual(batch, { recorded: 2 })

    const byMaterial = await kai.suggestParameters({ materialId: 'red-brown-plank-floor' })
    assert.equal(byMaterial.metric, 'score')
    assert.equal(typeof byMaterial.reason, 'string')
    assert.ok(Array.isArray(byMaterial.evidence))
    const [embedding] = await kai.embedImages([PLANKS])
    const byEmbedding = await kai.suggestParameters({ embedding, metric: 'seconds', higherIsBetter: false })
    assert.equal(byEmbedding.metric, 'seconds')
    assert.equal(typeof byEmbedding.set.version, 'number')
    const byArray = await kai.suggestParameters({ embedding: Array.from(embedding) })
    assert.equal(byArray.metric, 'score')
  })

  test('purge and schema', async () => {
    const purge = await kai.purgeParameters()
    assert.equal(typeof purge.cutoff, 'string')
    assert.deepEqual(purge.purged, [])

    const schema = await kai.parameterSchema()
    assert.equal(schema.parameters['recognition.top_k'].type, 'int')
    const definition = {
      type: 'int',
      default: 3,
      min: 0,
      max: 10,
      description: 'A parameter that the Node client tests add.',
    }
    const added = await kai.applyParameterSchema({ parameters: { 'node_client.level': definition } })
    assert.deepEqual(added.added, ['node_client.level'])
    const again = await kai.applyParameterSchema({ parameters: { 'node_client.level': definition } })
    assert.deepEqual(again.unchanged, ['node_client.level'])
    assert.equal((await kai.parameterSchema()).parameters['node_client.level'].max, 10)
  })
})

describe('models', { skip }, () => {
  test('listModels, unloadModel and loadModel', async () => {
    const list = await kai.listModels()
    assert.equal(typeof list.modelDir, 'string')
    assert.ok(list.cacheSize >= 2)
    const text = list.models.find((model) => model.name === 'all-minilm-l6-v2')
    assert.equal(text.state, 'ready')
    assert.equal(text.task, 'text-embedding')

    const unloaded = await kai.unloadModel('efficientnet-lite0')
    assert.deepEqual(unloaded, { name: 'efficientnet-lite0', unloaded: true })
    const loaded = await kai.loadModel('efficientnet-lite0')
    assert.equal(loaded.model.name, 'efficientnet-lite0')
    assert.equal(loaded.alreadyLoaded, false)
    assert.ok(loaded.loaded.includes('efficientnet-lite0'))
    assert.equal((await kai.loadModel('efficientnet-lite0')).alreadyLoaded, true)
  })
})

describe('health', { skip }, () => {
  test('health is GET /ready', async () => {
    const report = await kai.health()
    assert.equal(report.status, 'ready')
    assert.deepEqual(report.components.map((c) => c.name).sort(), ['catalog', 'image-model', 'registry', 'text-model'])
  })

  test('close resolves', async () => {
    const other = remote()
    await other.close()
    assert.equal(await other.checkReady(5000), null)
  })
})

describe('not remote', { skip }, () => {
  let client
  before(() => {
    client = remote()
  })
  after(() => client.close())

  test('importCatalog and fetchModel reject with KAI_NOT_REMOTE', async () => {
    for (const call of [() => client.importCatalog('examples/catalog'), () => client.fetchModel('all-minilm-l6-v2')]) {
      await assert.rejects(call(), (err) => {
        assert.equal(err.code, 'KAI_NOT_REMOTE')
        assert.match(err.message, /REST API/)
        return true
      })
    }
  })
})
