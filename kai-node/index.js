// Loads the native module that `scripts/build-node` copies beside this file.
'use strict'

module.exports = require('./kai.node')
