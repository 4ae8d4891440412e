import { stringify } from 'yaml'

/**
 * A small Go text/template (+ the Sprig functions Helm adds) renderer for exactly the subset the helix
 * chart uses, so tests can render the chart without a helm binary: actions with `{{-`/`-}}` trimming,
 * comments, define/include, if/else if/else, with/else, range, pipelines, parentheses, `.` / `$` field
 * paths, and the functions default, quote, toYaml, nindent, indent, trunc, trimSuffix, printf, fail,
 * not, and, or, eq. Anything else is an error, so a template that strays from the subset fails loudly.
 */

type Value = unknown
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'output'; pipe: string }
  | { kind: 'if'; branches: { pipe: string; body: Node[] }[]; otherwise: Node[] }
  | { kind: 'with'; pipe: string; body: Node[]; otherwise: Node[] }
  | { kind: 'range'; pipe: string; body: Node[] }

interface Token {
  kind: 'text' | 'action'
  value: string
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = []
  let rest = source
  for (;;) {
    const open = rest.indexOf('{{')
    if (open < 0) {
      tokens.push({ kind: 'text', value: rest })
      return applyTrims(tokens)
    }
    const close = rest.indexOf('}}', open)
    if (close < 0) throw new Error(`unclosed action: ${rest.slice(open, open + 40)}`)
    tokens.push({ kind: 'text', value: rest.slice(0, open) })
    tokens.push({ kind: 'action', value: rest.slice(open + 2, close) })
    rest = rest.slice(close + 2)
  }
}

/** `{{-` eats the whitespace before the action, `-}}` the whitespace after it. */
function applyTrims(tokens: Token[]): Token[] {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]
    if (token.kind !== 'action') continue
    if (/^-\s/.test(token.value)) {
      tokens[i - 1].value = tokens[i - 1].value.replace(/\s+$/, '')
      token.value = token.value.slice(2)
    }
    if (/\s-$/.test(token.value)) {
      tokens[i + 1].value = tokens[i + 1].value.replace(/^\s+/, '')
      token.value = token.value.slice(0, -2)
    }
    token.value = token.value.trim()
  }
  return tokens
}

function parse(source: string, defines: Map<string, Node[]>): Node[] {
  const tokens = tokenize(source)
  let pos = 0

  /** Parses until one of `stops` (an action keyword) and returns the nodes and the stop action. */
  function block(stops: string[]): { nodes: Node[]; stop: string } {
    const nodes: Node[] = []
    while (pos < tokens.length) {
      const token = tokens[pos++]
      if (token.kind === 'text') {
        if (token.value) nodes.push({ kind: 'text', text: token.value })
        continue
      }
      const action = token.value
      if (action.startsWith('/*')) continue
      const keyword = action.split(/\s+/)[0]
      if (stops.includes(keyword)) return { nodes, stop: action }
      if (keyword === 'define') {
        const name = JSON.parse(action.slice('define'.length).trim()) as string
        defines.set(name, block(['end']).nodes)
      } else if (keyword === 'if') {
        const branches: { pipe: string; body: Node[] }[] = []
        let pipe = action.slice(2).trim()
        let otherwise: Node[] = []
        for (;;) {
          const part = block(['else', 'end'])
          branches.push({ pipe, body: part.nodes })
          if (part.stop === 'end') break
          if (part.stop.startsWith('else if')) {
            pipe = part.stop.slice('else if'.length).trim()
            continue
          }
          otherwise = block(['end']).nodes
          break
        }
        nodes.push({ kind: 'if', branches, otherwise })
      } else if (keyword === 'with') {
        const body = block(['else', 'end'])
        const otherwise = body.stop === 'else' ? block(['end']).nodes : []
        nodes.push({ kind: 'with', pipe: action.slice(4).trim(), body: body.nodes, otherwise })
      } else if (keyword === 'range') {
        nodes.push({ kind: 'range', pipe: action.slice(5).trim(), body: block(['end']).nodes })
      } else if (keyword === 'end' || keyword === 'else') {
        throw new Error(`unexpected {{${action}}}`)
      } else {
        nodes.push({ kind: 'output', pipe: action })
      }
    }
    if (stops.length > 0) throw new Error(`missing {{${stops.join('|')}}}`)
    return { nodes, stop: '' }
  }
  return block([]).nodes
}

function truthy(value: Value): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === 'object') return Object.keys(value as object).length > 0
  return true
}

