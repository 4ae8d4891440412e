import { UserError } from '../../../shared/errors.js'
import type { Queryable } from '../pool.js'
import { isUuid } from './uuid.js'

/** A row of `users` (column names as in the table). */
export interface UserRow {
  id: string
  email: string
  /** argon2id PHC string; null when the account has no password login. */
  password_hash: string | null
  display_name: string | null
  role: 'user' | 'admin'
  email_verified_at: Date | null
  disabled_at: Date | null
  password_changed_at: Date | null
  created_at: Date
  updated_at: Date
}

export interface NewUser {
  email: string
  passwordHash?: string | null
  displayName?: string | null
  role?: 'user' | 'admin'
}

const COLUMNS =
  'id, email, password_hash, display_name, role, email_verified_at, disabled_at, password_changed_at, created_at, updated_at'

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === '23505'
}

function emailTaken(email: string): UserError {
  return new UserError('USER_EXISTS', `A user with the e-mail ${email} already exists.`, {
    hint: 'E-mail addresses are unique regardless of case; use another one or update the existing user.',
  })
}

export async function createUser(db: Queryable, user: NewUser): Promise<UserRow> {
  try {
    const { rows } = await db.query<UserRow>(
      `INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
      [user.email, user.passwordHash ?? null, user.displayName ?? null, user.role ?? 'user'],
    )
    return rows[0]
  } catch (err) {
    if (isUniqueViolation(err)) throw emailTaken(user.email)
    throw err
  }
}

export async function findUserById(db: Queryable, id: string): Promise<UserRow | undefined> {
  if (!isUuid(id)) return undefined
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id])
  return rows[0]
}

/** Case-insensitive, served by the unique index on lower(email). */
export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${COLUMNS} FROM users WHERE lower(email) = lower($1)`, [
    email,
  ])
  return rows[0]
}

export async function listUsers(
  db: Queryable,
  options: { limit?: number; offset?: number } = {},
): Promise<UserRow[]> {
  const { rows } = await db.query<UserRow>(
    `SELECT ${COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2`,
    [options.limit ?? 100, options.offset ?? 0],
  )
  return rows
}

export async function countUsers(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')
  return rows[0].n
}

/** Changes profile fields; an e-mail change clears email_verified_at (the new address is unproven). */
export async function updateUser(
  db: Queryable,
  id: string,
  changes: { email?: string; displayName?: string | null; role?: 'user' | 'admin' },
): Promise<UserRow | undefined> {
  if (!isUuid(id)) return undefined
  try {
    const { rows } = await db.query<UserRow>(
      `UPDATE users SET
         email = coalesce($2, email),
         email_verified_at = CASE WHEN $2::text IS NOT NULL AND lower($2) <> lower(email) THEN NULL ELSE email_verified_at END,
         display_name = CASE WHEN $3::boolean THEN $4 ELSE display_name END,
         role = coalesce($5, role),
         updated_at = now()
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        changes.email ?? null,
        'displayName' in changes,
        changes.displayName ?? null,
        changes.role ?? null,
      ],
    )
    return rows[0]
  } catch (err) {
    if (isUniqueViolation(err)) throw emailTaken(changes.email as string)
    throw err
  }
}

/** Stores a new password hash and stamps password_changed_at (sessions issued before are void). */
export async function setPasswordHash(db: Queryable, id: string, passwordHash: string): Promise<boolean> {
  if (!isUuid(id)) return false
  const { rowCount } = await db.query(
    'UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1',
    [id, passwordHash],
  )
  return rowCount === 1
}

export async function markEmailVerified(db: Queryable, id: string): Promise<boolean> {
  if (!isUuid(id)) return false
  const { rowCount } = await db.query(
    'UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1',
    [id],
  )
  return rowCount === 1
}

export async function setUserDisabled(
  db: Queryable,
  id: string,
  disabled: boolean,
): Promise<UserRow | undefined> {
  if (!isUuid(id)) return undefined
  const { rows } = await db.query<UserRow>(
    `UPDATE users SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) ELSE NULL END, updated_at = now()
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, disabled],
  )
  return rows[0]
}

/** Deletes the user; refresh tokens, e-mail tokens and API keys go with it (ON DELETE CASCADE). */
export async function deleteUser(db: Queryable, id: string): Promise<boolean> {
  if (!isUuid(id)) return false
  const { rowCount } = await db.query('DELETE FROM users WHERE id = $1', [id])
  return rowCount === 1
}
