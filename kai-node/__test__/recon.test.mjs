// Tests reconstruction on the native `Kai` with scenes from kai's synthetic scene
// generator: structure from motion against the ground-truth cameras, progress reports,
// the written model, and the errors of the store's job queue (recon_model.test.mjs runs
// jobs to the end). No model weights are needed.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { Kai, rejectsWithCode, removeFolder, tempFolder } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { generateScene } = require('../index.js')

// 16 photos of 640x480 on a full ring of cameras, as the Python tests use.
const SCENE_IMAGES = 16
const SCENE_SEED = 3
const MIN_REGISTERED = SCENE_IMAGES - 1
const MAX_ROTATION_ERROR_DEG = 1.0
// Of the true distance between the two cameras the comparison starts from.
const MAX_DISTANCE_ERROR_RATIO = 0.02
const MAX_MEAN_REPROJECTION_ERROR_PX = 1.0
const STAGES = ['screening', 'features', 'matching', 'verification', 'registration', 'refinement']
const OUTPUT_FILES = ['cameras.txt', 'images.txt', 'points3D.txt', 'points.ply']

/** Returns a × bᵀ for 3x3 matrices given as rows. */
function timesTransposed(a, b) {
  return a.map((row) => b.map((other) => row[0] * other[0] + row[1] * other[1] + row[2] * other[2]))
}

/** Returns the angle of the rotation that takes `a` to `b`, in degrees. */
function angleBetween(a, b) {
  const relative = timesTransposed(a, b)
  const cosine = (relative[0][0] + relative[1][1] + relative[2][2] - 1) / 2
  return (Math.acos(Math.min(1, Math.max(-1, cosine))) * 180) / Math.PI
}

function distance(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2])
}

/**
 * Compares a reconstruction with the ground truth without aligning them. Two quantities
 * are the same in every similar frame: the rotation of each camera relative to the first,
 * and the distance of each camera centre from the first divided by that of the second.
 */
function poseErrors(result, truth) {
  const byName = new Map(truth.images.map((image) => [image.name, image]))
  const [first, second] = result.images
  const truthFirst = byName.get(first.name)
  const baseline = distance(first.center, second.center)
  const truthBaseline = distance(truthFirst.center, byName.get(second.name).center)
  const rotation = []
  const distanceRatio = []
  for (const image of result.images) {
    const expected = byName.get(image.name)
    rotation.push(
      angleBetween(timesTransposed(image.rotation, first.rotation), timesTransposed(expected.rotation, truthFirst.rotation)),
    )
    const measured = distance(image.center, first.center) / baseline
    const actual = distance(expected.center, truthFirst.center) / truthBaseline
    distanceRatio.push(Math.abs(measured - actual) / Math.max(actual, 1))
  }
  return { rotation, distanceRatio }
}

describe('generateScene', () => {
  let folder
  before(() => {
    folder = tempFolder('kai-node-scene-')
  })
  after(() => removeFolder(folder))

  test('writes photos and ground truth', async () => {
    const scene = await generateScene(join(folder, 'small'), { images: 4, seed: 1, width: 160, height: 120 })
    assert.deepEqual(
      scene.photos.map((photo) => photo.split('/').pop()),
      ['image_000.png', 'image_001.png', 'image_002.png', 'image_003.png'],
    )
    for (const photo of scene.photos) {
      assert.deepEqual([...readFileSync(photo).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47])
    }
    assert.equal(scene.images.length, 4)
    assert.equal(scene.cameras[0].width, 160)
    assert.equal(scene.cameras[0].height, 120)
    assert.ok(scene.summary.points > 100, `${scene.summary.points} ground-truth points`)
    assert.ok(scene.points.xyz instanceof Float64Array)
    assert.equal(scene.points.xyz.length, 3 * scene.summary.points)
    assert.ok(scene.points.rgb instanceof Uint8Array)
    assert.ok(scene.points.trackLength.every((length) => length >= 2))
    assert.deepEqual(scene.files, OUTPUT_FILES)
    for (const file of OUTPUT_FILES) {
      assert.ok(existsSync(join(scene.groundTruthDir, file)), `${file} in ${scene.groundTruthDir}`)
    }
  })

  test('repeats with the seed', async () => {
    const a = await generateScene(join(folder, 'a'), { images: 2, seed: 5, width: 64, height: 48 })
    const b = await generateScene(join(folder, 'b'), { images: 2, seed: 5, width: 64, height: 48 })
    assert.deepEqual(readFileSync(a.photos[1]), readFileSync(b.photos[1]))
  })

  test('rejects invalid options', async () => {
    await rejectsWithCode(generateScene(join(folder, 'bad'), { width: 8 }), 'KAI_INVALID_INPUT', /width/)
    await rejectsWithCode(generateScene(join(folder, 'bad'), { colour: 'red' }), 'KAI_INVALID_INPUT', /colour/)
    await rejectsWithCode(generateScene(join(folder, 'bad'), { arcDegrees: 5 }), 'KAI_INVALID_INPUT', /arc_degrees/)
  })
})

