import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { parseConfig } from '../../src/shared/config.js'
import { renderTemplate } from '../../src/shared/templates.js'

describe('templates/helix.yaml.eta', () => {
  const values = {
    domain: 'api.example.com',
    sans: ['10.0.0.5'],
    adminEmail: 'ops@example.com',
    keyType: 'ecdsa',
    jwtAlgorithm: 'EdDSA',
    upstreams: ['127.0.0.1:8080'],
  }

  it('documents every default exactly as the schema has it', () => {
    const rendered = parseConfig(parse(renderTemplate('helix.yaml.eta', values)))
    const defaults = parseConfig({
      domain: 'api.example.com',
      sans: ['10.0.0.5'],
      admin_email: 'ops@example.com',
    })
    defaults.tls.key_type = 'ecdsa'
    defaults.jwt.algorithm = 'EdDSA'
    expect(rendered).toEqual(defaults)
  })

  it('comments every section', () => {
    const text = renderTemplate('helix.yaml.eta', values)
    for (const section of [
      'tls',
      'jwt',
      'server',
      'realtime',
      'logging',
      'nginx',
      'database',
      'redis',
      'auth',
      'rate_limit',
      'mail',
      'models',
    ]) {
      expect(text, section).toMatch(new RegExp(`^${section}:\\n {2}# `, 'm'))
    }
  })
})
