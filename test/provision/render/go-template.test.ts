import { describe, expect, it } from 'vitest'
import { GoTemplate } from './go-template.js'

// The test renderer must behave like Go templates on the constructs the chart uses, or the chart
// tests would prove nothing.
describe('GoTemplate (test helper)', () => {
  const values = {
    Values: { a: { b: 'x' }, list: [1, 2], empty: {}, on: true, off: false, n: 3 },
    Release: { Name: 'rel' },
  }

  it('trims whitespace around {{- and -}}', () => {
    expect(new GoTemplate().render('a  \n  {{- .Values.a.b -}}  \n b', values)).toBe('axb')
  })

  it('renders if / else if / else, with and range', () => {
    const t = new GoTemplate()
    expect(t.render('{{ if .Values.off }}1{{ else if .Values.on }}2{{ else }}3{{ end }}', values)).toBe('2')
    expect(t.render('{{ if .Values.off }}1{{ else }}3{{ end }}', values)).toBe('3')
    expect(
      t.render('{{ with .Values.a }}{{ .b }}{{ end }}|{{ with .Values.empty }}y{{ else }}n{{ end }}', values),
    ).toBe('x|n')
    expect(t.render('{{ range .Values.list }}[{{ . }}]{{ end }}', values)).toBe('[1][2]')
  })

  it('supports define/include, pipelines and the Sprig functions used by the chart', () => {
    const t = new GoTemplate()
    t.addHelpers(
      '{{- define "n" -}}{{ printf "%s-helix-long-name" .Release.Name | trunc 9 | trimSuffix "-" }}{{- end -}}',
    )
    expect(t.render('{{ include "n" . }}', values)).toBe('rel-helix')
    expect(t.render('{{ .Values.missing | default "d" | quote }}', values)).toBe('"d"')
    expect(t.render('k:{{- toYaml .Values.a | nindent 2 }}', values)).toBe('k:\n  b: x')
    expect(t.render('{{ "a\\nb" | indent 1 }}', values)).toBe(' a\n b')
    expect(
      t.render(
        '{{ not .Values.on }} {{ or .Values.off .Values.n }} {{ and .Values.on .Values.off }} {{ eq .Values.n 3 }}',
        values,
      ),
    ).toBe('false 3 false true')
    expect(t.render('{{/* comment */}}{{ (default 1 .Values.n) }}{{ $.Release.Name }}', values)).toBe('3rel')
  })

  it('fail stops rendering with its message, as Helm does', () => {
    expect(() =>
      new GoTemplate().render('a{{ if .Values.on }}{{ fail "no TLS probes" }}{{ end }}', values),
    ).toThrow('execution error: no TLS probes')
    expect(new GoTemplate().render('a{{ if .Values.off }}{{ fail "x" }}{{ end }}', values)).toBe('a')
  })

  it('fails loudly outside the subset', () => {
    expect(() => new GoTemplate().render('{{ lookup "v1" }}', values)).toThrow(/unsupported/)
    expect(() => new GoTemplate().render('{{ if .Values.on }}x', values)).toThrow(/missing/)
    expect(() => new GoTemplate().render('{{ include "nope" . }}', values)).toThrow(/undefined template/)
  })
})
