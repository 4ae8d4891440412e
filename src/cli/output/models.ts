import type { AddedModel, RemovedModel } from '../../core/infer/repository-admin.js'
import type { ModelIndexEntry } from '../../core/infer/types.js'
import { renderTable } from './table.js'

/** `helix models list` for humans. */
export function renderModelList(rows: ModelIndexEntry[]): string {
  if (rows.length === 0) return 'No models in the repository. Add one with `helix models add NAME PATH`.'
  const table = renderTable(
    ['NAME', 'VERSION', 'STATE', 'DEVICE', 'PROVIDER', 'REASON'],
    rows.map((r) => [
      r.name,
      r.version,
      r.state,
      r.device ?? '-',
      r.executionProvider ?? '-',
      r.reason ?? r.fallbackReason ?? '',
    ]),
  )
  return table
}

export function renderAdded(added: AddedModel): string {
  const spec = (s: { name: string; datatype: string; shape: number[] }) =>
    `${s.name} ${s.datatype} [${s.shape.join(',')}]`
  return [
    `Added ${added.name} version ${added.version} at ${added.path}`,
    `  inputs:  ${added.inputs.map(spec).join(', ')}`,
    `  outputs: ${added.outputs.map(spec).join(', ')}`,
    ...(added.task ? [`  task:    ${added.task} (served under /v1 with the OpenAI API)`] : []),
    `A running daemon picks it up with \`helix models load ${added.name}\`.`,
  ].join('\n')
}

export function renderRemoved(removed: RemovedModel): string {
  return `Removed ${removed.name} version${removed.versions.length === 1 ? '' : 's'} ${removed.versions.join(', ') || '(none)'}.`
}
