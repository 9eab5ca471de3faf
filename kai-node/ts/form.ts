// Builds the multipart forms of kai-server's photo routes: each photo is a file part named
// `image` (`images` for reconstruction jobs) and each option a text field beside it.

import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'

import type { ImageInput } from './api.js'
import { kaiError } from './errors.js'

/** An encoded photo with the file name it is uploaded under. */
export interface Photo {
  bytes: Uint8Array
  name: string
}

/** A text field value. An array repeats the field and undefined leaves it out. */
export type FieldValue = string | number | boolean | undefined | readonly string[]

/**
 * Reads a photo: a Buffer or Uint8Array as is, a path from the file system.
 * `position` counts from 1 and names the photo in errors and in its default file name.
 * Rejects with `KAI_INVALID_INPUT` for another type and `KAI_STORAGE` for an unreadable
 * file, as the native module does.
 */
export async function readPhoto(input: ImageInput, position = 1): Promise<Photo> {
  if (typeof input === 'string') {
    try {
      return { bytes: await readFile(input), name: basename(input) }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      throw kaiError('KAI_STORAGE', `cannot open ${input}: ${reason}`, { cause: err })
    }
  }
  if (input instanceof Uint8Array) {
    return { bytes: input, name: `image-${position}` }
  }
  throw kaiError(
    'KAI_INVALID_INPUT',
    `invalid image ${position}: expected a Buffer, a Uint8Array or a file path, got ${describe(input)}`,
  )
}

/** Reads several photos in order, each as `readPhoto` does. */
export async function readPhotos(inputs: readonly ImageInput[]): Promise<Photo[]> {
  if (!Array.isArray(inputs)) {
    throw kaiError('KAI_INVALID_INPUT', `invalid images: expected an array, got ${describe(inputs)}`)
  }
  return Promise.all(inputs.map((input, index) => readPhoto(input, index + 1)))
}

/**
 * Builds a form of file parts named `fileField` (default `image`) and text fields. The
 * photos go first because kai-server rejects an invalid field as soon as it reads it and
 * closes the connection. A client that is still sending a photo then gets a connection
 * reset instead of the response.
 */
export function photoForm(
  fields: Record<string, FieldValue>,
  photos: readonly Photo[],
  fileField = 'image',
): FormData {
  const form = new FormData()
  for (const photo of photos) {
    form.append(fileField, new Blob([photo.bytes]), photo.name)
  }
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) {
      continue
    }
    if (Array.isArray(value)) {
      for (const item of value) {
        form.append(name, item)
      }
    } else {
      form.append(name, String(value))
    }
  }
  return form
}

/** Names the type of a rejected value, for error messages. */
function describe(value: unknown): string {
  if (value === null) {
    return 'null'
  }
  if (Array.isArray(value)) {
    return 'an array'
  }
  return typeof value === 'object' ? (value.constructor?.name ?? 'an object') : typeof value
}
