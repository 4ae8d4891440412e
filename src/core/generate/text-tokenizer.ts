import { Template } from '@huggingface/jinja'
import { Tokenizer } from '@huggingface/tokenizers'
import type { ChatMessage } from './types.js'

/** The special-token names a chat template may read, as transformers passes them to the template. */
const SPECIAL_TOKEN_NAMES = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
] as const

type TokenizerConfig = Record<string, unknown> & { chat_template?: unknown }

/** A token as tokenizer_config.json writes it: a string or an AddedToken object. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content
  return undefined
}

/** The default template of a tokenizer_config.json: a string, or the entry named "default" of a list. */
function chatTemplateText(config: TokenizerConfig): string | undefined {
  const template = config.chat_template
  if (typeof template === 'string') return template
  if (Array.isArray(template)) {
    const named = template as { name?: string; template?: string }[]
    return (named.find((t) => t.name === 'default') ?? named[0])?.template
  }
  return undefined
}

/**
 * tokenizer.json + tokenizer_config.json of a Hugging Face folder: encoding, decoding and the chat
 * template, rendered the way transformers renders it (the same variables, generation prompt on).
 */
export class TextTokenizer {
  private readonly tokenizer: Tokenizer
  private readonly template?: Template
  private readonly specialTokens: Record<string, string> = {}

  constructor(tokenizerJson: object, config: TokenizerConfig) {
    this.tokenizer = new Tokenizer(tokenizerJson, config)
    const text = chatTemplateText(config)
    if (text) this.template = new Template(text)
    for (const name of SPECIAL_TOKEN_NAMES) {
      const value = tokenText(config[name])
      if (value) this.specialTokens[name] = value
    }
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined
  }

  /** Token ids of a text; special tokens (BOS, a post-processor's template) only when asked. */
  encode(text: string, addSpecialTokens = false): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return ''
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens })
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token)
  }

  tokenText(id: number): string {
    return this.tokenizer.id_to_token(id) ?? ''
  }

  /** The prompt the model's chat template renders for these messages, ending with the assistant's turn. */
  renderChat(messages: ChatMessage[]): string {
    if (!this.template) throw new Error('the tokenizer_config.json has no chat_template')
    return this.template.render({
      messages,
      add_generation_prompt: true,
      ...this.specialTokens,
    })
  }
}

/**
 * Turns a growing list of token ids into text deltas that never end in half a character: a byte-level
 * BPE token may hold part of a UTF-8 sequence, which decodes to U+FFFD until the rest arrives. Decodes
 * a short window (the tokens since the last emitted boundary) instead of the whole text each step.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = []
  /** Tokens before this index are behind us; the window starts here. */
  private prefixOffset = 0
  /** Tokens before this index have been turned into text already. */
  private readOffset = 0

  constructor(private readonly tokenizer: TextTokenizer) {}

  /** Adds a token; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id)
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset))
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset))
    if (full.length <= prefix.length || full.endsWith('\uFFFD')) return ''
    this.prefixOffset = this.readOffset
    this.readOffset = this.ids.length
    return full.slice(prefix.length)
  }

  /** What is still held back at the end (a partial character stays as U+FFFD, as transformers shows it). */
  flush(): string {
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset))
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset))
    this.prefixOffset = this.readOffset = this.ids.length
    return full.slice(prefix.length)
  }
}
