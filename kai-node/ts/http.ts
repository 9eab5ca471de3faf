// Sends requests to kai-server with Node's global fetch and turns its error bodies,
// network failures and timeouts into `KaiError`s.

import type { KaiErrorCode } from './api.js'
import { isKaiErrorCode, kaiError } from './errors.js'

/** A query parameter value. An array repeats the parameter and undefined leaves it out. */
export type QueryValue = string | number | boolean | undefined | readonly string[]

/** One request to kai-server. */
export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** The route, such as `/api/materials`, below the server URL's path. */
  path: string
  query?: Record<string, QueryValue>
  /** A body sent as JSON. */
  json?: unknown
  /** A body sent as `multipart/form-data`. */
  form?: FormData
  /** Error statuses that resolve with their body instead of rejecting, such as 503 of `/ready`. */
  accept?: readonly number[]
}

/** A response with its parsed JSON body. */
export interface ApiResponse {
  status: number
  body: unknown
}

/** The connection settings of a transport. */
export interface TransportOptions {
  /** The server's base URL. Routes are resolved below its path. */
  url: URL
  /** A bearer token for servers that set `JWT_SECRET`. */
  token?: string
  /** Milliseconds one request may take, body included. */
  timeoutMs: number
}

/** Error codes for HTTP statuses whose response has no kai error body. */
const STATUS_CODES: ReadonlyMap<number, KaiErrorCode> = new Map([
  [401, 'KAI_UNAUTHORIZED'],
  [403, 'KAI_FORBIDDEN'],
  [404, 'KAI_NOT_FOUND'],
  [409, 'KAI_CONFLICT'],
  [429, 'KAI_RATE_LIMITED'],
  [501, 'KAI_NOT_SUPPORTED'],
  [502, 'KAI_UNAVAILABLE'],
  [503, 'KAI_UNAVAILABLE'],
  [504, 'KAI_UNAVAILABLE'],
])

/** Sends requests to one kai-server. */
export class Transport {
  readonly #base: string
  readonly #token: string | undefined
  readonly #timeoutMs: number

  constructor(options: TransportOptions) {
    // A base path such as `/kai` behind a proxy is kept, and routes are appended to it.
    this.#base = options.url.href.replace(/\/+$/, '')
    this.#token = options.token
    this.#timeoutMs = options.timeoutMs
  }

  /** The server's base URL, without a trailing slash. */
  get baseUrl(): string {
    return this.#base
  }

  /**
   * Sends a request and resolves to its status and JSON body. Rejects with the server's
   * error for an error status that `spec.accept` does not list, with `KAI_UNAVAILABLE`
   * when the server cannot be reached, and with `KAI_TIMEOUT` after `timeoutMs`
   * (default: the transport's).
   */
  async send(spec: RequestSpec, timeoutMs = this.#timeoutMs): Promise<ApiResponse> {
    const url = this.#base + spec.path + queryString(spec.query)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token !== undefined) {
      headers.authorization = `Bearer ${this.#token}`
    }
    let body: string | FormData | undefined
    if (spec.form !== undefined) {
      // fetch sets the multipart Content-Type with its boundary itself.
      body = spec.form
    } else if (spec.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(spec.json)
    }
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      const response = await fetch(url, { method: spec.method, headers, body, signal })
      const text = await response.text()
      const parsed = parseBody(text, response.headers.get('content-type'))
      if (response.status >= 400 && !(spec.accept ?? []).includes(response.status)) {
        throw responseError(spec, response, parsed, text)
      }
      return { status: response.status, body: parsed }
    } catch (err) {
      throw networkError(err, spec, url, timeoutMs)
    }
  }

  /** Sends a request and resolves to its JSON body, or rejects on an error status. */
  async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(spec)
    return response.body as T
  }

  /**
   * Sends a request without a body and resolves to the response body as bytes, such as a
   * downloaded file. Rejects as `send` does.
   */
  async bytes(spec: RequestSpec, timeoutMs = this.#timeoutMs): Promise<Uint8Array> {
    const url = this.#base + spec.path + queryString(spec.query)
    const headers: Record<string, string> = {}
    if (this.#token !== undefined) {
      headers.authorization = `Bearer ${this.#token}`
    }
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      const response = await fetch(url, { method: spec.method, headers, signal })
      if (response.status >= 400) {
        const text = await response.text()
        throw responseError(spec, response, parseBody(text, response.headers.get('content-type')), text)
      }
      return new Uint8Array(await response.arrayBuffer())
    } catch (err) {
      throw networkError(err, spec, url, timeoutMs)
    }
  }
}

