// Tests the settings of createKai and RemoteKai: defaults, environment variables, config
// fields overriding them, and the errors for invalid values. No server is needed.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { distSkip, loadDist, rejectsWith } from './helpers.mjs'

const skip = distSkip
const config = skip ? {} : loadDist('config')
const { RemoteKai } = skip ? {} : loadDist('client')
const { createKai } = skip ? {} : loadDist('create')

/** Asserts that resolving `options` throws KAI_INVALID_INPUT naming `name`. */
function assertInvalid(options, name) {
  assert.throws(
    () => config.resolveConfig(options),
    (err) => {
      assert.equal(err.code, 'KAI_INVALID_INPUT')
      assert.ok(err.message.startsWith(`invalid ${name}:`), err.message)
      return true
    },
  )
}

describe('resolveConfig', { skip }, () => {
  test('rejects misspelt fields', () => {
    assertInvalid({ useMcpServer: true, env: {} }, 'config.useMcpServer')
    assertInvalid(null, 'config')
  })

  test('defaults without environment', () => {
    const settings = config.resolveConfig({ env: {} })
    assert.equal(settings.useServer, false)
    assert.equal(settings.serverUrl.href, 'http://localhost:8000/')
    assert.equal(settings.healthCheckTimeoutMs, 5000)
    assert.equal(settings.requestTimeoutMs, 120000)
    assert.equal(settings.token, undefined)
    assert.deepEqual(settings.native, {})
    assert.equal(typeof settings.logger, 'function')
  })

  test('reads the environment variables', () => {
    const settings = config.resolveConfig({
      env: {
        USE_MCP_SERVER: 'TRUE',
        MCP_SERVER_URL: 'https://kai.example.test:9000/kai/',
        MCP_HEALTH_CHECK_TIMEOUT: '250',
        KAI_REQUEST_TIMEOUT_MS: '30000',
        KAI_API_TOKEN: ' abc.def.ghi\n',
      },
    })
    assert.equal(settings.useServer, true)
    assert.equal(settings.serverUrl.href, 'https://kai.example.test:9000/kai/')
    assert.equal(settings.healthCheckTimeoutMs, 250)
    assert.equal(settings.requestTimeoutMs, 30000)
    assert.equal(settings.token, 'abc.def.ghi')
  })

  test('reads process.env by default', () => {
    const saved = process.env.MCP_HEALTH_CHECK_TIMEOUT
    process.env.MCP_HEALTH_CHECK_TIMEOUT = '1234'
    try {
      assert.equal(config.resolveConfig().healthCheckTimeoutMs, 1234)
    } finally {
      if (saved === undefined) {
        delete process.env.MCP_HEALTH_CHECK_TIMEOUT
      } else {
        process.env.MCP_HEALTH_CHECK_TIMEOUT = saved
      }
    }
  })

  test('boolean spellings of USE_MCP_SERVER', () => {
    for (const [text, expected] of [
      ['true', true],
      ['1', true],
      ['yes', true],
      ['On', true],
      ['false', false],
      ['0', false],
      ['no', false],
      ['OFF', false],
    ]) {
      assert.equal(config.resolveConfig({ env: { USE_MCP_SERVER: text } }).useServer, expected, text)
    }
  })

  test('config fields override the environment', () => {
    const env = {
      USE_MCP_SERVER: 'true',
      MCP_SERVER_URL: 'http://env.example.test:1',
      MCP_HEALTH_CHECK_TIMEOUT: '9',
      KAI_API_TOKEN: 'from-env',
    }
    const settings = config.resolveConfig({
      env,
      useServer: false,
      serverUrl: new URL('http://127.0.0.1:8123'),
      healthCheckTimeoutMs: 77,
      token: 'from-config',
      native: { store: '/tmp/store' },
    })
    assert.equal(settings.useServer, false)
    assert.equal(settings.serverUrl.href, 'http://127.0.0.1:8123/')
    assert.equal(settings.healthCheckTimeoutMs, 77)
    assert.equal(settings.token, 'from-config')
    assert.deepEqual(settings.native, { store: '/tmp/store' })
  })

  test('empty variables count as unset', () => {
    const settings = config.resolveConfig({
      env: { USE_MCP_SERVER: '', MCP_SERVER_URL: ' ', MCP_HEALTH_CHECK_TIMEOUT: '' },
    })
    assert.equal(settings.useServer, false)
    assert.equal(settings.serverUrl.href, 'http://localhost:8000/')
    assert.equal(settings.healthCheckTimeoutMs, 5000)
  })

  test('invalid variables are named', () => {
    assertInvalid({ env: { USE_MCP_SERVER: 'maybe' } }, 'USE_MCP_SERVER')
    assertInvalid({ env: { MCP_SERVER_URL: 'localhost:8000' } }, 'MCP_SERVER_URL')
    assertInvalid({ env: { MCP_SERVER_URL: 'not a url' } }, 'MCP_SERVER_URL')
    assertInvalid({ env: { MCP_SERVER_URL: 'ftp://127.0.0.1/' } }, 'MCP_SERVER_URL')
    assertInvalid({ env: { MCP_SERVER_URL: 'http://127.0.0.1:8000/?x=1' } }, 'MCP_SERVER_URL')
    assertInvalid({ env: { MCP_HEALTH_CHECK_TIMEOUT: '0' } }, 'MCP_HEALTH_CHECK_TIMEOUT')
    assertInvalid({ env: { MCP_HEALTH_CHECK_TIMEOUT: '-5' } }, 'MCP_HEALTH_CHECK_TIMEOUT')
    assertInvalid({ env: { MCP_HEALTH_CHECK_TIMEOUT: '1.5' } }, 'MCP_HEALTH_CHECK_TIMEOUT')
    assertInvalid({ env: { MCP_HEALTH_CHECK_TIMEOUT: '5s' } }, 'MCP_HEALTH_CHECK_TIMEOUT')
    assertInvalid({ env: { MCP_HEALTH_CHECK_TIMEOUT: '9999999999' } }, 'MCP_HEALTH_CHECK_TIMEOUT')
    assertInvalid({ env: { KAI_REQUEST_TIMEOUT_MS: 'soon' } }, 'KAI_REQUEST_TIMEOUT_MS')
    assertInvalid({ env: { KAI_API_TOKEN: 'two words' } }, 'KAI_API_TOKEN')
  })

  test('invalid config fields are named', () => {
    assertInvalid({ env: {}, useServer: 'yes please' }, 'config.useServer')
    assertInvalid({ env: {}, serverUrl: 8000 }, 'config.serverUrl')
    assertInvalid({ env: {}, healthCheckTimeoutMs: -1 }, 'config.healthCheckTimeoutMs')
    assertInvalid({ env: {}, healthCheckTimeoutMs: Number.NaN }, 'config.healthCheckTimeoutMs')
    assertInvalid({ env: {}, requestTimeoutMs: '100' }, 'config.requestTimeoutMs')
    assertInvalid({ env: {}, token: '' }, 'config.token')
    assertInvalid({ env: {}, native: 'store' }, 'config.native')
    assertInvalid({ env: {}, logger: 'console' }, 'config.logger')
    assertInvalid('USE_MCP_SERVER=true', 'config')
  })

  test('the token is not shown in errors', () => {
    assert.throws(
      () => config.resolveConfig({ env: { KAI_API_TOKEN: 'secret value' } }),
      (err) => !err.message.includes('secret'),
    )
  })
})

describe('RemoteKai options', { skip }, () => {
  test('invalid options are named', () => {
    for (const [options, name] of [
      [{ url: 'localhost' }, 'url'],
      [{ timeoutMs: 0 }, 'timeoutMs'],
      [{ token: 'a b' }, 'token'],
    ]) {
      assert.throws(
        () => new RemoteKai(options),
        (err) => err.code === 'KAI_INVALID_INPUT' && err.message.startsWith(`invalid ${name}:`),
      )
    }
  })

  test('keeps a base path', () => {
    assert.equal(new RemoteKai({ url: 'http://127.0.0.1:9/kai/' }).url, 'http://127.0.0.1:9/kai')
    assert.equal(new RemoteKai().url, 'http://localhost:8000')
  })
})

describe('createKai settings', { skip }, () => {
  test('rejects invalid settings before connecting', async () => {
    const messages = []
    await rejectsWith(
      createKai({ env: { USE_MCP_SERVER: 'true', MCP_HEALTH_CHECK_TIMEOUT: 'never' }, logger: (m) => messages.push(m) }),
      'KAI_INVALID_INPUT',
    )
    assert.deepEqual(messages, [])
  })
})
