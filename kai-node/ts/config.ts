// Reads the settings of `createKai` and `RemoteKai`: the fields of a config object, else
// the environment variables, else the defaults. Invalid values reject with
// `KAI_INVALID_INPUT` naming the field or the variable.

import type { KaiOpenOptions } from './api.js'
import { kaiError } from './errors.js'

/** kai-server's address when neither `serverUrl` nor `MCP_SERVER_URL` is set. */
export const DEFAULT_SERVER_URL = 'http://localhost:8000'
/** Milliseconds the start-up health check waits for `GET /ready` by default. */
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 5_000
/**
 * Milliseconds one REST request may take by default. Reindexing or training a head on a
 * large catalog takes longer, so raise the timeout for those.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000
/** The maximum timer delay Node supports. Longer delays fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** Receives the messages that `createKai` logs, such as the fallback warning. */
export type Logger = (message: string) => void

/** The settings of `createKai`. Each field overrides its environment variable. */
export interface KaiConfig {
  /** Use kai-server's REST API instead of the native module (`USE_MCP_SERVER`, default false). */
  useServer?: boolean
  /** kai-server's base URL (`MCP_SERVER_URL`, default http://localhost:8000). */
  serverUrl?: string | URL
  /** Milliseconds the start-up `GET /ready` may take (`MCP_HEALTH_CHECK_TIMEOUT`, default 5000). */
  healthCheckTimeoutMs?: number
  /** Milliseconds each REST request may take (`KAI_REQUEST_TIMEOUT_MS`, default 120000). */
  requestTimeoutMs?: number
  /** A bearer token for a server that sets `JWT_SECRET` (`KAI_API_TOKEN`). */
  token?: string
  /** The options of the native module's `Kai.open`. */
  native?: KaiOpenOptions
  /** Receives log messages (default `console.warn`). */
  logger?: Logger
  /** The environment variables to read (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>
}

/** The fields of `KaiConfig`, for rejecting misspelt ones. */
const CONFIG_FIELDS: readonly string[] = [
  'useServer',
  'serverUrl',
  'healthCheckTimeoutMs',
  'requestTimeoutMs',
  'token',
  'native',
  'logger',
  'env',
]

/** The settings after defaults and validation. */
export interface ResolvedConfig {
  useServer: boolean
  serverUrl: URL
  healthCheckTimeoutMs: number
  requestTimeoutMs: number
  token: string | undefined
  native: KaiOpenOptions
  logger: Logger
}

/**
 * Resolves `config` against the environment and the defaults. An environment variable
 * that is set to an empty string counts as unset.
 * Throws an error with code `KAI_INVALID_INPUT` naming the first invalid value.
 */
export function resolveConfig(config: KaiConfig = {}): ResolvedConfig {
  if (typeof config !== 'object' || config === null) {
    throw invalid('config', `expected an object, got ${config === null ? 'null' : typeof config}`)
  }
  // A misspelt field (say `useMcpServer` for `useServer`) would otherwise leave the
  // default in place without a word, and the program would quietly run in-process.
  const unknown = Object.keys(config).filter((key) => !CONFIG_FIELDS.includes(key))
  if (unknown.length > 0) {
    throw invalid(`config.${unknown[0]}`, `is not a setting; the settings are ${CONFIG_FIELDS.join(', ')}`)
  }
  const env = config.env ?? process.env
  // A config field must have its declared type, while a variable is text to parse.
  const setting = (field: keyof KaiConfig, variable: string, type: string): Setting => {
    const value = config[field]
    if (value !== undefined) {
      const name = `config.${field}`
      const matches = type === 'URL' ? typeof value === 'string' || value instanceof URL : typeof value === type
      if (!matches) {
        throw invalid(name, `expected a ${type === 'URL' ? 'URL or string' : type}, got ${typeof value}`)
      }
      return { name, value }
    }
    const text = env[variable]
    return { name: variable, value: text === undefined || text.trim() === '' ? undefined : text }
  }

  const useServer = setting('useServer', 'USE_MCP_SERVER', 'boolean')
  const serverUrl = setting('serverUrl', 'MCP_SERVER_URL', 'URL')
  const healthTimeout = setting('healthCheckTimeoutMs', 'MCP_HEALTH_CHECK_TIMEOUT', 'number')
  const requestTimeout = setting('requestTimeoutMs', 'KAI_REQUEST_TIMEOUT_MS', 'number')
  const token = setting('token', 'KAI_API_TOKEN', 'string')
  if (config.native !== undefined && (typeof config.native !== 'object' || config.native === null)) {
    throw invalid('config.native', `expected an object of Kai.open options, got ${typeof config.native}`)
  }
  if (config.logger !== undefined && typeof config.logger !== 'function') {
    throw invalid('config.logger', `expected a function, got ${typeof config.logger}`)
  }
  return {
    useServer: useServer.value === undefined ? false : parseBoolean(useServer.name, useServer.value),
    serverUrl: parseServerUrl(serverUrl.name, serverUrl.value ?? DEFAULT_SERVER_URL),
    healthCheckTimeoutMs: parseMillis(healthTimeout.name, healthTimeout.value ?? DEFAULT_HEALTH_CHECK_TIMEOUT_MS),
    requestTimeoutMs: parseMillis(requestTimeout.name, requestTimeout.value ?? DEFAULT_REQUEST_TIMEOUT_MS),
    token: token.value === undefined ? undefined : parseToken(token.name, token.value),
    native: config.native ?? {},
    logger: config.logger ?? ((message: string) => console.warn(message)),
  }
}

/** A value with the name of the field or variable it came from. */
interface Setting {
  name: string
  value: unknown
}

/** Parses a boolean: `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off` in any case. */
export function parseBoolean(name: string, value: unknown): boolean {
  if (typeof value === 'boolean') {
    return value
  }
  if (typeof value === 'string') {
    switch (value.trim().toLowerCase()) {
      case 'true':
      case '1':
      case 'yes':
      case 'on':
        return true
      case 'false':
      case '0':
      case 'no':
      case 'off':
        return false
    }
  }
  throw invalid(name, `must be true or false, got ${show(value)}`)
}

/** Parses an http or https URL, keeping a path below the host (as behind a proxy). */
export function parseServerUrl(name: string, value: unknown): URL {
  if (typeof value !== 'string' && !(value instanceof URL)) {
    throw invalid(name, `must be a URL string, got ${show(value)}`)
  }
  let url: URL
  try {
    url = new URL(typeof value === 'string' ? value.trim() : value.href)
  } catch {
    throw invalid(name, `must be an http or https URL such as ${DEFAULT_SERVER_URL}, got ${show(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(name, `must use http or https, got ${url.protocol.replace(/:$/, '')} in ${show(value)}`)
  }
  if (url.search !== '' || url.hash !== '') {
    throw invalid(name, `must not have a query or fragment, got ${show(value)}`)
  }
  return url
}

/** Parses a whole number of milliseconds from 1 to 2^31 − 1. */
export function parseMillis(name: string, value: unknown): number {
  const number = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > MAX_TIMEOUT_MS) {
    throw invalid(name, `must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, got ${show(value)}`)
  }
  return number
}

/** Checks a bearer token: visible ASCII characters without spaces, as a header allows. */
export function parseToken(name: string, value: unknown): string {
  const token = typeof value === 'string' ? value.trim() : value
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    // The token is a secret, so the message never shows it.
    throw invalid(name, 'must be a non-empty token of visible ASCII characters without spaces')
  }
  return token
}

function invalid(name: string, reason: string): Error {
  return kaiError('KAI_INVALID_INPUT', `invalid ${name}: ${reason}`)
}

/** Shows a rejected value in a message, shortened. */
function show(value: unknown): string {
  const text = typeof value === 'string' ? `\`${value}\`` : String(value)
  return text.length > 100 ? `${text.slice(0, 100)}…` : text
}
