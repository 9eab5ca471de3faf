// Tests the catalog methods of `Kai` (import, search, materials and their history,
// maintenance, heads) on a temporary store with the sample catalog and the real models.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

import { queryPhoto, rejectsWithCode, sampleCatalog, skip, useSampleStore } from './helpers.mjs'

const sample = useSampleStore()

const newRecord = {
  id: 'node-test-oak',
  name: 'Node test oak boards',
  materialType: 'Wood',
  tags: ['Oak', 'indoor'],
  description: 'Oiled oak boards added by the Node tests.',
  properties: { thicknessMm: 20 },
}

test('importCatalog reports every record', { skip }, async () => {
  const { report } = sample
  assert.equal(report.created.length, 44)
  assert.deepEqual(report.updated, [])
  assert.deepEqual(report.failed, [])
  assert.equal(report.calibration.samples, 44)
  const again = await sample.kai.importCatalog(sampleCatalog)
  assert.equal(again.unchanged.length, 44)
  assert.deepEqual(again.created, [])
  assert.equal(again.calibration, null)
})

test('importCatalog rejects a missing folder', { skip }, async () => {
  await rejectsWithCode(sample.kai.importCatalog('/no/such/catalog'), 'KAI_INVALID_INPUT', /catalog.json/)
})

test('catalogSummary counts the sample', { skip }, async () => {
  const summary = await sample.kai.catalogSummary()
  assert.equal(summary.materials, 44)
  assert.equal(summary.images, 44)
  assert.ok(summary.materialTypes.includes('brick'))
  assert.equal(summary.textModel, 'all-minilm-l6-v2')
  assert.equal(summary.imageModel, 'efficientnet-lite0')
  assert.equal(summary.storage, 'sqlite')
})

test('searchMaterials by text', { skip }, async () => {
  const { results } = await sample.kai.searchMaterials({ query: 'wooden floor planks', topK: 3 })
  assert.equal(results.length, 3)
  for (const hit of results) {
    assert.equal(hit.materialType, 'wood')
    assert.deepEqual(Object.keys(hit).sort(), ['id', 'materialType', 'name', 'score'])
  }
})

test('searchMaterials by photo with filters', { skip }, async () => {
  const photo = readFileSync(queryPhoto('altered-perforated-steel-sheet.jpg'))
  const { results } = await sample.kai.searchMaterials({ image: photo, topK: 5 })
  assert.equal(results[0].id, 'perforated-steel-sheet')
  const filtered = await sample.kai.searchMaterials({ image: photo, materialType: 'BRICK', topK: 5 })
  assert.ok(filtered.results.length > 0)
  assert.ok(filtered.results.every((hit) => hit.materialType === 'brick'))
  const paged = await sample.kai.searchMaterials({ image: photo, topK: 2, offset: 1 })
  assert.deepEqual(paged.results, results.slice(1, 3))
})

test('searchMaterials rejects an empty query', { skip }, async () => {
  await rejectsWithCode(sample.kai.searchMaterials({}), 'KAI_INVALID_INPUT')
  await rejectsWithCode(sample.kai.searchMaterials({ query: 'oak', topK: 0 }), 'KAI_INVALID_INPUT')
  // A non-object query rejects the Promise, so the call must not throw before returning one.
  for (const query of [null, undefined, 'oak']) {
    let pending
    assert.doesNotThrow(() => {
      pending = sample.kai.searchMaterials(query)
    })
    await rejectsWithCode(pending, 'KAI_INVALID_INPUT', /must be an object/)
  }
  await rejectsWithCode(sample.kai.searchMaterials({ query: 'oak', image: 5 }), 'KAI_INVALID_INPUT', /query\.image/)
})

test('getMaterial returns a record or null', { skip }, async () => {
  const material = await sample.kai.getMaterial('red-brick-white-mortar')
  assert.equal(material.id, 'red-brick-white-mortar')
  assert.equal(material.materialType, 'brick')
  assert.equal(material.version, 1)
  assert.equal(material.images.length, 1)
  assert.equal(await sample.kai.getMaterial('no-such-material'), null)
})

test('listMaterials pages and filters', { skip }, async () => {
  const first = await sample.kai.listMaterials({ limit: 10 })
  assert.equal(first.length, 10)
  const second = await sample.kai.listMaterials({ limit: 10, offset: 10 })
  assert.equal(second[0].id > first[9].id, true)
  const all = await sample.kai.listMaterials()
  assert.equal(all.length, 44)
  const bricks = await sample.kai.listMaterials({ materialType: 'Brick' })
  assert.ok(bricks.length > 0)
  assert.ok(bricks.every((m) => m.materialType === 'brick'))
  const tagged = await sample.kai.listMaterials({ tag: bricks[0].tags[0] })
  assert.ok(tagged.some((m) => m.id === bricks[0].id))
})

