// Vector arithmetic shared by the native module's tests and the client tests, kept apart
// from helpers.mjs because the client tests must load without the native module.

/** Returns the cosine similarity of two vectors. */
export function cosine(a, b) {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}
