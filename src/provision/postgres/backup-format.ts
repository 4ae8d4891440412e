import { createReadStream } from 'node:fs'
import { type Static, Type } from '@sinclair/typebox'

/**
 * A helix backup is one UTF-8 text file of newline-terminated lines:
 *
 *   HELIX-BACKUP 1
 *   {manifest JSON}
 *   @table <name>          then one line per row: the row as canonical jsonb text
 *   …                      (one @table section per manifest table, in manifest order)
 *   @end <sha256>          SHA-256 of every byte before this line
 *
 * JSON never contains a raw newline, so lines are rows. A file that lacks the @end line was
 * truncated; a file whose bytes do not hash to it was altered. Both are refused before a restore
 * writes anything.
 */
export const BACKUP_MAGIC = 'HELIX-BACKUP 1'
export const TABLE_MARK = '@table '
export const END_MARK = '@end '

export const BackupManifestSchema = Type.Object({
  format: Type.Literal(1),
  created_at: Type.String(),
  server_version: Type.String(),
  /** The newest applied migration: the schema version of the data. */
  schema_version: Type.Union([Type.String(), Type.Null()]),
  migrations: Type.Array(
    Type.Object({
      version: Type.Integer(),
      name: Type.String(),
      checksum: Type.String(),
      applied_at: Type.String(),
      execution_ms: Type.Integer(),
    }),
  ),
  tables: Type.Array(
    Type.Object({
      name: Type.String(),
      columns: Type.Array(Type.String()),
      rows: Type.Integer({ minimum: 0 }),
      /** SHA-256 of the table's section in this file (its row lines with their newlines). */
      sha256: Type.String(),
      /** The server-side content checksum at backup time (tableContentChecksum). */
      content_sha256: Type.String(),
    }),
  ),
})
export type BackupManifest = Static<typeof BackupManifestSchema>

/** Reads a file as lines split on \n; `terminated` is false only for a last line without \n. */
export async function* readLines(path: string): AsyncGenerator<{ line: Buffer; terminated: boolean }> {
  let rest: Buffer = Buffer.alloc(0)
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    let buffer = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer)
    let newline = buffer.indexOf(10)
    while (newline !== -1) {
      yield { line: buffer.subarray(0, newline), terminated: true }
      buffer = buffer.subarray(newline + 1)
      newline = buffer.indexOf(10)
    }
    rest = Buffer.from(buffer)
  }
  if (rest.length > 0) yield { line: rest, terminated: false }
}
