// Tests the parameter registry methods of `Kai` on a temporary store with the sample
// catalog, whose shipped sets are `standard`, `premium` and `enterprise`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'

import { rejectsWithCode, sampleCatalog, skip, useSampleStore } from './helpers.mjs'

const sample = useSampleStore()

test('listParameterSets lists shipped sets', { skip }, async () => {
  const sets = await sample.kai.listParameterSets()
  const names = sets.map((s) => s.name)
  for (const name of ['enterprise', 'premium', 'standard']) {
    assert.ok(names.includes(name), `${name} not in ${names}`)
  }
  assert.equal(sets[0].scope, null)
  assert.equal(typeof sets[0].updatedAt, 'string')
})

test('set versions, history, diff and rollback', { skip }, async () => {
  const { kai } = sample
  const first = await kai.getParameters('premium')
  assert.equal(first.version, 1)
  assert.equal(first.values['recognition.top_k'], 5)

  const second = await kai.setParameters(
    'premium',
    { 'recognition.top_k': 8, 'recognition.hint_weight': 0.5 },
    { author: 'node-test', note: 'wider results', expectVersion: 1 },
  )
  assert.equal(second.version, 2)
  assert.equal(second.author, 'node-test')
  assert.equal(second.note, 'wider results')
  assert.equal(second.values['recognition.top_k'], 8)
  assert.equal(second.values['recognition.hint_weight'], 0.5)

  // A stale expected version is a conflict and writes nothing.
  await rejectsWithCode(
    kai.setParameters('premium', { 'recognition.top_k': 9 }, { expectVersion: 1 }),
    'KAI_CONFLICT',
  )
  assert.equal((await kai.getParameters('premium')).version, 2)
  assert.equal((await kai.getParameters('premium', { version: 1 })).values['recognition.top_k'], 5)

  const changes = await kai.diffParameters('premium', 1, 2)
  assert.deepEqual(changes.map((c) => c.parameter).sort(), ['recognition.hint_weight', 'recognition.top_k'])
  const topK = changes.find((c) => c.parameter === 'recognition.top_k')
  assert.equal(topK.from, 5)
  assert.equal(topK.to, 8)

  const rolledBack = await kai.rollbackParameters('premium', 1, { author: '  ' })
  assert.equal(rolledBack.version, 3)
  assert.equal(rolledBack.author, 'unknown')
  assert.equal(rolledBack.note, 'rollback to version 1')
  assert.equal(rolledBack.values['recognition.top_k'], 5)

  const history = await kai.parameterHistory('premium')
  assert.deepEqual(
    history.map((s) => s.version),
    [1, 2, 3],
  )
})

test('scoped sets resolve before unscoped ones', { skip }, async () => {
  const { kai } = sample
  const scoped = await kai.setParameters('standard', { 'recognition.top_k': 3 }, { scope: 'brick' })
  assert.equal(scoped.scope, 'brick')
  assert.equal(scoped.version, 1)
  const history = await kai.parameterHistory('standard', { scope: 'brick' })
  assert.equal(history.length, 1)

  const byScope = await kai.resolveParameters({ set: 'standard', scopes: ['tile', 'brick'] })
  assert.equal(byScope.scope, 'brick')
  assert.deepEqual(byScope.tried, ['tile', 'brick'])
  assert.equal(byScope.values['recognition.top_k'], 3)

  const byMaterial = await kai.resolveParameters({ materialId: 'red-brick-white-mortar' })
  assert.equal(byMaterial.name, 'standard')
  assert.equal(byMaterial.scope, 'brick')
  assert.equal(byMaterial.materialId, 'red-brick-white-mortar')

  const unscoped = await kai.resolveParameters()
  assert.equal(unscoped.name, 'standard')
  assert.equal(unscoped.scope, null)

  await rejectsWithCode(
    kai.resolveParameters({ materialId: 'red-brick-white-mortar', scopes: ['brick'] }),
    'KAI_INVALID_INPUT',
  )
  await rejectsWithCode(kai.resolveParameters({ materialId: 'no-such-material' }), 'KAI_NOT_FOUND')
})

