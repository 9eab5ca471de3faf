// Tests RemoteKai's reconstruction jobs against the kai-server that
// scripts/test_node_client.sh starts: a synthetic scene from the native module's
// generator is uploaded, the job is polled with waitForReconstruction until it ends, and
// its model files (GLB levels of detail) and COLMAP model are downloaded.
import assert from 'node:assert/strict'
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { nativeBinding, nativeSkip, rejectsWith, remote, serverSkip } from './helpers.mjs'

const skip = serverSkip || nativeSkip
const kai = skip ? undefined : remote()

// The small scene of the native model tests: 10 photos of 400x300 on a 90 degree arc, each
// PNG well below the server's KAI_MAX_IMAGE_BYTES of 1 MB in the test script, so a whole
// job takes seconds.
const SCENE = { images: 10, seed: 7, width: 400, height: 300, arcDegrees: 90 }
const MIN_REGISTERED = SCENE.images - 1
const OUTPUT_FILES = ['cameras.txt', 'images.txt', 'points3D.txt', 'points.ply', 'dense.ply', 'mesh.ply']
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000'

describe('reconstruction jobs', { skip }, () => {
  let folder
  let scene
  before(async () => {
    folder = mkdtempSync(join(tmpdir(), 'kai-client-recon-'))
    scene = await nativeBinding.generateScene(folder, SCENE)
  })
  after(() => {
    if (folder) {
      rmSync(folder, { recursive: true, force: true })
    }
  })

  test('submit, wait and download the models', async () => {
    const job = await kai.submitReconstruction(scene.photos, { set: 'standard' })
    assert.equal(job.status, 'queued')
    assert.equal(job.error, null)
    assert.equal(job.result, null)
    assert.equal(job.finishedAt, null)

    const finished = await kai.waitForReconstruction(job.id, { intervalMs: 100, timeoutMs: 600_000 })
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error))
    assert.equal(finished.progress, 1)
    assert.equal(finished.files[0], 'model.glb')
    for (const name of OUTPUT_FILES) {
      assert.ok(finished.files.includes(name), `${name} in ${finished.files}`)
    }
    const summary = finished.result
    assert.equal(summary.images, SCENE.images)
    assert.ok(summary.registeredImages >= MIN_REGISTERED, JSON.stringify(summary.unregistered))
    assert.ok(summary.meanReprojectionError < 1, `${summary.meanReprojectionError} px`)
    assert.ok(summary.model.densePoints > 1000, JSON.stringify(summary.model))
    assert.ok(summary.model.levels.length >= 2, JSON.stringify(summary.model))

    // The GLB levels download in order and read back with the counts of the result.
    const levels = await kai.reconstructionModel(job.id)
    assert.deepEqual(
      levels.map(({ file, vertices, triangles }) => ({ file, vertices, triangles })),
      summary.model.levels,
    )
    for (const level of levels) {
      assert.equal(new TextDecoder().decode(level.bytes.subarray(0, 4)), 'glTF')
      const copy = join(folder, level.file)
      writeFileSync(copy, level.bytes)
      const mesh = await nativeBinding.readMesh(copy)
      assert.equal(mesh.triangles.length, 3 * level.triangles)
      assert.equal(mesh.positions.length, 3 * level.vertices)
    }

    // The upload keeps the file names, which name the photos in the model.
    const images = new TextDecoder().decode(await kai.reconstructionFile(job.id, 'images.txt'))
    assert.ok(images.includes('image_000.png'), images.slice(0, 400))
    const cloud = await kai.reconstructionFile(job.id, 'points.ply')
    assert.equal(new TextDecoder().decode(cloud.subarray(0, 3)), 'ply')
    const points = new TextDecoder().decode(await kai.reconstructionFile(job.id, 'points3D.txt'))
    const rows = points.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
    assert.equal(rows.length, summary.points)

    assert.deepEqual(await kai.getReconstructionJob(job.id), finished)
    const listed = await kai.listReconstructionJobs()
    assert.ok(listed.some((j) => j.id === job.id), 'the job is listed')
  })

  test('photos as Buffers are named image-N, and waiting times out', async () => {
    const job = await kai.submitReconstruction(scene.photos.map((p) => readFileSync(p)))
    // Reconstructing takes far longer than one status request, so the job is still
    // queued or running when a wait without time to spare checks it.
    await rejectsWith(kai.waitForReconstruction(job.id, { timeoutMs: 0 }), 'KAI_TIMEOUT')
    // A job that has not ended has no model files yet.
    await rejectsWith(kai.reconstructionModel(job.id), 'KAI_INVALID_INPUT')
    const finished = await kai.waitForReconstruction(job.id, { intervalMs: 100, timeoutMs: 600_000 })
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error))
    const images = new TextDecoder().decode(await kai.reconstructionFile(job.id, 'images.txt'))
    const names = images
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length === 10 && !fields[0].startsWith('#'))
      .map((fields) => fields[9])
    assert.equal(names.length, finished.result.registeredImages)
    for (const name of names) {
      assert.match(name, /^image-([1-9]|10)$/)
    }
  })

  test('unknown jobs and invalid requests', async () => {
    assert.equal(await kai.getReconstructionJob(UNKNOWN_ID), null)
    await rejectsWith(kai.waitForReconstruction(UNKNOWN_ID), 'KAI_NOT_FOUND')
    await rejectsWith(kai.reconstructionFile(UNKNOWN_ID, 'cameras.txt'), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.submitReconstruction([scene.photos[0]]), 'KAI_INVALID_INPUT', 400)
    await rejectsWith(kai.submitReconstruction(scene.photos.slice(0, 2), { set: 'no-such-set' }), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.waitForReconstruction(UNKNOWN_ID, { intervalMs: -1 }), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.reconstructionModel(UNKNOWN_ID), 'KAI_NOT_FOUND')
  })
})
