import { Ajv } from 'ajv'
import type { FastifySchemaCompiler } from 'fastify'

/**
 * The validator of the /v1 bodies. Fastify's default coerces types ('array' mode), which would read
 * `"input": [5]` as the text "5" and `"stop": 7` as "7": OpenAI's APIs are typed, so values are taken
 * as sent. Unknown fields stay (clients send many; the routes refuse the ones that matter).
 */
const ajv = new Ajv({
  coerceTypes: false,
  useDefaults: true,
  removeAdditional: false,
  allErrors: false,
  strict: false,
})

export const strictBodyValidator: FastifySchemaCompiler<object> = ({ schema }) => ajv.compile(schema)
