// The package entry for `import`: the named exports of the CommonJS entry, which Node finds
// by reading dist/index.js and the files it re-exports.
export * from './dist/index.js'
