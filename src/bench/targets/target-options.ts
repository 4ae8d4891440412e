import type { TargetKind, TlsOptions } from '../types.js'

/** Everything that decides what request the benchmark sends. */
export interface TargetOptions {
  kind: TargetKind
  url: string
  model?: string
  modelVersion?: string
  /** API key, sent as Authorization: Bearer. */
  key?: string
  /** KServe: use the binary tensor extension. */
  binary: boolean
  /** KServe: a request body file; otherwise random data from the model's metadata. */
  inputFile?: string
  /** KServe: sizes for dynamic dimensions, by input name. */
  shapes: Record<string, number[]>
  /** http: the body, or @file. */
  body?: string
  /** A recorded request file: {"method","url"|"path","headers","body"}. */
  recorded?: string
  method?: string
  headers: Record<string, string>
  /** OpenAI chat: the user message; embeddings: the input text. */
  prompt?: string
  maxTokens: number
  /** https:// targets: CAs and client certificate (see tls.ts). */
  tls?: TlsOptions
}
