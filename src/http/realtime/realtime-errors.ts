import { UserError } from '../../shared/errors.js'

const HINT = 'See docs/realtime.md for the frames and their order.'

/** A frame that is valid JSON of a known type but not allowed now. */
export function invalidFrame(message: string): UserError {
  return new UserError('INVALID_INPUT', message, { hint: HINT })
}

/** One answer for an unknown or expired session, a wrong token and another principal's session. */
export function sessionNotFound(): UserError {
  return new UserError('SESSION_NOT_FOUND', 'There is no session to resume with this id and token.', {
    hint: 'The grace period may have ended: send the unfinished requests again on this session.',
  })
}

/** A resume asked for frames the daemon no longer holds. */
export function resumeGap(id: string): UserError {
  return new UserError(
    'RESUME_GAP',
    `Frames of request ${JSON.stringify(id)} after the last one received were dropped; it was cancelled.`,
    { hint: 'Acknowledge frames as they arrive (ack), so the daemon keeps only what a resume needs.' },
  )
}
