import type { KeyObject } from 'node:crypto'
import { randomUUID } from 'node:crypto'
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  jwtVerify,
  SignJWT,
} from 'jose'
import { UserError } from '../../shared/errors.js'

/** Asymmetric algorithms only: never `none`, never HS* (RFC 8725 §3.1, §3.2). */
export const ACCESS_TOKEN_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const
export type AccessTokenAlgorithm = (typeof ACCESS_TOKEN_ALGORITHMS)[number]

/** Clock skew tolerated on exp/nbf/iat, in seconds (small: tokens live 15 minutes). */
export const CLOCK_SKEW_S = 30

/** The current signing key, as the JWT keys module loads it from keys/. */
export interface AccessTokenSigner {
  kid: string
  alg: AccessTokenAlgorithm
  privateKey: KeyObject
}

export interface AccessTokenSettings {
  issuer: string
  audience: string
  ttlSeconds: number
}

export interface AccessTokenClaims {
  /** User id. */
  sub: string
  /** Unique token id; revocation lists hold it. */
  jti: string
  /** Refresh family the token belongs to; logout revokes it. */
  sid?: string
  scope: string[]
  iat: number
  exp: number
}

export interface IssuedAccessToken {
  token: string
  jti: string
  expiresIn: number
  expiresAt: Date
}

/** Signs an access token (RFC 9068 profile: typ at+jwt, kid header). */
export async function issueAccessToken(
  signer: AccessTokenSigner,
  settings: AccessTokenSettings,
  subject: { sub: string; scope: readonly string[]; sid?: string },
  now: Date = new Date(),
): Promise<IssuedAccessToken> {
  const jti = randomUUID()
  const iat = Math.floor(now.getTime() / 1000)
  const exp = iat + settings.ttlSeconds
  const token = await new SignJWT({
    scope: subject.scope.join(' '),
    ...(subject.sid ? { sid: subject.sid } : {}),
  })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(subject.sub)
    .setJti(jti)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .sign(signer.privateKey)
  return { token, jti, expiresIn: settings.ttlSeconds, expiresAt: new Date(exp * 1000) }
}

function unauthenticated(message: string, cause?: unknown): UserError {
  return new UserError('UNAUTHENTICATED', message, {
    hint: 'Sign in again (POST /auth/login or /auth/refresh) and send the new access token.',
    cause,
  })
}

/** A verifier bound to our JWKS: a kid must name one of its keys, and each key only its own algorithm. */
export function accessTokenVerifier(jwks: JSONWebKeySet, settings: Omit<AccessTokenSettings, 'ttlSeconds'>) {
  // Every published key must carry alg, so a key verifies with exactly one algorithm.
  const keys = jwks.keys.filter(
    (k) => typeof k.alg === 'string' && (ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(k.alg),
  )
  const keySet = createLocalJWKSet({ keys })
  return async function verifyAccessToken(token: string, now: Date = new Date()): Promise<AccessTokenClaims> {
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch (err) {
      throw unauthenticated('The access token is malformed.', err)
    }
    if (typeof header.kid !== 'string' || !keys.some((k) => k.kid === header.kid)) {
      throw unauthenticated('The access token was not signed by a key of this service.')
    }
    try {
      const { payload } = await jwtVerify(token, keySet, {
        issuer: settings.issuer,
        audience: settings.audience,
        algorithms: [...ACCESS_TOKEN_ALGORITHMS],
        clockTolerance: CLOCK_SKEW_S,
        typ: 'at+jwt',
        requiredClaims: ['sub', 'jti', 'exp', 'iat'],
        currentDate: now,
      })
      return {
        sub: String(payload.sub),
        jti: String(payload.jti),
        ...(typeof payload.sid === 'string' ? { sid: payload.sid } : {}),
        scope: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
        iat: Number(payload.iat),
        exp: Number(payload.exp),
      }
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw unauthenticated('The access token has expired.', err)
      throw unauthenticated('The access token is invalid.', err)
    }
  }
}

export type AccessTokenVerifier = ReturnType<typeof accessTokenVerifier>
