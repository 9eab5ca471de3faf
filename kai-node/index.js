// Loads the native module kai.node, which `node kai-node/scripts/build-native.mjs` builds
// and copies beside this file. The exports are listed one by one, because Node finds the
// named exports of a CommonJS file for `import` by reading its source, and a `.node`
// file's exports are not visible that way.
'use strict'

let binding
try {
  binding = require('./kai.node')
} catch (err) {
  if (err.code === 'MODULE_NOT_FOUND') {
    err.message += '; build it with `node kai-node/scripts/build-native.mjs`'
  }
  throw err
}

module.exports.Kai = binding.Kai
module.exports.TextEmbedder = binding.TextEmbedder
module.exports.generateScene = binding.generateScene
module.exports.readMesh = binding.readMesh
module.exports.writeMesh = binding.writeMesh
