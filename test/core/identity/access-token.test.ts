import { createSecretKey, generateKeyPairSync } from 'node:crypto'
import { base64url, exportJWK, SignJWT, UnsecuredJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  type AccessTokenSigner,
  accessTokenVerifier,
  CLOCK_SKEW_S,
  issueAccessToken,
} from '../../../src/core/identity/access-token.js'
import { generateSigningKey, parsePrivatePem } from '../../../src/state/jwt/key-algorithms.js'

const settings = { issuer: 'helix', audience: 'helix-api', ttlSeconds: 900 }

async function signerFor(alg: 'EdDSA' | 'ES256' | 'RS256') {
  const material = await generateSigningKey(alg)
  const signer: AccessTokenSigner = {
    kid: material.kid,
    alg,
    privateKey: parsePrivatePem(material.privatePem),
  }
  return { signer, jwk: material.publicJwk }
}

describe('access tokens', async () => {
  const ed = await signerFor('EdDSA')
  const es = await signerFor('ES256')
  const verify = accessTokenVerifier({ keys: [ed.jwk, es.jwk] }, settings)

  it('issue → verify round-trips sub, scope, sid and jti with a kid header', async () => {
    for (const { signer } of [ed, es]) {
      const issued = await issueAccessToken(signer, settings, {
        sub: 'u1',
        scope: ['infer', 'models:read'],
        sid: 'fam',
      })
      const header = JSON.parse(Buffer.from(issued.token.split('.')[0], 'base64url').toString())
      expect(header).toEqual({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
      const claims = await verify(issued.token)
      expect(claims).toMatchObject({
        sub: 'u1',
        jti: issued.jti,
        sid: 'fam',
        scope: ['infer', 'models:read'],
      })
      expect(claims.exp - claims.iat).toBe(900)
      expect(issued.expiresIn).toBe(900)
    }
  })

  it('refuses alg none', async () => {
    const token = new UnsecuredJWT({ scope: 'admin' })
      .setIssuer('helix')
      .setAudience('helix-api')
      .setSubject('u1')
      .setJti('x')
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode()
    await expect(verify(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
    // the same with a kid of ours in the header
    const [, body] = token.split('.')
    const forged = `${base64url.encode(JSON.stringify({ alg: 'none', kid: ed.signer.kid, typ: 'at+jwt' }))}.${body}.`
    await expect(verify(forged)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
  })

  it('refuses HS256 signed with the public key as the secret (key confusion)', async () => {
    const secret = createSecretKey(Buffer.from(JSON.stringify(ed.jwk)))
    const token = await new SignJWT({ scope: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: ed.signer.kid, typ: 'at+jwt' })
      .setIssuer('helix')
      .setAudience('helix-api')
      .setSubject('u1')
      .setJti('x')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(secret)
    await expect(verify(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
  })

  it('refuses a token signed by a key that is not in the JWKS, even with a borrowed kid', async () => {
    const stranger = await signerFor('EdDSA')
    const own = await issueAccessToken(stranger.signer, settings, { sub: 'u1', scope: ['admin'] })
    await expect(verify(own.token)).rejects.toThrow(/not signed by a key of this service/)
    const borrowed = await issueAccessToken({ ...stranger.signer, kid: ed.signer.kid }, settings, {
      sub: 'u1',
      scope: ['admin'],
    })
    await expect(verify(borrowed.token)).rejects.toThrow(/invalid/)
  })

  it('a key verifies only with its own algorithm', async () => {
    // An ES256 key published as EdDSA: jose must not accept an ES256 token for it.
    const mislabelled = accessTokenVerifier({ keys: [{ ...es.jwk, alg: 'EdDSA' }] }, settings)
    const issued = await issueAccessToken(es.signer, settings, { sub: 'u1', scope: [] })
    await expect(mislabelled(issued.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
    const noAlg = accessTokenVerifier({ keys: [{ ...es.jwk, alg: undefined }] }, settings)
    await expect(noAlg(issued.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
  })

  it('refuses expired tokens beyond the clock skew but accepts within it', async () => {
    const past = new Date(Date.now() - (900 + CLOCK_SKEW_S + 5) * 1000)
    const expired = await issueAccessToken(ed.signer, settings, { sub: 'u1', scope: [] }, past)
    await expect(verify(expired.token)).rejects.toThrow(/expired/)
    const justExpired = await issueAccessToken(
      ed.signer,
      settings,
      { sub: 'u1', scope: [] },
      new Date(Date.now() - 905_000),
    )
    await expect(verify(justExpired.token)).resolves.toMatchObject({ sub: 'u1' })
  })

  it('refuses not-yet-valid tokens, wrong audience and wrong issuer', async () => {
    const future = await issueAccessToken(
      ed.signer,
      settings,
      { sub: 'u1', scope: [] },
      new Date(Date.now() + 120_000),
    )
    await expect(verify(future.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
    const otherAud = await issueAccessToken(
      ed.signer,
      { ...settings, audience: 'other' },
      { sub: 'u1', scope: [] },
    )
    await expect(verify(otherAud.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
    const otherIss = await issueAccessToken(
      ed.signer,
      { ...settings, issuer: 'evil' },
      { sub: 'u1', scope: [] },
    )
    await expect(verify(otherIss.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
  })

  it('refuses garbage and tampered payloads', async () => {
    await expect(verify('not.a.jwt')).rejects.toThrow(/malformed/)
    await expect(verify('')).rejects.toThrow(/malformed/)
    const issued = await issueAccessToken(ed.signer, settings, { sub: 'u1', scope: ['infer'] })
    const [h, , s] = issued.token.split('.')
    const body = base64url.encode(
      JSON.stringify({
        sub: 'u1',
        scope: 'admin',
        iss: 'helix',
        aud: 'helix-api',
        jti: 'x',
        iat: 1,
        exp: 9e9,
      }),
    )
    await expect(verify(`${h}.${body}.${s}`)).rejects.toThrow(/invalid/)
  })

  it('refuses an RS256 token whose key is not published', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const jwk = { ...(await exportJWK(publicKey)), kid: 'rsa-1', alg: 'RS256' }
    const rsVerify = accessTokenVerifier({ keys: [jwk] }, settings)
    const ok = await issueAccessToken({ kid: 'rsa-1', alg: 'RS256', privateKey }, settings, {
      sub: 'u2',
      scope: [],
    })
    await expect(rsVerify(ok.token)).resolves.toMatchObject({ sub: 'u2' })
    await expect(verify(ok.token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' })
  })
})