test('material write, replace and history', { skip }, async () => {
  const { kai } = sample
  const photo = readFileSync(queryPhoto('heldout-weathered-plank.jpg'))
  const created = await kai.createMaterial(newRecord, [photo])
  assert.equal(created.id, newRecord.id)
  assert.equal(created.materialType, 'wood')
  assert.deepEqual(created.tags, ['oak', 'indoor'])
  assert.equal(created.version, 1)
  assert.equal(created.images.length, 1)
  await rejectsWithCode(kai.createMaterial(newRecord), 'KAI_CONFLICT')

  // A stale version is rejected and changes nothing.
  const renamed = { ...newRecord, name: 'Renamed oak boards' }
  await rejectsWithCode(kai.replaceMaterial(renamed, [], { expectVersion: 7 }), 'KAI_CONFLICT')
  assert.equal((await kai.getMaterial(newRecord.id)).name, newRecord.name)

  const replaced = await kai.replaceMaterial(renamed, undefined, { expectVersion: 1 })
  assert.equal(replaced.version, 2)
  assert.equal(replaced.name, 'Renamed oak boards')
  assert.equal(replaced.images.length, 1)

  // New photos replace the stored ones when the record keeps none.
  const path = queryPhoto('heldout-dark-brown-planks.jpg')
  const rephotographed = await kai.replaceMaterial(renamed, [path, photo])
  assert.equal(rephotographed.version, 3)
  assert.equal(rephotographed.images.length, 2)

  const found = await kai.searchMaterials({ query: 'Renamed oak boards', topK: 3 })
  assert.ok(found.results.some((hit) => hit.id === newRecord.id))

  const history = await kai.materialHistory(newRecord.id)
  assert.deepEqual(
    history.map((v) => [v.version, v.change]),
    [
      [1, 'created'],
      [2, 'updated'],
      [3, 'updated'],
    ],
  )
  assert.equal(history[1].record.name, 'Renamed oak boards')

  assert.equal(await kai.deleteMaterial(newRecord.id), true)
  assert.equal(await kai.deleteMaterial(newRecord.id), false)
  assert.equal(await kai.getMaterial(newRecord.id), null)
  const afterDelete = await kai.materialHistory(newRecord.id)
  assert.equal(afterDelete.at(-1).change, 'deleted')
})

test('material writes reject bad input', { skip }, async () => {
  const { kai } = sample
  await rejectsWithCode(kai.createMaterial({ ...newRecord, id: 'bad id!' }), 'KAI_INVALID_INPUT')
  await rejectsWithCode(kai.createMaterial({ ...newRecord, colour: 'red' }), 'KAI_INVALID_INPUT', /colour/)
  await rejectsWithCode(
    kai.createMaterial({ ...newRecord, id: 'node-test-corrupt' }, [Buffer.from('not a photo')]),
    'KAI_INVALID_INPUT',
    /images\[0\]/,
  )
  assert.equal(await kai.getMaterial('node-test-corrupt'), null)
  await rejectsWithCode(kai.replaceMaterial({ ...newRecord, id: 'no-such-material' }), 'KAI_NOT_FOUND')
  await rejectsWithCode(kai.materialHistory('no-such-material'), 'KAI_NOT_FOUND')
})

test('calibration, calibrate and reindex', { skip }, async () => {
  const { kai } = sample
  const stored = await kai.calibration()
  assert.equal(stored.samples, 44)
  const fitted = await kai.calibrate()
  assert.equal(fitted.samples, 44)
  assert.ok(fitted.temperature > 0)
  assert.deepEqual(await kai.reindex(), { reindexed: 44 })
  const { results } = await kai.searchMaterials({ query: 'red brick', topK: 1 })
  assert.equal(results[0].materialType, 'brick')
})

test('trainHead and heads', { skip }, async () => {
  const { kai } = sample
  assert.deepEqual(await kai.heads(), [])
  const manifest = await kai.trainHead()
  assert.equal(manifest.spec.domain, 'material-type')
  assert.equal(manifest.spec.label, 'materialType')
  assert.ok(manifest.classes.includes('brick'))
  assert.ok(manifest.heldoutAccuracy >= 0)
  assert.ok(manifest.heldoutAccuracy <= 1)
  const heads = await kai.heads()
  assert.deepEqual(
    heads.map((h) => h.spec.domain),
    ['material-type'],
  )
  await rejectsWithCode(kai.trainHead({ label: 'property:none' }), 'KAI_INVALID_INPUT')
  const recognition = await kai.recognize(queryPhoto('altered-red-brown-plank-floor.jpg'))
  assert.equal(recognition.classifiedBy, 'head')
})
