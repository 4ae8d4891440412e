/**
 * The slice of pino's API the core uses, so a Fastify/pino logger can be passed as is. Never pass
 * secrets to it.
 */
export interface CoreLogger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

const ignore = () => {}

/** The default when no logger is given: tests and one-shot commands stay quiet. */
export const silentLogger: CoreLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore }
