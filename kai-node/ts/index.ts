// The package entry: the native module's classes, `createKai`, the REST client `RemoteKai`
// and the API's types.

export * from '../index.js'
export type * from './api.js'
export { createKai } from './create.js'
export { MAX_IMAGES_PER_REQUEST, MAX_TEXTS_PER_REQUEST, RemoteKai, type RemoteKaiOptions } from './client.js'
export {
  DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SERVER_URL,
  type KaiConfig,
  type Logger,
  type ResolvedConfig,
  resolveConfig,
} from './config.js'
export { isKaiError } from './errors.js'
export { DEFAULT_RECON_POLL_INTERVAL_MS, waitForReconstruction } from './recon.js'
