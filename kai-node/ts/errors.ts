// Builds the `Error` objects with a stable `code` that the client rejects with.

import type { KaiError, KaiErrorCode } from './api.js'

/** The details of a `KaiError` besides its code and message. */
export interface KaiErrorDetails {
  status?: number
  retryAfterSeconds?: number
  cause?: unknown
}

const CODES: ReadonlySet<string> = new Set<KaiErrorCode>([
  'KAI_INVALID_INPUT',
  'KAI_NOT_FOUND',
  'KAI_MODEL_NOT_FOUND',
  'KAI_CONFLICT',
  'KAI_STORAGE',
  'KAI_NOT_SUPPORTED',
  'KAI_INTERNAL',
  'KAI_NOT_REMOTE',
  'KAI_RATE_LIMITED',
  'KAI_UNAUTHORIZED',
  'KAI_FORBIDDEN',
  'KAI_UNAVAILABLE',
  'KAI_TIMEOUT',
])

/** Creates an `Error` with `code`, and `status` and `retryAfterSeconds` when given. */
export function kaiError(code: KaiErrorCode, message: string, details: KaiErrorDetails = {}): KaiError {
  const error = new Error(message, { cause: details.cause }) as KaiError
  error.code = code
  if (details.status !== undefined) {
    error.status = details.status
  }
  if (details.retryAfterSeconds !== undefined) {
    error.retryAfterSeconds = details.retryAfterSeconds
  }
  return error
}

/** Returns whether `value` is an `Error` with one of the API's codes. */
export function isKaiError(value: unknown): value is KaiError {
  return value instanceof Error && isKaiErrorCode((value as Error & { code?: unknown }).code)
}

/** Returns whether `code` is one of the API's codes. */
export function isKaiErrorCode(code: unknown): code is KaiErrorCode {
  return typeof code === 'string' && CODES.has(code)
}

/** Creates the error of a method that kai-server has no route for. */
export function notRemote(method: string, instead: string): KaiError {
  return kaiError(
    'KAI_NOT_REMOTE',
    `${method} is not available over kai-server's REST API; ${instead}`,
  )
}
