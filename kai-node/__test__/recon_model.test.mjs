// Tests the reconstruction stages after structure from motion on the native `Kai`. They
// cover the whole pipeline on a small rendered scene (model files that read back), each
// stage on its own, the store's job queue, mesh files as typed arrays, and the errors of
// bad input. No model weights are needed.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { Kai, rejectsWithCode, removeFolder, tempFolder } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { generateScene, readMesh, writeMesh } = require('../index.js')

// A small scene, so the whole pipeline takes seconds: 10 photos of 400x300 on a 90 degree
// arc, as kai-core's job test uses.
const SCENE = { images: 10, width: 400, height: 300, seed: 7, arcDegrees: 90 }
const MIN_REGISTERED = 9
const MIN_DENSE_POINTS = 1000
const STAGES = [
  'screening',
  'features',
  'matching',
  'verification',
  'registration',
  'refinement',
  'depth_maps',
  'fusion',
  'meshing',
  'simplification',
  'export',
]
const SPARSE_FILES = ['cameras.txt', 'images.txt', 'points3D.txt', 'points.ply']

/** Checks the GLB header of `bytes` and returns its JSON document. */
function glbDocument(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'glTF')
  assert.equal(view.getUint32(4, true), 2, 'glTF version')
  assert.equal(view.getUint32(8, true), bytes.byteLength, 'length in the header')
  const jsonLength = view.getUint32(12, true)
  assert.equal(view.getUint32(16, true), 0x4e4f534a, 'JSON chunk')
  return JSON.parse(new TextDecoder().decode(bytes.subarray(20, 20 + jsonLength)))
}

/** Asserts that `mesh` is a well-formed result of `readMesh` with the given counts. */
function assertMesh(mesh, vertices, triangles) {
  assert.ok(mesh.positions instanceof Float32Array)
  assert.ok(mesh.triangles instanceof Uint32Array)
  assert.equal(mesh.positions.length, 3 * vertices)
  assert.equal(mesh.triangles.length, 3 * triangles)
  assert.ok(mesh.triangles.every((index) => index < vertices), 'indices in range')
  assert.ok(mesh.positions.every(Number.isFinite), 'finite positions')
}

/**
 * Returns the triangles of `mesh` as corner positions and colours, independent of vertex
 * and triangle order (the GLB writer reorders both for faster rendering) but not of
 * winding: each triangle starts at its smallest corner, then the triangles are sorted.
 */
function canonicalTriangles(mesh) {
  const corner = (index) => {
    const position = Array.from(mesh.positions.subarray(3 * index, 3 * index + 3), (v) => v.toFixed(4))
    return position.join(' ')
  }
  const triangles = []
  for (let t = 0; t < mesh.triangles.length; t += 3) {
    const corners = [0, 1, 2].map((k) => corner(mesh.triangles[t + k]))
    const first = corners.indexOf([...corners].sort()[0])
    triangles.push([0, 1, 2].map((k) => corners[(first + k) % 3]).join(' | '))
  }
  return triangles.sort()
}

/** Returns the colour of each vertex keyed by its position, as `canonicalTriangles` does. */
function colorsByPosition(mesh) {
  const out = new Map()
  for (let v = 0; v < mesh.positions.length / 3; v++) {
    const key = Array.from(mesh.positions.subarray(3 * v, 3 * v + 3), (x) => x.toFixed(4)).join(' ')
    out.set(key, Array.from(mesh.colors.subarray(3 * v, 3 * v + 3)))
  }
  return out
}

/** Builds a closed tetrahedron with outward winding, normals and colours. */
function tetrahedron() {
  const s = 1 / Math.sqrt(3)
  return {
    positions: new Float32Array([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]),
    normals: new Float32Array([-s, -s, -s, 1, 0, 0, 0, 1, 0, 0, 0, 1]),
    colors: new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 200, 200]),
    triangles: new Uint32Array([0, 2, 1, 0, 1, 3, 0, 3, 2, 1, 2, 3]),
  }
}

