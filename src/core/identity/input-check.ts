import type { Static, TSchema } from '@sinclair/typebox'
import { UserError } from '../../shared/errors.js'

/** The JSON Schema keywords the identity inputs (auth-inputs.ts) use. */
interface Schema {
  type?: string
  const?: unknown
  anyOf?: Schema[]
  properties?: Record<string, Schema>
  required?: string[]
  minProperties?: number
  minLength?: number
  maxLength?: number
  format?: string
  minimum?: number
  maximum?: number
  items?: Schema
  minItems?: number
  maxItems?: number
}

/** ajv-formats' "uuid". */
const UUID = /^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/i
const DATE = /^(\d\d\d\d)-(\d\d)-(\d\d)$/
const TIME = /^(\d\d):(\d\d):(\d\d(?:\.\d+)?)(z|([+-])(\d\d)(?::?(\d\d))?)$/i
const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isFullDate(text: string): boolean {
  const m = DATE.exec(text)
  if (!m) return false
  const [year, month, day] = [+m[1], +m[2], +m[3]]
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return month >= 1 && month <= 12 && day >= 1 && day <= (month === 2 && leap ? 29 : DAYS[month])
}

/** RFC 3339 full-time, a time zone required; 23:59:60 UTC is a leap second. */
function isFullTime(text: string): boolean {
  const m = TIME.exec(text)
  if (!m) return false
  const [hr, min, sec] = [+m[1], +m[2], +m[3]]
  const sign = m[5] === '-' ? -1 : 1
  const [tzH, tzM] = [+(m[6] || 0), +(m[7] || 0)]
  if (tzH > 23 || tzM > 59) return false
  if (hr <= 23 && min <= 59 && sec < 60) return true
  const utcMin = min - tzM * sign
  const utcHr = hr - tzH * sign - (utcMin < 0 ? 1 : 0)
  return (utcHr === 23 || utcHr === -1) && (utcMin === 59 || utcMin === -1) && sec < 61
}

/** The formats of ajv-formats' "full" mode that the inputs use. */
const FORMATS: Record<string, (text: string) => boolean> = {
  uuid: (text) => UUID.test(text),
  'date-time': (text) => {
    const parts = text.split(/t|\s/i)
    return parts.length === 2 && isFullDate(parts[0]) && isFullTime(parts[1])
  },
}

function typeOf(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

function hasType(value: unknown, type: string): boolean {
  const actual = typeOf(value)
  return actual === type || (type === 'number' && actual === 'integer')
}

/** JSON Pointer escaping of a property name in an instance path. */
const pointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')

/**
 * The first violation (several for anyOf: one per branch, then the anyOf itself), each as
 * "<path> <message>", in the order and words of ajv, the validator Fastify runs on REST bodies.
 */
function violations(schema: Schema, value: unknown, path: string): string[] {
  const fail = (message: string) => [`${path} ${message}`]
  if (schema.anyOf) {
    const branches = schema.anyOf.map((branch) => violations(branch, value, path))
    if (branches.some((found) => found.length === 0)) return []
    return [...branches.flat(), `${path} must match a schema in anyOf`]
  }
  if (schema.type !== undefined && !hasType(value, schema.type)) return fail(`must be ${schema.type}`)
  if ('const' in schema && value !== schema.const) return fail('must be equal to constant')
  if (typeof value === 'number') {
    if (schema.maximum !== undefined && value > schema.maximum) return fail(`must be <= ${schema.maximum}`)
    if (schema.minimum !== undefined && value < schema.minimum) return fail(`must be >= ${schema.minimum}`)
  }
  if (typeof value === 'string') {
    // ajv counts characters as code points, not UTF-16 units.
    const length = [...value].length
    if (schema.maxLength !== undefined && length > schema.maxLength)
      return fail(`must NOT have more than ${schema.maxLength} characters`)
    if (schema.minLength !== undefined && length < schema.minLength)
      return fail(`must NOT have fewer than ${schema.minLength} characters`)
    const format = schema.format === undefined ? undefined : FORMATS[schema.format]
    if (format && !format(value)) return fail(`must match format "${schema.format}"`)
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      return fail(`must NOT have more than ${schema.maxItems} items`)
    if (schema.minItems !== undefined && value.length < schema.minItems)
      return fail(`must NOT have fewer than ${schema.minItems} items`)
    if (schema.items) {
      for (const [i, item] of value.entries()) {
        const found = violations(schema.items, item, `${path}/${i}`)
        if (found.length > 0) return found
      }
    }
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>
    const present = Object.keys(object).filter((key) => object[key] !== undefined)
    if (schema.minProperties !== undefined && present.length < schema.minProperties)
      return fail(`must NOT have fewer than ${schema.minProperties} properties`)
    for (const key of schema.required ?? []) {
      if (object[key] === undefined) return fail(`must have required property '${key}'`)
    }
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      if (object[key] === undefined) continue
      const found = violations(property, object[key], `${path}/${pointer(key)}`)
      if (found.length > 0) return found
    }
  }
  return []
}

/**
 * Checks an input against its schema as the REST face does, and with the same message, `where`
 * naming the whole input ("body" in REST). Properties that are undefined count as absent. Throws
 * INVALID_INPUT.
 */
export function checkInput<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  const found = violations(schema as Schema, value, where)
  if (found.length > 0) throw new UserError('INVALID_INPUT', found.join(', '))
  return value as Static<T>
}
