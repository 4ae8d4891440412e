import { ERROR_KINDS, type ErrorCode, type ErrorKind } from './error-codes.js'

/**
 * The one error hierarchy of Helix. Every error that crosses a module boundary is a HelixError with a
 * stable code, a message that says what went wrong and a hint that says what to do.
 * UserError (bad input or usage) exits 2; Failure (the environment or a dependency failed) exits 1.
 */
export interface HelixErrorOptions {
  /** What the user can do about it, one sentence. */
  hint?: string
  /** The underlying error, kept for --verbose. */
  cause?: unknown
  /** Extra machine-readable details, printed under --json. */
  details?: Record<string, unknown>
}

export class HelixError extends Error {
  readonly code: ErrorCode
  readonly hint?: string
  readonly details?: Record<string, unknown>
  /** Process exit code for the CLI (0 success, 1 failure, 2 bad usage or input). */
  readonly exitCode: 1 | 2 = 1

  constructor(code: ErrorCode, message: string, options: HelixErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.hint = options.hint
    this.details = options.details
  }

  /** What kind of failure this is: what each protocol maps to its status. */
  get kind(): ErrorKind {
    return ERROR_KINDS[this.code]
  }

  toJSON(): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
    }
  }
}

/** Bad input or usage: the user must change what they asked for. Exit code 2. */
export class UserError extends HelixError {
  override readonly exitCode = 2 as const
}

/** Something failed while doing a valid request (I/O, a dependency, a server). Exit code 1. */
export class Failure extends HelixError {
  override readonly exitCode = 1 as const
}

export function isHelixError(err: unknown): err is HelixError {
  return err instanceof HelixError
}

/** Turns any thrown value into a HelixError so callers can render it uniformly. */
export function toHelixError(err: unknown): HelixError {
  if (err instanceof HelixError) return err
  const e = err as { code?: string; message?: string; path?: string; oclif?: { exit?: number } }
  if (e && typeof e === 'object' && e.oclif?.exit === 2) {
    return new UserError('USAGE', firstLine(e.message ?? 'bad usage'), {
      hint: 'Run the command with --help to see its flags and arguments.',
      cause: err,
    })
  }
  if (e && (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS')) {
    return new UserError('NOT_WRITABLE', `Permission denied: ${e.path ?? e.message}`, {
      hint: 'Choose a directory you can write to with --dir (or HELIX_DIR), or fix its permissions.',
      cause: err,
    })
  }
  if (e && (e.code === 'ENOSPC' || e.code === 'EDQUOT' || e.code === 'EFBIG')) {
    return new Failure('DISK_FULL', `No space left (${e.code})${e.path ? `: ${e.path}` : ''}`, {
      hint: 'Free some disk space and run the command again; nothing was half-written.',
      cause: err,
    })
  }
  if (e && (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL')) {
    const { address, port } = e as { address?: string; port?: number }
    const where =
      address !== undefined && port !== undefined ? `${address}:${port}` : firstLine(e.message ?? '')
    return new Failure(
      'ADDRESS_IN_USE',
      e.code === 'EADDRINUSE'
        ? `Cannot listen on ${where}: another process is using that port.`
        : `Cannot listen on ${where}: that address is not on this machine.`,
      {
        hint:
          e.code === 'EADDRINUSE'
            ? 'Stop the other process (`helix status` shows a running daemon), or pick another port with --port (server.port in helix.yaml, HELIX_PORT).'
            : 'Listen on an address this machine has with --host (server.host in helix.yaml), e.g. 127.0.0.1 or 0.0.0.0.',
        cause: err,
      },
    )
  }
  const message = err instanceof Error ? err.message : String(err)
  return new Failure('INTERNAL', firstLine(message), {
    hint: 'This is a bug in Helix; run again with --verbose and report the output.',
    cause: err,
  })
}

/** The first non-blank line of a message (stack traces and multi-line tool output stay out of one-line errors). */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? text
  )
}