describe('Kai model reconstruction', () => {
  let folder
  let kai
  let photos
  let built
  const reports = []
  before(async () => {
    folder = tempFolder('kai-node-model-')
    kai = await Kai.open({ store: join(folder, 'store') })
    photos = join(folder, 'scene')
    await generateScene(photos, SCENE)
    built = await kai.reconstructModel(photos, join(folder, 'out', 'model.glb'), {
      set: 'standard',
      work: join(folder, 'work'),
      onProgress: (stage, fraction) => reports.push([stage, fraction]),
    })
  })
  after(async () => {
    await kai?.close()
    removeFolder(folder)
  })

  test('reconstructModel writes levels that read back', async () => {
    const { summary, model, files } = built
    assert.equal(summary.images, SCENE.images)
    assert.ok(summary.registeredImages >= MIN_REGISTERED, JSON.stringify(summary.unregistered))
    assert.equal(built.images.length, summary.registeredImages)
    assert.equal(built.points.xyz.length, 3 * summary.points)
    assert.ok(model.densePoints >= MIN_DENSE_POINTS, `${model.densePoints} dense points`)
    assert.ok(model.surfacePoints > 0, `${model.surfacePoints} surface points`)
    assert.ok(model.surfacePoints <= model.densePoints, `${model.surfacePoints} surface points`)
    assert.ok(model.levels.length >= 2, JSON.stringify(model.levels))
    assert.deepEqual(model.levels.slice(0, 2).map((l) => l.file), ['model.glb', 'model.lod1.glb'])
    const triangles = model.levels.map((l) => l.triangles)
    for (let i = 1; i < triangles.length; i++) {
      assert.ok(triangles[i] < triangles[i - 1], `level ${i} has fewer triangles: ${triangles}`)
    }
    assert.deepEqual(
      files.slice(0, model.levels.length),
      model.levels.map((l) => join(folder, 'out', l.file)),
    )
    for (const name of ['sparse/cameras.txt', 'dense.ply', 'mesh.ply', 'lod/lod0.ply']) {
      assert.ok(files.includes(join(folder, 'work', name)), `${name} in ${files}`)
    }
    for (const file of files) {
      assert.ok(existsSync(file), file)
    }

    for (const [index, level] of model.levels.entries()) {
      const file = files[index]
      const document = glbDocument(readFileSync(file))
      assert.equal(document.asset.version, '2.0')
      assert.ok(document.extensionsRequired?.includes('EXT_meshopt_compression'), file)
      const mesh = await readMesh(file)
      assertMesh(mesh, level.vertices, level.triangles)
      assert.ok(mesh.colors instanceof Uint8Array)
      assert.equal(mesh.colors.length, 3 * level.vertices)
    }
  })

  test('reconstructModel reports every stage in order', () => {
    assert.ok(reports.length > 0)
    const fractions = reports.map(([, fraction]) => fraction)
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b))
    assert.ok(Math.abs(fractions.at(-1) - 1) < 1e-9, `last fraction ${fractions.at(-1)}`)
    const stages = reports.map(([stage]) => STAGES.indexOf(stage))
    assert.ok(stages.every((index) => index >= 0), `stages ${reports.map(([s]) => s)}`)
    assert.deepEqual(stages, [...stages].sort((a, b) => a - b))
    for (const stage of ['registration', 'depth_maps', 'meshing', 'export']) {
      assert.ok(reports.some(([s]) => s === stage), stage)
    }
  })

  test('the stages chain through their files', async () => {
    const stageFolder = join(folder, 'stages')
    const screening = await kai.screenPhotos(photos, { output: join(stageFolder, 'screening.json') })
    assert.equal(screening.accepted.length, SCENE.images)
    assert.deepEqual(screening.rejected, [])
    assert.equal(screening.accepted[0].width, SCENE.width)
    assert.deepEqual(JSON.parse(readFileSync(join(stageFolder, 'screening.json'), 'utf8')), screening)

    const dense = await kai.densify(join(folder, 'work', 'sparse'), photos, join(stageFolder, 'dense.ply'))
    assert.ok(dense.points >= MIN_DENSE_POINTS, `${dense.points} dense points`)
    assert.equal(readFileSync(dense.output).subarray(0, 3).toString(), 'ply')

    const mesh = await kai.meshPoints(dense.output, join(stageFolder, 'mesh.ply'))
    assert.ok(mesh.points > 0, `${mesh.points} mesh points`)
    assert.ok(mesh.points <= dense.points, `${mesh.points} of ${dense.points} dense points`)
    assert.ok(mesh.triangles > 100, `${mesh.triangles} triangles`)
    assertMesh(await readMesh(mesh.output), mesh.vertices, mesh.triangles)

    const levels = await kai.levelsOfDetail(mesh.output, join(stageFolder, 'lod'))
    assert.deepEqual(levels.slice(0, 2).map((l) => l.file), [join(stageFolder, 'lod', 'lod0.ply'), join(stageFolder, 'lod', 'lod1.ply')])
    assert.equal(levels[0].triangles, mesh.triangles)
    assert.ok(levels[1].triangles < levels[0].triangles)

    const exported = await kai.exportModel(join(stageFolder, 'lod'), join(stageFolder, 'out', 'model.glb'), {
      compression: 'none',
    })
    assert.deepEqual(exported.map((f) => f.triangles), levels.map((l) => l.triangles))
    assert.equal(exported[1].file, join(stageFolder, 'out', 'model.lod1.glb'))
    const document = glbDocument(readFileSync(exported[1].file))
    assert.ok(!document.extensionsRequired?.includes('EXT_meshopt_compression'), 'uncompressed')
    const coarse = await readMesh(exported[1].file)
    assertMesh(coarse, levels[1].vertices, levels[1].triangles)
    const fromPly = await readMesh(levels[1].file)
    assert.deepEqual(coarse.triangles, fromPly.triangles)
  })

  test('jobs produce the model files', async () => {
    const job = await kai.submitReconstruction(readdirPhotos(photos), { set: 'standard' })
    assert.equal(job.status, 'queued')
    let finished = job
    const deadline = Date.now() + 600_000
    while (finished.status === 'queued' || finished.status === 'running') {
      assert.ok(Date.now() < deadline, 'the job did not finish within 10 minutes')
      await new Promise((resolve) => setTimeout(resolve, 200))
      finished = await kai.getReconstructionJob(job.id)
    }
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error))
    assert.equal(finished.progress, 1)
    assert.equal(finished.files[0], 'model.glb')
    for (const name of [...SPARSE_FILES, 'model.lod1.glb', 'dense.ply', 'mesh.ply']) {
      assert.ok(finished.files.includes(name), `${name} in ${finished.files}`)
    }
    const { model } = finished.result
    assert.ok(finished.result.registeredImages >= MIN_REGISTERED)
    assert.ok(model.densePoints >= MIN_DENSE_POINTS)
    const jobFolder = join(folder, 'store', 'recon_jobs', job.id)
    for (const [index, level] of model.levels.entries()) {
      assertMesh(await readMesh(join(jobFolder, level.file)), level.vertices, level.triangles)
      assert.equal(level.file, index === 0 ? 'model.glb' : `model.lod${index}.glb`)
    }
    const listed = await kai.listReconstructionJobs()
    assert.deepEqual(listed.find((j) => j.id === job.id), finished)
  })

  test('the stages reject bad input', async () => {
    const missing = join(folder, 'no-such-folder')
    await rejectsWithCode(kai.reconstructModel(missing, join(folder, 'm.glb')), 'KAI_NOT_FOUND', /no-such-folder/)
    await rejectsWithCode(kai.reconstructModel(photos, join(folder, 'model.stl')), 'KAI_INVALID_INPUT', /model\.stl/)
    await rejectsWithCode(kai.reconstructModel(photos, 42), 'KAI_INVALID_INPUT', /output/)
    await rejectsWithCode(
      kai.reconstructModel(photos, join(folder, 'm.glb'), { quality: 'high' }),
      'KAI_INVALID_INPUT',
      /quality/,
    )
    await rejectsWithCode(
      kai.reconstructModel(photos, join(folder, 'm.glb'), { set: 'no-such-set' }),
      'KAI_NOT_FOUND',
      /no-such-set/,
    )
    await rejectsWithCode(kai.screenPhotos(missing), 'KAI_NOT_FOUND', /no-such-folder/)
    await rejectsWithCode(kai.densify(missing, photos, join(folder, 'd.ply')), 'KAI_NOT_FOUND', /sparse model folder/)
    await rejectsWithCode(kai.meshPoints(join(folder, 'missing.ply'), join(folder, 'm.ply')), 'KAI_NOT_FOUND', /missing\.ply/)
    await rejectsWithCode(kai.meshPoints(join(folder, 'work', 'dense.ply'), join(folder, 'm.stl')), 'KAI_INVALID_INPUT', /m\.stl/)
    await rejectsWithCode(kai.levelsOfDetail(missing, join(folder, 'lod')), 'KAI_NOT_FOUND', /no-such-folder/)
    await rejectsWithCode(kai.exportModel(missing, join(folder, 'm.glb')), 'KAI_NOT_FOUND', /no-such-folder/)
    await rejectsWithCode(
      kai.exportModel(join(folder, 'work', 'lod'), join(folder, 'm.glb'), { compression: 'draco' }),
      'KAI_INVALID_INPUT',
      /draco/,
    )

    const notPly = join(folder, 'text.ply')
    writeFileSync(notPly, 'these are not points\n')
    await rejectsWithCode(kai.meshPoints(notPly, join(folder, 'm.ply')), 'KAI_INVALID_INPUT', /text\.ply/)
  })
})

