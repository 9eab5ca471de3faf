// Tests how RemoteKai reports failures: kai-server's error bodies become Errors with the
// body's code and the HTTP status, and bad input, network failures and timeouts get codes
// of their own.
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { describe, test } from 'node:test'

import { closedPort, jwtSecret, photo, rejectsWith, remote, serverSkip, signToken } from './helpers.mjs'

const skip = serverSkip
const kai = skip ? undefined : remote()
const PLANKS = photo('altered-red-brown-plank-floor.jpg')

describe('error responses', { skip }, () => {
  test('404 is KAI_NOT_FOUND', async () => {
    await rejectsWith(kai.materialHistory('no-such-material'), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.getParameters('no-such-set'), 'KAI_NOT_FOUND', 404)
    await rejectsWith(kai.loadModel('no-such-model'), 'KAI_NOT_FOUND', 404)
    await assert.rejects(kai.materialHistory('no-such-material'), /no-such-material/)
  })

  test('409 is KAI_CONFLICT', async () => {
    const existing = { id: 'red-brown-plank-floor', name: 'Duplicate', materialType: 'wood' }
    await rejectsWith(kai.createMaterial(existing), 'KAI_CONFLICT', 409)
    await rejectsWith(kai.replaceMaterial(existing, [], { expectVersion: 99 }), 'KAI_CONFLICT', 409)
    await rejectsWith(
      kai.setParameters('standard', { 'recognition.top_k': 6 }, { expectVersion: 99 }),
      'KAI_CONFLICT',
      409,
    )
    const material = await kai.getMaterial('red-brown-plank-floor')
    assert.equal(material.name, 'Red-brown plank flooring', 'a rejected write changes nothing')
  })

  test('400 is KAI_INVALID_INPUT', async () => {
    await rejectsWith(kai.searchMaterials({ query: 'oak', topK: 0 }), 'KAI_INVALID_INPUT', 400)
    await rejectsWith(kai.listMaterials({ limit: 0 }), 'KAI_INVALID_INPUT', 400)
    await rejectsWith(kai.recognize(Buffer.from('not a photo')), 'KAI_INVALID_INPUT', 400)
    await rejectsWith(kai.embedText([]), 'KAI_INVALID_INPUT', 400)
  })

  test('413 is KAI_INVALID_INPUT', async () => {
    await rejectsWith(kai.embedText(['x'.repeat(64 * 1024 + 1)]), 'KAI_INVALID_INPUT', 413)
  })

  test('413 for a photo over KAI_MAX_IMAGE_BYTES', async () => {
    // The script starts the server with KAI_MAX_IMAGE_BYTES=1000000. The server rejects the
    // photo part way through and reads the rest of the upload, so the 413 arrives intact.
    for (const size of [1_000_001, 8_000_000]) {
      await rejectsWith(kai.classifyTexture(Buffer.alloc(size)), 'KAI_INVALID_INPUT', 413)
    }
  })

  test('422 is KAI_INVALID_INPUT', async () => {
    await rejectsWith(kai.embedImages([]), 'KAI_INVALID_INPUT', 422)
    await rejectsWith(kai.assessQuality(PLANKS, { minSharpnes: 10 }), 'KAI_INVALID_INPUT', 422)
  })

  test('401 is KAI_UNAUTHORIZED', { skip: jwtSecret ? false : 'the server has no JWT_SECRET' }, async () => {
    await rejectsWith(remote({ token: undefined }).catalogSummary(), 'KAI_UNAUTHORIZED', 401)
    const forged = signToken('another secret that is long enough to sign with')
    await rejectsWith(remote({ token: forged }).catalogSummary(), 'KAI_UNAUTHORIZED', 401)
    const expired = signToken(jwtSecret, -3600)
    await rejectsWith(remote({ token: expired }).listModels(), 'KAI_UNAUTHORIZED', 401)
    const report = await remote({ token: undefined }).health()
    assert.equal(report.status, 'ready', '/ready needs no token')
  })
})

describe('client-side failures', { skip }, () => {
  test('unreachable server is KAI_UNAVAILABLE', async () => {
    const port = await closedPort()
    const offline = remote({ url: `http://127.0.0.1:${port}` })
    await assert.rejects(offline.catalogSummary(), (err) => {
      assert.equal(err.code, 'KAI_UNAVAILABLE')
      assert.equal(err.status, undefined)
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
      assert.match(err.message, /ECONNREFUSED/)
      return true
    })
    assert.match(await offline.checkReady(1000), /ECONNREFUSED/)
  })

  test('slow response is KAI_TIMEOUT', async () => {
    // A listener that accepts connections and never responds, as a hung server does.
    const sockets = []
    const silent = createServer((socket) => sockets.push(socket))
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const hung = remote({ url: `http://127.0.0.1:${silent.address().port}`, timeoutMs: 200 })
      const started = Date.now()
      await assert.rejects(hung.recognize(PLANKS), (err) => {
        assert.equal(err.code, 'KAI_TIMEOUT')
        assert.match(err.message, /200 ms/)
        return true
      })
      assert.ok(Date.now() - started < 5000)
    } finally {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise((resolve) => silent.close(resolve))
    }
  })

  test('invalid images are rejected before sending', async () => {
    await rejectsWith(kai.recognize(42), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.embedImages([PLANKS, { path: PLANKS }]), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.embedImages(PLANKS), 'KAI_INVALID_INPUT')
    await assert.rejects(kai.recognize(42), /invalid image 1/)
  })

  test('unreadable photo file is KAI_STORAGE', async () => {
    await rejectsWith(kai.recognize('/nonexistent/photo.jpg'), 'KAI_STORAGE')
    await assert.rejects(kai.recognize('/nonexistent/photo.jpg'), /cannot open \/nonexistent\/photo\.jpg/)
  })

  test('empty ids are rejected', async () => {
    await rejectsWith(kai.getMaterial(''), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.deleteMaterial(' '), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.replaceMaterial({ name: 'no id', materialType: 'wood' }), 'KAI_INVALID_INPUT')
    await rejectsWith(kai.getParameters(''), 'KAI_INVALID_INPUT')
  })

  test('methods reject instead of throwing', () => {
    const pending = kai.recognize(42)
    assert.ok(pending instanceof Promise)
    return assert.rejects(pending)
  })
})