describe('Kai reconstruction', () => {
  let folder
  let kai
  let scene
  before(async () => {
    folder = tempFolder('kai-node-recon-')
    kai = await Kai.open({ store: join(folder, 'store') })
    scene = await generateScene(join(folder, 'scene'), { images: SCENE_IMAGES, seed: SCENE_SEED })
  })
  after(async () => {
    await kai?.close()
    removeFolder(folder)
  })

  test('reconstruct matches the ground truth', async () => {
    const reports = []
    const out = join(folder, 'model')
    const result = await kai.reconstruct(join(folder, 'scene'), {
      out,
      onProgress: (stage, fraction) => reports.push([stage, fraction]),
    })
    const { summary } = result
    assert.equal(summary.images, SCENE_IMAGES)
    assert.ok(summary.registeredImages >= MIN_REGISTERED, JSON.stringify(summary.unregistered))
    assert.ok(summary.meanReprojectionError < MAX_MEAN_REPROJECTION_ERROR_PX, `${summary.meanReprojectionError} px`)
    assert.equal(result.images.length, summary.registeredImages)
    assert.equal(result.points.xyz.length, 3 * summary.points)
    assert.equal(result.points.rgb.length, 3 * summary.points)
    assert.equal(result.points.error.length, summary.points)
    assert.ok(result.points.trackLength.every((length) => length >= 2))

    const errors = poseErrors(result, scene)
    assert.ok(Math.max(...errors.rotation) < MAX_ROTATION_ERROR_DEG, `rotation errors ${errors.rotation}`)
    assert.ok(Math.max(...errors.distanceRatio) < MAX_DISTANCE_ERROR_RATIO, `distance errors ${errors.distanceRatio}`)

    assert.deepEqual(result.files, OUTPUT_FILES)
    for (const file of OUTPUT_FILES) {
      assert.ok(existsSync(join(out, file)), `${file} in ${out}`)
    }
    const imagesTxt = readFileSync(join(out, 'images.txt'), 'utf8')
    for (const image of result.images) {
      assert.ok(imagesTxt.includes(image.name), `${image.name} in images.txt`)
    }

    // Progress arrives in the order of the stages, with fractions that never decrease.
    assert.ok(reports.length > 0)
    const fractions = reports.map(([, fraction]) => fraction)
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b))
    assert.ok(fractions.at(-1) > 0.9, `last fraction ${fractions.at(-1)}`)
    assert.ok(fractions.at(-1) <= 1, `last fraction ${fractions.at(-1)}`)
    const stages = reports.map(([stage]) => STAGES.indexOf(stage))
    assert.ok(stages.every((index) => index >= 0), `stages ${reports.map(([s]) => s)}`)
    assert.deepEqual(stages, [...stages].sort((a, b) => a - b))
  })

  test('reconstruct names Buffers image-N and uses a set', async () => {
    const photos = scene.photos.map((photo) => readFileSync(photo))
    const result = await kai.reconstruct(photos, { set: 'standard' })
    const names = [...result.images.map((i) => i.name), ...result.summary.unregistered.map((u) => u.name)]
    const expected = photos.map((_, index) => `image-${index + 1}`)
    assert.deepEqual(names.sort(), expected.sort())
    assert.ok(result.summary.registeredImages >= MIN_REGISTERED, JSON.stringify(result.summary.unregistered))
    assert.deepEqual(result.files, [])
  })

  test('reconstruct applies the set quality thresholds', async () => {
    // The shipped premium set screens out photos below its minimum resolution, which the
    // 640x480 photos of the scene are.
    await rejectsWithCode(kai.reconstruct(scene.photos.slice(0, 3), { set: 'premium' }), 'KAI_INVALID_INPUT', /low_resolution/)
  })

  test('reconstruct rejects when onProgress throws', async () => {
    let calls = 0
    const onProgress = () => {
      calls += 1
      throw new Error('progress bar is gone')
    }
    await rejectsWithCode(
      kai.reconstruct(scene.photos.slice(0, 3), { onProgress }),
      'KAI_INVALID_INPUT',
      /onProgress: the function threw: progress bar is gone/,
    )
    assert.equal(calls, 1, 'not called again after it threw')
  })

  test('reconstruct rejects invalid arguments', async () => {
    await rejectsWithCode(kai.reconstruct(42), 'KAI_INVALID_INPUT', /photos/)
    await rejectsWithCode(kai.reconstruct([scene.photos[0], 7]), 'KAI_INVALID_INPUT', /photos\[1\]/)
    await rejectsWithCode(kai.reconstruct(scene.photos, { onProgress: 'yes' }), 'KAI_INVALID_INPUT', /onProgress/)
    await rejectsWithCode(kai.reconstruct(scene.photos, { quality: 'high' }), 'KAI_INVALID_INPUT', /quality/)
    await rejectsWithCode(kai.reconstruct(scene.photos.slice(0, 2), { set: 'no-such-set' }), 'KAI_NOT_FOUND')
    await rejectsWithCode(kai.reconstruct(join(folder, 'store')), 'KAI_INVALID_INPUT', /contains no photo/)
  })

  test('jobs reject invalid requests', async () => {
    assert.equal(await kai.getReconstructionJob('00000000-0000-4000-8000-000000000000'), null)
    assert.equal(await kai.getReconstructionJob('../secrets'), null)
    await rejectsWithCode(kai.submitReconstruction([scene.photos[0]]), 'KAI_INVALID_INPUT', /at least 2/)
    await rejectsWithCode(kai.submitReconstruction(scene.photos.slice(0, 2), { set: 'no-such-set' }), 'KAI_NOT_FOUND')
    await rejectsWithCode(kai.submitReconstruction(scene.photos.slice(0, 2), { workers: 3 }), 'KAI_INVALID_INPUT', /workers/)
  })
})
