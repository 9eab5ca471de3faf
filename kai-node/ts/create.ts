// `createKai`: picks the in-process native module or the REST client by configuration.

import type { KaiApi, KaiOpenOptions } from './api.js'
import { RemoteKai } from './client.js'
import { type KaiConfig, resolveConfig } from './config.js'

/**
 * Returns kai's API: the native module's `Kai.open(config.native)` by default, or a
 * `RemoteKai` when `useServer` (`USE_MCP_SERVER`) is true. A server that fails its health
 * check (`GET /ready` not 200 within `healthCheckTimeoutMs`, or unreachable) is not used:
 * `createKai` logs one warning through `config.logger` and returns the native module.
 * Rejects with `KAI_INVALID_INPUT` naming an invalid setting.
 */
export async function createKai(config: KaiConfig = {}): Promise<KaiApi> {
  const settings = resolveConfig(config)
  if (!settings.useServer) {
    return openNative(settings.native)
  }
  const remote = new RemoteKai({
    url: settings.serverUrl,
    token: settings.token,
    timeoutMs: settings.requestTimeoutMs,
  })
  const failure = await remote.checkReady(settings.healthCheckTimeoutMs)
  if (failure === null) {
    return remote
  }
  settings.logger(
    `kai: the configured kai-server failed its health check (${failure}); ` +
      'using the in-process native module instead',
  )
  return openNative(settings.native)
}

/** Opens the native module, loading the binary on first use. */
async function openNative(options: KaiOpenOptions): Promise<KaiApi> {
  // Required here rather than imported, so that a program that loads only the client
  // (dist/client.js) never loads the binary, and a loader that requires this file does not
  // form a cycle with it.
  const binding = require('../index.js') as typeof import('../index.js')
  // Returning the native Kai as KaiApi makes tsc check that it has every method of the API.
  return binding.Kai.open(options)
}
