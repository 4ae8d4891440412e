import type { TSchema } from '@sinclair/typebox'
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler'
import { type HelixError, UserError } from '../../shared/errors.js'
import {
  CLIENT_FRAME_SCHEMAS,
  type ClientFrame,
  type ClientFrameType,
} from '../../shared/realtime-protocol.js'
import { parseJson } from '../plugins/body-parsers.js'

const CHECKERS = new Map<string, TypeCheck<TSchema>>(
  Object.entries(CLIENT_FRAME_SCHEMAS).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
)

const TYPES = Object.keys(CLIENT_FRAME_SCHEMAS) as ClientFrameType[]

export type ParsedFrame =
  | { ok: true; frame: ClientFrame }
  /** `id` when the frame named one, so the refusal can say which request it concerns. */
  | { ok: false; error: HelixError; id?: string }

function invalid(message: string, id?: string): ParsedFrame {
  return {
    ok: false,
    error: new UserError('INVALID_INPUT', message, { hint: 'See docs/realtime.md for the frames.' }),
    ...(id !== undefined ? { id } : {}),
  }
}

/**
 * One client message: a JSON text frame whose `type` names a known frame and whose fields fit that
 * frame's schema. Anything else is refused with a message saying what is wrong; nothing throws.
 */
export function parseClientFrame(data: Buffer | string, isBinary: boolean): ParsedFrame {
  if (isBinary) return invalid('Frames are JSON text messages; this one was binary.')
  let value: unknown
  try {
    value = parseJson(typeof data === 'string' ? data : data.toString('utf8'))
  } catch (err) {
    return { ok: false, error: err as HelixError }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return invalid('A frame is a JSON object with a "type".')
  const record = value as Record<string, unknown>
  const id = typeof record.id === 'string' ? record.id : undefined
  const type = record.type
  const checker = typeof type === 'string' ? CHECKERS.get(type) : undefined
  if (!checker) {
    return invalid(
      `Unknown frame type ${JSON.stringify(type ?? null)}; expected one of ${TYPES.join(', ')}.`,
      id,
    )
  }
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First()
    const where = first?.path ? `${first.path}: ` : ''
    return invalid(
      `Invalid ${String(type)} frame: ${where}${first?.message ?? 'does not fit its schema'}.`,
      id,
    )
  }
  return { ok: true, frame: value as ClientFrame }
}