test('results record and drive suggestions', { skip }, async () => {
  const { kai } = sample
  const record = await kai.recordResult({
    set: 'enterprise',
    materialId: 'red-brick-white-mortar',
    metrics: { score: 0.9 },
  })
  assert.equal(record.set, 'enterprise')
  assert.equal(record.version, 1)
  assert.deepEqual(record.metrics, { score: 0.9 })
  assert.equal(typeof record.recordedAt, 'string')

  const batch = await kai.recordResults([
    { set: 'enterprise', materialId: 'grey-washed-brick', metrics: { score: 0.95 } },
    { set: 'standard', version: 1, materialId: 'grey-washed-brick', metrics: { score: 0.2 } },
  ])
  assert.deepEqual(batch, { recorded: 2 })

  // All or none: the unknown material fails the batch before anything is recorded.
  await rejectsWithCode(
    kai.recordResults([
      { set: 'standard', materialId: 'grey-mossy-brick', metrics: { score: 0.1 } },
      { set: 'standard', materialId: 'no-such-material', metrics: { score: 0.1 } },
    ]),
    'KAI_NOT_FOUND',
  )
  await rejectsWithCode(
    kai.recordResult({ set: 'no-such-set', materialId: 'grey-mossy-brick', metrics: { score: 1 } }),
    'KAI_NOT_FOUND',
  )

  // grey-washed-brick is the sample material most similar to red-brick-white-mortar.
  const byMaterial = await kai.suggestParameters({ materialId: 'red-brick-white-mortar' })
  assert.equal(byMaterial.metric, 'score')
  assert.equal(byMaterial.set.name, 'enterprise')
  assert.equal(byMaterial.fallback, false)
  assert.ok(byMaterial.evidence.some((e) => e.materialId === 'grey-washed-brick'))
  const lowest = await kai.suggestParameters({ materialId: 'red-brick-white-mortar', higherIsBetter: false })
  assert.equal(lowest.set.name, 'standard')

  const [vector] = await kai.embedImages([join(sampleCatalog, 'images', 'red-brick-white-mortar.jpg')])
  const byEmbedding = await kai.suggestParameters({ embedding: vector })
  assert.equal(byEmbedding.set.name, 'enterprise')
  const byArray = await kai.suggestParameters({ embedding: Array.from(vector), higherIsBetter: false })
  assert.equal(byArray.set.name, 'standard')

  await rejectsWithCode(kai.suggestParameters({}), 'KAI_INVALID_INPUT')
  await rejectsWithCode(kai.suggestParameters({ embedding: [0.1, 0.2] }), 'KAI_INVALID_INPUT')
})

test('schema read, apply and purge', { skip }, async () => {
  const { kai } = sample
  const schema = await kai.parameterSchema()
  const topK = schema.parameters['recognition.top_k']
  assert.equal(topK.type, 'int')
  assert.equal(topK.default, 5)

  const report = await kai.applyParameterSchema({
    parameters: { 'node.batch_size': { type: 'int', default: 4, min: 1, max: 64 } },
  })
  assert.deepEqual(report.added, ['node.batch_size'])
  const written = await kai.setParameters('standard', { 'node.batch_size': 16 })
  assert.equal(written.values['node.batch_size'], 16)
  await rejectsWithCode(kai.setParameters('standard', { 'node.batch_size': 100 }), 'KAI_INVALID_INPUT')
  await rejectsWithCode(kai.setParameters('standard', { 'no.such_parameter': 1 }), 'KAI_INVALID_INPUT')
  await rejectsWithCode(kai.applyParameterSchema({ parameters: {}, extra: 1 }), 'KAI_INVALID_INPUT')

  const purged = await kai.purgeParameters()
  assert.equal(typeof purged.cutoff, 'string')
  assert.deepEqual(purged.purged, [])
})

test('unknown set gives KAI_NOT_FOUND', { skip }, async () => {
  await rejectsWithCode(sample.kai.getParameters('no-such-set'), 'KAI_NOT_FOUND')
  await rejectsWithCode(sample.kai.parameterHistory('no-such-set'), 'KAI_NOT_FOUND')
  await rejectsWithCode(sample.kai.getParameters('standard', { version: 99 }), 'KAI_NOT_FOUND')
})
