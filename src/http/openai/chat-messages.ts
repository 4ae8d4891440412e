import type { ChatMessage } from '../../core/generate/types.js'
import type { ChatCompletionBody } from '../schemas/openai.js'
import { paramError, unsupportedParameter, unsupportedValue } from './error-shape.js'

/** Roles a chat template renders; OpenAI's `developer` is its newer name for `system`. */
const ROLES: Readonly<Record<string, string>> = {
  system: 'system',
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
}

/**
 * OpenAI chat messages → the engine's: text content only (parts joined by newlines, as vLLM does);
 * tool and function messages, tool calls and non-text parts are refused, naming the field.
 */
export function chatMessages(messages: ChatCompletionBody['messages']): ChatMessage[] {
  return messages.map((message, i) => {
    const at = `messages.[${i}]`
    const extra = message as Record<string, unknown>
    if (extra.tool_calls !== undefined && extra.tool_calls !== null)
      throw unsupportedParameter(`${at}.tool_calls`)
    if (extra.function_call !== undefined && extra.function_call !== null)
      throw unsupportedParameter(`${at}.function_call`)
    const role = ROLES[message.role]
    if (role === undefined) {
      if (message.role === 'tool' || message.role === 'function')
        throw unsupportedValue(
          `${at}.role`,
          `Messages of role '${message.role}' are not supported (no tools).`,
        )
      throw paramError(
        `Invalid value for '${at}.role': '${message.role}' (system, developer, user or assistant).`,
        `${at}.role`,
        'invalid_value',
      )
    }
    const content = message.content
    if (content === null) {
      throw paramError(
        `'${at}.content' must be a string or an array of text parts.`,
        `${at}.content`,
        'invalid_type',
      )
    }
    const text =
      typeof content === 'string'
        ? content
        : content
            .map((part, j) => {
              if (part.type !== 'text')
                throw unsupportedValue(
                  `${at}.content.[${j}].type`,
                  `Content parts of type '${part.type}' are not supported; send text parts.`,
                )
              if (typeof part.text !== 'string')
                throw paramError(
                  `Missing required parameter: '${at}.content.[${j}].text'.`,
                  `${at}.content.[${j}].text`,
                  'missing_required_parameter',
                )
              return part.text
            })
            .join('\n')
    return { role, content: text, ...(message.name !== undefined ? { name: message.name } : {}) }
  })
}