/** Builds `?a=1&tag=x&tag=y` from the defined values, or an empty string. */
function queryString(query: Record<string, QueryValue> | undefined): string {
  if (query === undefined) {
    return ''
  }
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) {
      continue
    }
    if (Array.isArray(value)) {
      for (const item of value) {
        params.append(name, item)
      }
    } else {
      params.append(name, String(value))
    }
  }
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

/** Parses a JSON body. Other bodies, such as a proxy's HTML page, are returned as text. */
function parseBody(text: string, contentType: string | null): unknown {
  if (text === '') {
    return undefined
  }
  if (contentType !== null && /[/+]json\b/i.test(contentType)) {
    try {
      return JSON.parse(text) as unknown
    } catch {
      return text
    }
  }
  return text
}

/** Converts an error response: kai's `{"error": {"code", "message"}}` body, else the status. */
function responseError(spec: RequestSpec, response: Response, body: unknown, text: string): Error {
  const status = response.status
  const detail = errorDetail(body)
  const retryAfter = Number(response.headers.get('retry-after'))
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined
  if (detail !== undefined) {
    return kaiError(detail.code, detail.message, { status, retryAfterSeconds })
  }
  const code = STATUS_CODES.get(status) ?? (status < 500 ? 'KAI_INVALID_INPUT' : 'KAI_INTERNAL')
  const excerpt = text.length > 200 ? `${text.slice(0, 200)}…` : text
  return kaiError(
    code,
    `${spec.method} ${spec.path} failed with HTTP ${status} ${response.statusText}` +
      (excerpt === '' ? '' : `: ${excerpt}`),
    { status, retryAfterSeconds },
  )
}

/** Returns the code and message of kai's error body, if `body` is one with a known code. */
function errorDetail(body: unknown): { code: KaiErrorCode; message: string } | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined
  }
  const error = (body as { error?: unknown }).error
  if (typeof error !== 'object' || error === null) {
    return undefined
  }
  const { code, message } = error as { code?: unknown; message?: unknown }
  if (!isKaiErrorCode(code) || typeof message !== 'string') {
    return undefined
  }
  return { code, message }
}

/** Converts a failure of fetch itself. Errors built by `responseError` pass unchanged. */
function networkError(err: unknown, spec: RequestSpec, url: string, timeoutMs: number): unknown {
  if (err instanceof Error && 'code' in err && isKaiErrorCode(err.code)) {
    return err
  }
  const request = `${spec.method} ${url}`
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return kaiError(
      'KAI_TIMEOUT',
      `${request} timed out after ${timeoutMs} ms; raise the request timeout ` +
        '(requestTimeoutMs, KAI_REQUEST_TIMEOUT_MS) or check the server',
      { cause: err },
    )
  }
  // kai-server reads the rest of a rejected upload before responding, unless the body's
  // declared length is over its body limit. Then it responds with 413 and closes at once,
  // so the rest of the upload fails.
  const hint =
    spec.form !== undefined && ['EPIPE', 'ECONNRESET'].includes(causeCode(err) ?? '')
      ? '; the server closed the connection during the upload, which it does for a body ' +
        'over its limit (KAI_MAX_BODY_BYTES)'
      : '; check that kai-server runs at that address'
  const message = `${request} failed: ${describeCause(err)}${hint}`
  return kaiError('KAI_UNAVAILABLE', message, { cause: err })
}

/** Returns the `code` of the innermost cause of a fetch failure, such as `ECONNREFUSED`. */
function causeCode(err: unknown): string | undefined {
  let current: unknown = err
  while (current instanceof Error && current.cause !== undefined) {
    current = current.cause
  }
  const code = (current as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** Describes a fetch failure by its innermost cause, such as `connect ECONNREFUSED …`. */
function describeCause(err: unknown): string {
  let current: unknown = err
  while (current instanceof Error && current.cause !== undefined) {
    current = current.cause
  }
  // Node reports a host name that resolves to several addresses, each refused, as one
  // AggregateError with an empty message.
  if (current instanceof AggregateError && current.errors.length > 0) {
    return current.errors.map(describeCause).join('; ')
  }
  if (current instanceof Error) {
    return current.message
  }
  return String(current)
}
