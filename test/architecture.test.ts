import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers/cli.js'

/**
 * The import rules of docs/architecture.md, checked on every file under src/ (type-only imports
 * count: a type drags its module's concepts along).
 */
const SRC = join(ROOT, 'src')

interface Edge {
  from: string
  /** A path under src/ for relative imports, else the package name. */
  to: string
  local: boolean
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

function importGraph(): Edge[] {
  const edges: Edge[] = []
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file)
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
    for (const { fileName } of importedFiles) {
      if (fileName.startsWith('.')) {
        const to = relative(SRC, resolve(dirname(file), fileName)).replace(/\.js$/, '.ts')
        edges.push({ from, to, local: true })
      } else {
        const parts = fileName.split('/')
        edges.push({
          from,
          to: fileName.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0],
          local: false,
        })
      }
    }
  }
  return edges
}

const layer = (path: string) => path.split('/')[0]

/** Layer → the layers and packages it must never import. */
const FORBIDDEN: Record<string, { layers: string[]; packages?: RegExp }> = {
  shared: { layers: ['state', 'core', 'provision', 'http', 'grpc', 'cli', 'ops', 'commands', 'bench'] },
  state: { layers: ['core', 'provision', 'http', 'grpc', 'cli', 'ops', 'commands', 'bench'] },
  core: {
    layers: ['provision', 'http', 'grpc', 'cli', 'ops', 'commands', 'bench'],
    packages: /^(fastify|@fastify\/.*|@grpc\/.*)$/,
  },
  provision: { layers: ['core', 'http', 'grpc', 'ops', 'commands', 'bench'] },
  http: { layers: ['provision', 'grpc', 'cli', 'ops', 'commands', 'bench'] },
  grpc: { layers: ['provision', 'http', 'cli', 'ops', 'commands', 'bench'] },
  cli: { layers: ['commands'] },
  bench: { layers: ['commands', 'http', 'grpc', 'core', 'provision', 'ops'] },
  ops: { layers: ['commands'] },
  // The realtime client is a library for callers of the daemon: the wire protocol (shared) and ws only.
  client: {
    layers: ['state', 'core', 'provision', 'http', 'grpc', 'cli', 'ops', 'commands', 'bench'],
    packages: /^(fastify|@fastify\/.*|@grpc\/.*)$/,
  },
}

/** Only the REST face may use the web framework. */
const FASTIFY = /^(fastify|@fastify\/.*)$/
/** Only the gRPC face may serve gRPC; helix bench is a client of it. */
const GRPC = /^@grpc\/.*$/

/** Strongly connected components of more than one file (Tarjan), each sorted. */
function cycles(edges: Edge[]): string[][] {
  const next = new Map<string, string[]>()
  for (const e of edges.filter((e) => e.local)) {
    next.set(e.from, [...(next.get(e.from) ?? []), e.to])
  }
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  let counter = 0
  const visit = (v: string) => {
    index.set(v, counter)
    low.set(v, counter++)
    stack.push(v)
    onStack.add(v)
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const v of next.keys()) if (!index.has(v)) visit(v)
  return found
}

describe('import rules', () => {
  const edges = importGraph()

  it('reads the whole tree', () => {
    expect(edges.length).toBeGreaterThan(500)
    expect(new Set(edges.map((e) => layer(e.from)))).toEqual(
      new Set([
        'bench',
        'cli',
        'client',
        'commands',
        'core',
        'grpc',
        'http',
        'ops',
        'provision',
        'shared',
        'state',
      ]),
    )
  })

  it('each layer imports only the layers below it', () => {
    const broken = edges
      .filter((e) => {
        const rule = FORBIDDEN[layer(e.from)]
        if (!rule) return false
        return e.local ? rule.layers.includes(layer(e.to)) : Boolean(rule.packages?.test(e.to))
      })
      .map((e) => `${e.from} -> ${e.to}`)
    expect(broken).toEqual([])
  })

  it('only src/http imports Fastify', () => {
    const broken = edges
      .filter((e) => !e.local && FASTIFY.test(e.to) && layer(e.from) !== 'http')
      .map((e) => `${e.from} -> ${e.to}`)
    expect(broken).toEqual([])
  })

  it('only src/grpc (and the bench client) imports the gRPC packages', () => {
    const broken = edges
      .filter((e) => !e.local && GRPC.test(e.to) && !['grpc', 'bench'].includes(layer(e.from)))
      .map((e) => `${e.from} -> ${e.to}`)
    expect(broken).toEqual([])
  })

  it('has no import cycles', () => {
    expect(cycles(edges)).toEqual([])
  })

  it('finds a cycle and a broken rule when there is one', () => {
    const made: Edge[] = [
      { from: 'core/a.ts', to: 'core/b.ts', local: true },
      { from: 'core/b.ts', to: 'core/a.ts', local: true },
      { from: 'core/c.ts', to: 'core/a.ts', local: true },
    ]
    expect(cycles(made)).toEqual([['core/a.ts', 'core/b.ts']])
  })
})
