import type { ValueError } from '@sinclair/typebox/value'

/**
 * A settings file's validation error as a sentence: where TypeBox says "Expected union value" for a
 * choice of words (device, load, isolation …), the choices and the value given.
 */
export function schemaMessage(error: ValueError): string {
  const choices = (error.schema.anyOf as { const?: unknown }[] | undefined)?.map((s) => s.const)
  if (choices?.length && choices.every((c) => typeof c === 'string')) {
    return `must be one of ${choices.join(', ')} (got ${JSON.stringify(error.value)})`
  }
  return error.message
}
