// Tests RemoteKai's reconstruction jobs against the kai-server that
// scripts/test_node_client.sh starts: a synthetic scene from the native module's
// generator is uploaded, the job is polled with waitForReconstruction until it ends, and
// its COLMAP model is downloaded.
import assert from 'node:assert/strict'
import { readFileSync, rmSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { nativeBinding, nativeSkip, rejectsWith, remote, serverSkip } from './helpers.mjs'

const skip = serverSkip || nativeSkip
const kai = skip ? undefined : remote()

// The scene of the native reconstruction tests: 16 photos of 640x480 on a full ring, each
// PNG about 0.5 MB, below the server's KAI_MAX_IMAGE_BYTES of 1 MB in the test script.
// Fewer photos, or smaller ones, share too few matches to reconstruct.
const SCENE = { images: 16, seed: 3, width: 640, height: 480 }
const MIN_REGISTERED = SCENE.images - 1
const OUTPUT_FILES = ['cameras.txt', 'images.txt', 'points3D.txt', 'points.ply']
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

  test('submit, wait and download the model', async () => {
    const job = await kai.submitReconstruction(scene.photos, { set: 'standard' })
    assert.equal(job.status, 'queued')
    assert.equal(job.error, null)
    assert.equal(job.result, null)
    assert.equal(job.finishedAt, null)

    const finished = await kai.waitForReconstruction(job.id, { intervalMs: 100, timeoutMs: 600_000 })
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error))
    assert.equal(finished.progress, 1)
    assert.deepEqual(finished.files, OUTPUT_FILES)
    const summary = finished.result
    assert.equal(summary.images, SCENE.images)
    assert.ok(summary.registeredImages >= MIN_REGISTERED, JSON.stringify(summary.unregistered))
    assert.ok(summary.meanReprojectionError < 1, `${summary.meanReprojectionError} px`)

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
      assert.match(name, /^image-([1-9]|1[0-6])$/)
    }
  })

  test('unknown jobs and invalid requests', async () => {
    assert.equal(await kai.getReconstructionJob(UNKNOWN_ID), null)
    await rejectsWith(kai.waitForReconstruction(UNKNOWN_ID), 'KAI_NOT_FOUND')
    await rejectsWith(kai.reconstructionFile(UNKNOWN_ID, 'cameras.txt'), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.submitReconstruction([scene.photos[0]]), 'KAI_INVALID_INPUT', 400)
    await rejectsWith(kai.submitReconstruction(scene.photos.slice(0, 2), { set: 'no-such-set' }), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.waitForReconstruction(UNKNOWN_ID, { intervalMs: -1 }), 'KAI_INVALID_INPUT')
  })
})
