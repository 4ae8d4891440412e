import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../../src/core/identity/accounts.js'
import { SmtpMailer } from '../../../src/core/identity/mail/smtp-mailer.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  INFER_BODY,
  identityWorld,
} from './identity-harness.js'
import { type SmtpSink, startSmtpSink } from './mail/smtp-sink.js'

const PASSWORD = 'correct horse battery staple'

/** Everything one person leaves in the database: e-mail, name, address, browser, and their user id. */
interface Person {
  email: string
  name: string
  ip: string
  agent: string
  id?: string
}

/** Every row of every table of the helix schema, as JSON text, by table. */
async function dump(world: IdentityWorld): Promise<Map<string, string[]>> {
  const { rows: tables } = await world.db.query<{ name: string }>(
    `SELECT quote_ident(relname) AS name FROM pg_class
      WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p') ORDER BY relname`,
  )
  const out = new Map<string, string[]>()
  for (const { name } of tables) {
    const { rows } = await world.db.query<{ row: string }>(
      `SELECT row_to_json(t)::text AS row FROM ${name} t`,
    )
    out.set(
      name,
      rows.map((r) => r.row),
    )
  }
  return out
}

/** The marks of a person a row can carry (the e-mail in any case). */
function marks(person: Person): RegExp {
  const quote = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(
    [person.email, person.name, person.ip, person.agent, person.id ?? '\0'].map(quote).join('|'),
    'i',
  )
}

describe('GDPR: export holds every row about the person and nothing about others; erasure leaves nothing', () => {
  let world: IdentityWorld
  let d: Daemon
  let sink: SmtpSink
  const erin: Person = {
    email: 'Erin.Subject@example.test',
    name: 'Erin Subject',
    ip: '192.0.2.77',
    agent: 'erin-browser/1.0',
  }
  const otto: Person = {
    email: 'otto.other@example.test',
    name: 'Otto Other',
    ip: '198.51.100.5',
    agent: 'otto-browser/2.0',
  }

  beforeAll(async () => {
    world = await identityWorld()
    sink = await startSmtpSink()
    d = await daemon(
      world,
      { mail: { smtp_url: sink.url, from: 'helix@example.test', public_url: 'https://helix.example.test' } },
      { mailer: new SmtpMailer(sink.url, 'helix@example.test') },
    )
  })
  afterAll(async () => {
    await d?.close()
    await sink?.stop()
    await world?.teardown()
  })

  /** What a person does through the REST face: everything that leaves rows behind. */
  async function live(person: Person): Promise<{ access: string; key: string }> {
    const as = { 'user-agent': person.agent }
    const request = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object, headers = {}) =>
      d.app.inject({ method, url, payload, headers: { ...as, ...headers }, remoteAddress: person.ip })
    const registered = await createAccount(d.identity.deps, { email: person.email, password: PASSWORD })
    person.id = registered.user.id
    expect(
      (await request('POST', '/auth/login', { email: person.email, password: 'wrong password given' }))
        .statusCode,
    ).toBe(401)
    const signedIn = await request('POST', '/auth/login', { email: person.email, password: PASSWORD })
    expect(signedIn.statusCode, signedIn.body).toBe(200)
    const { access_token: access } = signedIn.json() as { access_token: string }
    const renamed = await request('PATCH', '/auth/me', { display_name: person.name }, bearer(access))
    expect(renamed.statusCode, renamed.body).toBe(200)
    const created = await request(
      'POST',
      '/auth/apikeys',
      { name: `${person.name} key`, scopes: ['infer'] },
      bearer(access),
    )
    expect(created.statusCode, created.body).toBe(201)
    const { key } = created.json() as { key: string }
    expect((await request('POST', '/v2/models/add/infer', INFER_BODY, bearer(key))).statusCode).toBe(200)
    expect((await request('POST', '/v2/models/add/infer', INFER_BODY, bearer(access))).statusCode).toBe(200)
    expect((await request('POST', '/auth/password/forgot', { email: person.email })).statusCode).toBe(202)
    return { access, key }
  }

  it('for two people who used the service', async () => {
    const subject = await live(erin)
    await live(otto)
    // Usage and request logs are written in the background.
    await new Promise((r) => setTimeout(r, 500))
    await d.identity.deps.flushUsage?.()

    const exported = await d.app.inject({
      method: 'GET',
      url: '/auth/me/export',
      headers: bearer(subject.access),
    })
    expect(exported.statusCode, exported.body).toBe(200)
    const text = exported.body
    expect(text, 'nothing about anybody else').not.toMatch(marks(otto))

    // Every row that names Erin is in her export (by its id, or its key's id), except secrets.
    const before = await dump(world)
    const missing: string[] = []
    for (const [table, rows] of before) {
      for (const row of rows.filter((r) => marks(erin).test(r))) {
        const value = JSON.parse(row) as Record<string, unknown>
        const handle = String(value.id ?? value.key_id ?? '')
        if (!handle || !text.includes(handle)) missing.push(`${table}: ${row.slice(0, 160)}`)
      }
    }
    expect(missing, missing.join('\n')).toEqual([])

    const erased = await d.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      payload: { password: PASSWORD },
      headers: bearer(subject.access),
      remoteAddress: erin.ip,
    })
    expect(erased.statusCode, erased.body).toBe(200)
    const after = await dump(world)
    // Her e-mail, name, address and browser are nowhere. Her account's random id is left only where
    // the audit chain names what happened ("user.update" of user:<id>); with the account gone nothing
    // links it to her any more.
    const left: string[] = []
    for (const [table, rows] of after) {
      for (const row of rows.filter((r) => marks({ ...erin, id: undefined }).test(r)))
        left.push(`${table}: ${row.slice(0, 200)}`)
      if (table === 'audit_log') continue
      for (const row of rows.filter((r) => r.includes(erin.id ?? '\0')))
        left.push(`${table}: ${row.slice(0, 200)}`)
    }
    expect(left, left.join('\n')).toEqual([])
    const audit = after.get('audit_log') ?? []
    expect(
      audit.filter((r) => r.includes(erin.id ?? '\0')).every((r) => JSON.parse(r).actor_user_id === null),
    ).toBe(true)
    // The daemon's log lines never held her e-mail, name, address or browser (they name accounts by id).
    const logged = d.logs.text()
    expect(logged.length).toBeGreaterThan(1000)
    expect(logged).not.toMatch(marks({ ...erin, id: undefined }))
    // Otto is untouched.
    const ottoRows = [...after.values()].flat().filter((r) => marks(otto).test(r))
    expect(ottoRows.length).toBeGreaterThan(5)
  })
})
