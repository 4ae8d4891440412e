import { MIGRATIONS_TABLE } from '../../state/db/migrator.js'
import type { Queryable } from '../../state/db/pool.js'

export interface TableInfo {
  name: string
  /** Column names in table order; a restore must find exactly these. */
  columns: string[]
  /** Primary-key columns, the export order (stable between runs). */
  primaryKey: string[]
}

/**
 * The data tables of the helix schema (every ordinary table in the current schema except the
 * migrations ledger, which backups carry in their manifest). Helix expects a database of its own.
 */
export async function listTables(db: Queryable): Promise<TableInfo[]> {
  const { rows } = await db.query<{ name: string; columns: string[]; primary_key: string[] | null }>(
    `SELECT c.relname AS name,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key
       FROM pg_class c
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> $1
      ORDER BY c.relname COLLATE "C"`,
    [MIGRATIONS_TABLE],
  )
  return rows.map((r) => ({ name: r.name, columns: r.columns, primaryKey: r.primary_key ?? r.columns }))
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * A checksum of a table's content computed by the server (row count and SHA-256 over every row's
 * canonical jsonb text in byte order), independent of physical order, so a restore can prove that
 * it reproduced the rows exactly before it commits.
 */
export async function tableContentChecksum(
  db: Queryable,
  table: string,
): Promise<{ rows: number; sha256: string }> {
  const t = quoteIdent(table)
  const { rows } = await db.query<{ rows: string; sha256: string }>(
    `SELECT count(*) AS rows,
            encode(sha256(convert_to(coalesce(string_agg(r, E'\\n' ORDER BY r COLLATE "C"), ''), 'UTF8')), 'hex') AS sha256
       FROM (SELECT to_jsonb(t)::text AS r FROM ${t} t) s`,
  )
  return { rows: Number(rows[0].rows), sha256: rows[0].sha256 }
}
