// Tests that the package loads by its name, `kai`, with `require` and with `import`. Inside
// kai-node, Node resolves the name to this package through its `exports` map, whose entry
// dist/index.js is the TypeScript client's build output (`tsc -p kai-node`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

test('TypeScript entry is built', () => {
  assert.ok(
    existsSync(join(packageDir, 'dist', 'index.js')),
    'kai-node/dist/index.js is missing; build it with `tsc -p kai-node`',
  )
})

test('require loads the package', () => {
  const kai = require('kai')
  assert.equal(require.resolve('kai'), join(packageDir, 'dist', 'index.js'))
  assert.equal(typeof kai.Kai.open, 'function')
  assert.equal(typeof kai.TextEmbedder.load, 'function')
  assert.equal(typeof kai.createKai, 'function')
  assert.equal(kai.Kai, require('../index.js').Kai)
})

test('import loads the package', async () => {
  const kai = await import('kai')
  assert.equal(typeof kai.Kai.open, 'function')
  assert.equal(typeof kai.TextEmbedder.load, 'function')
  assert.equal(typeof kai.createKai, 'function')
  assert.equal(kai.Kai, require('kai').Kai)
})
