// `waitForReconstruction`: polls a reconstruction job until it ends, for the native module
// and the REST client alike.

import type { KaiApi, ReconJob, WaitForReconstructionOptions } from './api.js'
import { kaiError } from './errors.js'

/** Milliseconds between two status requests unless the options set `intervalMs`. */
export const DEFAULT_RECON_POLL_INTERVAL_MS = 1000

/**
 * Requests the job `id` every `intervalMs` until its status is `succeeded` or `failed`,
 * and resolves to it; a failed job resolves too, with its `error`. Rejects with
 * `KAI_NOT_FOUND` when no job has the id, `KAI_TIMEOUT` when the job has not ended after
 * `timeoutMs`, `KAI_INVALID_INPUT` for an invalid option, and with any error of
 * `getReconstructionJob`.
 */
export async function waitForReconstruction(
  kai: Pick<KaiApi, 'getReconstructionJob'>,
  id: string,
  options: WaitForReconstructionOptions = {},
): Promise<ReconJob> {
  const intervalMs = milliseconds('intervalMs', options.intervalMs ?? DEFAULT_RECON_POLL_INTERVAL_MS)
  const timeoutMs = options.timeoutMs === undefined ? Infinity : milliseconds('timeoutMs', options.timeoutMs)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await kai.getReconstructionJob(id)
    if (job === null) {
      throw kaiError('KAI_NOT_FOUND', `reconstruction job \`${id}\` not found`)
    }
    if (job.status === 'succeeded' || job.status === 'failed') {
      return job
    }
    const left = deadline - Date.now()
    if (left <= 0) {
      const percent = Math.round(job.progress * 100)
      throw kaiError(
        'KAI_TIMEOUT',
        `reconstruction job ${id} is still ${job.status} (${percent}% done) after ${timeoutMs} ms (timeoutMs)`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, left)))
  }
}

function milliseconds(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0) || value === Infinity) {
    throw kaiError('KAI_INVALID_INPUT', `invalid ${name}: expected a finite number of milliseconds of 0 or more, got ${String(value)}`)
  }
  return value
}
