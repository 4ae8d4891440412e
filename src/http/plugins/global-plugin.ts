import type { FastifyPluginAsync } from 'fastify'

/**
 * Marks a plugin as non-encapsulated so its hooks, decorators and parsers apply to the whole app —
 * what the fastify-plugin package does, through the symbols Fastify documents for it.
 */
export function globalPlugin<Options extends Record<string, unknown>>(
  name: string,
  fn: FastifyPluginAsync<Options>,
): FastifyPluginAsync<Options> {
  Object.assign(fn, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name })
  return fn
}
