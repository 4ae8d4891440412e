import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { tempDir } from '../../helpers/cli.js'

// Vector is not packaged in Debian, so the rendered file is checked as YAML and for its mapping.
describe('monitoring/vector.yaml (log shipping)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let config: {
    sources: Record<string, { type: string; include_units?: string[] }>
    transforms: Record<string, { type: string; inputs: string[]; source: string; drop_on_error: boolean }>
    sinks: Record<string, Record<string, unknown> & { type: string; inputs: string[] }>
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const home = new HelixHome(join(dir, 'h'))
    await renderArtifacts(home, parseConfig({ admin_email: 'ops@example.com' }), ['monitoring'])
    config = parse(await readFile(join(home.monitoringDir, 'vector.yaml'), 'utf8'))
  })
  afterAll(() => cleanup())

  it('reads the daemon journal, parses each JSON line and maps the fields', () => {
    expect(config.sources.helix_logs).toEqual({ type: 'journald', include_units: ['helix'] })
    const remap = config.transforms.helix_json
    expect(remap).toMatchObject({ type: 'remap', inputs: ['helix_logs'], drop_on_error: true })
    expect(remap.source).toContain('parse_json!(string!(.message))')
    // Each shipped field and the pino field it comes from.
    for (const [field, from] of [
      ['timestamp', 'parsed.time'],
      ['level', 'parsed.level'],
      ['msg', 'parsed.msg'],
      ['reqId', 'parsed.reqId'],
      ['trace_id', 'parsed.trace_id'],
      ['span_id', 'parsed.span_id'],
      ['model', 'model'],
      ['status', 'parsed.res.statusCode'],
    ]) {
      expect(remap.source).toMatch(new RegExp(`"${field}": [^\\n]*${from.replaceAll('.', '\\.')}`))
    }
    // pino's numeric levels become names.
    expect(remap.source).toContain('"30": "info"')
  })

  it('ships to Elasticsearch (daily indices) and Loki (low-cardinality labels)', () => {
    expect(config.sinks.elasticsearch).toMatchObject({
      type: 'elasticsearch',
      inputs: ['helix_json'],
      endpoints: ['http://127.0.0.1:9200'],
      bulk: { index: 'helix-%Y.%m.%d' },
    })
    expect(config.sinks.loki).toMatchObject({
      type: 'loki',
      inputs: ['helix_json'],
      encoding: { codec: 'json' },
      labels: { service: 'helix', level: '{{ level }}' },
    })
    // A trace id per label value would make a stream per request.
    expect(Object.keys(config.sinks.loki.labels as object)).not.toContain('trace_id')
  })
})