/** Lists the PNG photos of a scene folder. */
function readdirPhotos(dir) {
  return Array.from({ length: SCENE.images }, (_, i) => join(dir, `image_${String(i).padStart(3, '0')}.png`))
}

describe('readMesh and writeMesh', () => {
  let folder
  before(() => {
    folder = tempFolder('kai-node-mesh-')
  })
  after(() => removeFolder(folder))

  test('round trip through every format', async () => {
    const mesh = tetrahedron()
    for (const [name, compression] of [
      ['a.ply', undefined],
      ['a.obj', undefined],
      ['a.glb', 'meshopt'],
      ['b.glb', 'none'],
    ]) {
      const file = join(folder, name)
      await writeMesh(mesh, file, compression ? { compression } : undefined)
      const read = await readMesh(file)
      assertMesh(read, 4, 4)
      assert.deepEqual(canonicalTriangles(read), canonicalTriangles(mesh), name)
      assert.ok(read.colors instanceof Uint8Array, name)
      const expected = colorsByPosition(mesh)
      for (const [position, color] of colorsByPosition(read)) {
        const want = expected.get(position)
        for (let k = 0; k < 3; k++) {
          assert.ok(Math.abs(color[k] - want[k]) <= 1, `${name} colour at ${position}: ${color} vs ${want}`)
        }
      }
    }
    assert.ok(existsSync(join(folder, 'a.mtl')))
    const bare = { positions: tetrahedron().positions, triangles: tetrahedron().triangles }
    await writeMesh(bare, join(folder, 'bare.ply'))
    const read = await readMesh(join(folder, 'bare.ply'))
    assert.equal(read.normals, null)
    assert.equal(read.colors, null)
  })

  test('rejects bad meshes and files', async () => {
    const mesh = tetrahedron()
    const file = join(folder, 'x.ply')
    await rejectsWithCode(writeMesh(mesh, join(folder, 'x.stl')), 'KAI_INVALID_INPUT', /x\.stl/)
    await rejectsWithCode(writeMesh(mesh, join(folder, 'x.glb'), { compression: 'zip' }), 'KAI_INVALID_INPUT', /zip/)
    await rejectsWithCode(
      writeMesh({ ...mesh, positions: new Float32Array(10) }, file),
      'KAI_INVALID_INPUT',
      /mesh\.positions.*10 values/,
    )
    await rejectsWithCode(
      writeMesh({ ...mesh, positions: [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1] }, file),
      'KAI_INVALID_INPUT',
      /mesh\.positions.*Float32Array/,
    )
    await rejectsWithCode(
      writeMesh({ ...mesh, triangles: new Uint32Array([0, 1, 9]) }, file),
      'KAI_INVALID_INPUT',
      /\[0, 1, 9\]/,
    )
    await rejectsWithCode(writeMesh({ positions: mesh.positions }, file), 'KAI_INVALID_INPUT', /mesh\.triangles/)
    await rejectsWithCode(writeMesh('mesh', file), 'KAI_INVALID_INPUT', /mesh/)
    const nan = tetrahedron()
    nan.positions[4] = NaN
    await rejectsWithCode(writeMesh(nan, file), 'KAI_INVALID_INPUT', /not finite/)

    await rejectsWithCode(readMesh(join(folder, 'missing.glb')), 'KAI_NOT_FOUND', /missing\.glb/)
    await rejectsWithCode(readMesh(), 'KAI_INVALID_INPUT', /invalid path: undefined is not plain data/)
    await rejectsWithCode(readMesh(42), 'KAI_INVALID_INPUT', /invalid path: .*expected a string/)
    const broken = join(folder, 'broken.glb')
    const header = Buffer.alloc(24)
    header.write('glTF', 0)
    header.writeUInt32LE(2, 4)
    header.writeUInt32LE(400, 8)
    writeFileSync(broken, header)
    await rejectsWithCode(readMesh(broken), 'KAI_INVALID_INPUT', /broken\.glb/)
    const stl = join(folder, 'mesh.stl')
    writeFileSync(stl, 'solid nothing\nendsolid\n')
    await rejectsWithCode(readMesh(stl), 'KAI_INVALID_INPUT', /mesh\.stl/)
  })
})
