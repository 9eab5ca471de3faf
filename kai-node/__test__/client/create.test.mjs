// Tests createKai's choice between the native module and kai-server, and its fallback to
// the native module when the configured server fails its health check.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'

import {
  closedPort,
  loadDist,
  nativeBinding,
  nativeSkip,
  serverSkip,
  serverUrl,
  signToken,
} from './helpers.mjs'

const { createKai } = nativeSkip && serverSkip ? {} : loadDist('create')
const { RemoteKai } = nativeSkip && serverSkip ? {} : loadDist('client')

// The native module opens an empty store of its own, so these tests never write to the
// store that kai-server serves.
const store = mkdtempSync(join(tmpdir(), 'kai-node-create-'))
after(() => rmSync(store, { recursive: true, force: true }))

/** Returns a logger that keeps its messages. */
function recorder() {
  const messages = []
  const logger = (message) => messages.push(message)
  return { messages, logger }
}

/** Settings that open the native module on the test's own store. */
function nativeConfig(extra = {}) {
  return { native: { store, device: 'cpu' }, ...extra }
}

describe('createKai without a server', { skip: nativeSkip }, () => {
  test('defaults to the native module', async () => {
    const { messages, logger } = recorder()
    const kai = await createKai(nativeConfig({ env: {}, logger }))
    try {
      assert.ok(kai instanceof nativeBinding.Kai, `got ${kai.constructor.name}`)
      const summary = await kai.catalogSummary()
      assert.equal(summary.materials, 0)
      assert.deepEqual(messages, [])
    } finally {
      await kai.close()
    }
  })

  test('USE_MCP_SERVER=false keeps the native module', async () => {
    const { messages, logger } = recorder()
    const kai = await createKai(nativeConfig({ env: { USE_MCP_SERVER: 'false', MCP_SERVER_URL: serverUrl ?? '' }, logger }))
    try {
      assert.ok(kai instanceof nativeBinding.Kai)
      assert.deepEqual(messages, [])
    } finally {
      await kai.close()
    }
  })
})

describe('createKai with a server', { skip: serverSkip }, () => {
  test('USE_MCP_SERVER=true returns RemoteKai', async () => {
    const { messages, logger } = recorder()
    const kai = await createKai({
      env: { USE_MCP_SERVER: 'true', MCP_SERVER_URL: serverUrl, KAI_API_TOKEN: signToken() ?? '' },
      logger,
    })
    assert.ok(kai instanceof RemoteKai, `got ${kai.constructor.name}`)
    assert.equal(kai.url, serverUrl.replace(/\/$/, ''))
    assert.equal((await kai.catalogSummary()).materials, 44)
    assert.deepEqual(messages, [])
  })

  test('config.useServer overrides USE_MCP_SERVER', async () => {
    const kai = await createKai({
      env: { USE_MCP_SERVER: 'false' },
      useServer: true,
      serverUrl,
      token: signToken(),
      logger: () => assert.fail('nothing is logged'),
    })
    assert.ok(kai instanceof RemoteKai)
  })
})

describe('createKai fallback', { skip: nativeSkip }, () => {
  test('closed port falls back and logs once', async () => {
    const port = await closedPort()
    const url = `http://127.0.0.1:${port}`
    const { messages, logger } = recorder()
    const kai = await createKai(nativeConfig({ env: { USE_MCP_SERVER: 'true', MCP_SERVER_URL: url }, logger }))
    try {
      assert.ok(kai instanceof nativeBinding.Kai, `got ${kai.constructor.name}`)
      assert.equal(messages.length, 1, messages.join('\n'))
      assert.match(messages[0], new RegExp(`127\\.0\\.0\\.1:${port}/ready`))
      assert.match(messages[0], /ECONNREFUSED/)
      assert.match(messages[0], /native module/)
      await kai.catalogSummary()
      await kai.listMaterials()
      assert.equal(messages.length, 1, 'later calls log nothing')
    } finally {
      await kai.close()
    }
  })

  test('health check timeout falls back', async () => {
    const sockets = []
    const silent = createServer((socket) => sockets.push(socket))
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { messages, logger } = recorder()
    const started = Date.now()
    try {
      const kai = await createKai(
        nativeConfig({
          env: {
            USE_MCP_SERVER: '1',
            MCP_SERVER_URL: `http://127.0.0.1:${silent.address().port}`,
            MCP_HEALTH_CHECK_TIMEOUT: '300',
          },
          logger,
        }),
      )
      await kai.close()
      assert.ok(kai instanceof nativeBinding.Kai)
      assert.equal(messages.length, 1, messages.join('\n'))
      assert.match(messages[0], /did not answer within 300 ms \(healthCheckTimeoutMs, MCP_HEALTH_CHECK_TIMEOUT\)/)
      assert.ok(Date.now() - started < 10000, 'the check gives up after its timeout')
    } finally {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise((resolve) => silent.close(resolve))
    }
  })

  test('non-200 readiness falls back', { skip: serverSkip }, async () => {
    // Below an unknown base path the server returns 404 for /ready.
    const { messages, logger } = recorder()
    const kai = await createKai(
      nativeConfig({ useServer: true, serverUrl: `${serverUrl.replace(/\/$/, '')}/no-such-prefix`, logger }),
    )
    try {
      assert.ok(kai instanceof nativeBinding.Kai)
      assert.equal(messages.length, 1, messages.join('\n'))
      assert.match(messages[0], /no-such-prefix\/ready/)
    } finally {
      await kai.close()
    }
  })

  test('default logger is console.warn', async () => {
    const port = await closedPort()
    const warnings = []
    const original = console.warn
    console.warn = (...args) => warnings.push(args.join(' '))
    try {
      const kai = await createKai(
        nativeConfig({ env: { USE_MCP_SERVER: 'true', MCP_SERVER_URL: `http://127.0.0.1:${port}` } }),
      )
      await kai.close()
    } finally {
      console.warn = original
    }
    assert.equal(warnings.length, 1, warnings.join('\n'))
    assert.match(warnings[0], /failed its health check/)
  })
})
