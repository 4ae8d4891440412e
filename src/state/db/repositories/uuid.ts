const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Ids arrive from URLs and CLI arguments; PostgreSQL rejects a malformed uuid with an error (22P02)
 * instead of "no such row", so look-ups by id check the shape first and report "not found".
 */
export function isUuid(value: string): boolean {
  return UUID.test(value)
}
