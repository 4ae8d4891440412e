import type { TargetKind, TlsOptions } from '../types.js'

/** Everything that decides what request the benchmark sends. */
export interface TargetOptions {
  kind: TargetKind
  url: string
  model?: string
  modelVersion?: string
  /** API key, sent as Authorization: Bearer. */
  key?: string
  /** KServe: use the binary tensor extension (gRPC targets always send raw tensors). */
  binary: boolean
  /** KServe and gRPC: a JSON infer request file; otherwise random data from the model's metadata. */
  inputFile?: string
  /** KServe and gRPC: sizes for dynamic dimensions, by input name. */
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
  /** https:// and grpcs:// targets: CAs and client certificate (see tls.ts). */
  tls?: TlsOptions
  /** gRPC targets: HTTP/2 connections (channels) the calls share. */
  channels?: number
}
