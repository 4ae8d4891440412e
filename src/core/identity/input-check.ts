import type { Static, TSchema } from '@sinclair/typebox'
import { Ajv, type ValidateFunction } from 'ajv'
import formatsPlugin from 'ajv-formats'
import { UserError } from '../../shared/errors.js'

/**
 * The validator the REST face runs on request bodies (Fastify's: ajv 8 with ajv-formats and the
 * options of @fastify/ajv-compiler), so that a face without Fastify (gRPC) reaches the same verdicts
 * with the same words. allErrors stays off: reporting every error of a hostile input is a DoS vector.
 */
const ajv = new Ajv({
  coerceTypes: 'array',
  useDefaults: true,
  removeAdditional: true,
  addUsedSchema: false,
  allErrors: false,
})
;(formatsPlugin as unknown as { default: (a: Ajv) => Ajv }).default(ajv)

const compiled = new WeakMap<TSchema, ValidateFunction>()

/**
 * Checks an input against its schema as the REST face does, and with the same message, `where`
 * naming the whole input ("body" in REST). Properties that are undefined count as absent. Throws
 * INVALID_INPUT.
 */
export function checkInput<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  // JSON has no undefined: drop such properties as a JSON body would not carry them.
  const input = value !== null && typeof value === 'object' ? JSON.parse(JSON.stringify(value)) : value
  if (!validate(input)) {
    const message = (validate.errors ?? []).map((e) => `${where}${e.instancePath} ${e.message}`).join(', ')
    throw new UserError('INVALID_INPUT', message)
  }
  return input as Static<T>
}
