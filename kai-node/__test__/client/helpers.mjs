// Shared set-up of the client tests: the compiled client in kai-node/dist, the kai-server
// that scripts/test_node_client.sh starts, bearer tokens for it, and the native module.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export { cosine } from '../vectors.mjs'

const require = createRequire(import.meta.url)
const testFolder = dirname(fileURLToPath(import.meta.url))

/** The kai-node folder. */
export const packageRoot = join(testFolder, '..', '..')
/** The repository root. */
export const repoRoot = join(packageRoot, '..')

const dist = join(packageRoot, 'dist')

/** Why the client tests cannot run, or false. */
export const distSkip = existsSync(join(dist, 'index.js'))
  ? false
  : 'kai-node/dist is not built; run scripts/test_node_client.sh, which compiles kai-node/ts with tsc'

/** The URL of the kai-server under test. */
export const serverUrl = process.env.KAI_TEST_SERVER_URL

/** Why the tests against kai-server cannot run, or false. */
export const serverSkip =
  distSkip ||
  (serverUrl
    ? false
    : 'KAI_TEST_SERVER_URL is not set; run scripts/test_node_client.sh, which starts kai-server on 127.0.0.1')

/** The server's JWT_SECRET, when the script started it with one. */
export const jwtSecret = process.env.KAI_TEST_JWT_SECRET

/** The store folder the server serves, for the native module to open as well. */
export const serverStore = process.env.KAI_TEST_STORE

/** Loads a compiled module of the client, such as `client` or `config`. */
export function loadDist(name) {
  return require(join(dist, `${name}.js`))
}

/** Loads the native binding, or returns the reason it cannot be loaded. */
function loadNative() {
  try {
    const binding = require(join(packageRoot, 'index.js'))
    if (typeof binding.Kai?.open !== 'function') {
      return { reason: 'the native module has no Kai class yet; build kai-node with `Kai` and run again' }
    }
    return { binding }
  } catch (err) {
    return { reason: `the native module does not load (${err.message}); build kai-node/kai.node first` }
  }
}

const native = loadNative()

/** The native binding (`Kai`, `TextEmbedder`), or undefined. */
export const nativeBinding = native.binding

/** Why the tests that need the native `Kai` cannot run, or false. */
export const nativeSkip = distSkip || (native.binding ? false : native.reason)

/** Returns an HS256 JSON Web Token signed with `secret` that expires in `seconds`. */
export function signToken(secret = jwtSecret, seconds = 3600) {
  if (secret === undefined) {
    return undefined
  }
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const header = encode({ alg: 'HS256', typ: 'JWT' })
  const claims = encode({ sub: 'kai-node-client-tests', exp: Math.floor(Date.now() / 1000) + seconds })
  const signature = createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url')
  return `${header}.${claims}.${signature}`
}

/** Returns a RemoteKai for the server under test, with a valid token when it needs one. */
export function remote(options = {}) {
  const { RemoteKai } = loadDist('client')
  return new RemoteKai({ url: serverUrl, token: signToken(), ...options })
}

/** Returns the path of a photo in examples/queries or examples/catalog/images. */
export function photo(name) {
  const query = join(repoRoot, 'examples', 'queries', name)
  return existsSync(query) ? query : join(repoRoot, 'examples', 'catalog', 'images', name)
}

/** Returns a TCP port of 127.0.0.1 that nothing listens on. */
export async function closedPort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Asserts that `promise` rejects with an Error of `code`, and of HTTP `status` when given. */
export async function rejectsWith(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${err}`)
    assert.equal(err.code, code, `code of: ${err.message}`)
    if (status !== undefined) {
      assert.equal(err.status, status, `status of: ${err.message}`)
    }
    return true
  })
}