function text(value: Value): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/** Splits a pipeline or command on a separator, outside strings and parentheses. */
function split(source: string, separator: RegExp): string[] {
  const parts: string[] = []
  let depth = 0
  let quoted = false
  let current = ''
  for (let i = 0; i < source.length; i++) {
    const c = source[i]
    if (quoted) {
      current += c
      if (c === '\\') current += source[++i]
      else if (c === '"') quoted = false
      continue
    }
    if (c === '"') quoted = true
    if (c === '(') depth++
    if (c === ')') depth--
    if (depth === 0 && separator.test(c)) {
      if (current.trim()) parts.push(current.trim())
      current = ''
      continue
    }
    current += c
  }
  if (current.trim()) parts.push(current.trim())
  return parts
}

export class GoTemplate {
  private readonly defines = new Map<string, Node[]>()

  /** Parses a file for its `define`s (e.g. _helpers.tpl). */
  addHelpers(source: string): void {
    parse(source, this.defines)
  }

  render(source: string, root: Record<string, Value>): string {
    const nodes = parse(source, this.defines)
    return this.run(nodes, root, root)
  }

  private run(nodes: Node[], dot: Value, root: Value): string {
    let out = ''
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          out += node.text
          break
        case 'output':
          out += text(this.pipeline(node.pipe, dot, root))
          break
        case 'if': {
          const branch = node.branches.find((b) => truthy(this.pipeline(b.pipe, dot, root)))
          out += this.run(branch ? branch.body : node.otherwise, dot, root)
          break
        }
        case 'with': {
          const value = this.pipeline(node.pipe, dot, root)
          out += truthy(value) ? this.run(node.body, value, root) : this.run(node.otherwise, dot, root)
          break
        }
        case 'range': {
          const value = this.pipeline(node.pipe, dot, root)
          const items = Array.isArray(value) ? value : truthy(value) ? Object.values(value as object) : []
          for (const item of items) out += this.run(node.body, item, root)
          break
        }
      }
    }
    return out
  }

  private pipeline(source: string, dot: Value, root: Value): Value {
    let piped: Value
    let first = true
    for (const command of split(source, /\|/)) {
      piped = this.command(command, dot, root, first ? [] : [piped])
      first = false
    }
    return piped
  }

  private command(source: string, dot: Value, root: Value, piped: Value[]): Value {
    const [head, ...rest] = split(source, /\s/)
    const args = () => [...rest.map((a) => this.operand(a, dot, root)), ...piped]
    switch (head) {
      case 'include': {
        const [name, context] = args() as [string, Value]
        const body = this.defines.get(name)
        if (!body) throw new Error(`include of undefined template ${name}`)
        return this.run(body, context, root)
      }
      case 'default': {
        const [fallback, value] = args()
        return truthy(value) ? value : fallback
      }
      case 'quote':
        return JSON.stringify(text(args()[0]))
      case 'toYaml':
        return stringify(args()[0]).replace(/\n$/, '')
      case 'nindent': {
        const [n, s] = args() as [number, string]
        return `\n${indent(n, text(s))}`
      }
      case 'indent': {
        const [n, s] = args() as [number, string]
        return indent(n, text(s))
      }
      case 'trunc': {
        const [n, s] = args() as [number, string]
        return text(s).slice(0, n)
      }
      case 'trimSuffix': {
        const [suffix, s] = args() as [string, string]
        return text(s).endsWith(suffix) ? text(s).slice(0, -suffix.length) : text(s)
      }
      case 'printf': {
        const [format, ...values] = args() as [string, ...Value[]]
        let i = 0
        return format.replace(/%[sdv]/g, () => text(values[i++]))
      }
      case 'fail':
        throw new Error(`execution error: ${text(args()[0])}`)
      case 'not':
        return !truthy(args()[0])
      case 'and':
        return args().reduce((a, b) => (truthy(a) ? b : a))
      case 'or':
        return args().reduce((a, b) => (truthy(a) ? a : b))
      case 'eq': {
        const [a, b] = args()
        return a === b
      }
    }
    if (rest.length > 0 || piped.length > 0) throw new Error(`unsupported function in {{${source}}}`)
    return this.operand(head, dot, root)
  }

  private operand(token: string, dot: Value, root: Value): Value {
    if (token.startsWith('(') && token.endsWith(')')) return this.pipeline(token.slice(1, -1), dot, root)
    if (token.startsWith('"')) return JSON.parse(token)
    if (/^-?\d+(\.\d+)?$/.test(token)) return Number(token)
    if (token === 'true' || token === 'false') return token === 'true'
    if (token === '.') return dot
    if (token === '$') return root
    if (token.startsWith('.') || token.startsWith('$.')) {
      let value: Value = token.startsWith('$') ? root : dot
      for (const field of token.replace(/^\$/, '').slice(1).split('.')) {
        value = value === undefined || value === null ? undefined : (value as Record<string, Value>)[field]
      }
      return value
    }
    throw new Error(`unsupported operand ${token}`)
  }
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n)
  return s
    .split('\n')
    .map((line) => pad + line)
    .join('\n')
}
