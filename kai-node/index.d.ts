/** A text embedding model loaded in this process. */
export declare class TextEmbedder {
  /**
   * Loads a model by name or folder (default `all-minilm-l6-v2`) from `modelDir`
   * (default `MODEL_DIR`, else the user cache folder) on the device `KAI_DEVICE` names.
   * Throws an `Error` whose `code` is a kai error code, such as `KAI_MODEL_NOT_FOUND`.
   */
  static load(model?: string | undefined | null, modelDir?: string | undefined | null): TextEmbedder
  /** The model name. */
  get name(): string
  /** The length of each vector. */
  get dimension(): number
  /** Embeds texts off the event loop; resolves to one Float32Array per text. */
  embed(texts: Array<string>): Promise<Float32Array[]>
}
