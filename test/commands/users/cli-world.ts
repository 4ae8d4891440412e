import { migrate } from '../../../src/state/db/migrator.js'
import { type DatabasePool, openDatabase } from '../../../src/state/db/pool.js'
import { provisionDatabase, type TestDatabase } from '../../state/db/database-targets.js'

/** A migrated embedded PostgreSQL in a fresh helix directory, for driving the built CLI. */
export interface CliWorld {
  database: TestDatabase
  db: DatabasePool
  env: Record<string, string | undefined>
  teardown(): Promise<void>
}

export async function cliWorld(): Promise<CliWorld> {
  const database = await provisionDatabase('embedded')
  const db = await openDatabase(database.target, database.config.database)
  await migrate(db)
  return {
    database,
    db,
    env: database.env,
    teardown: async () => {
      await db.close()
      await database.teardown()
    },
  }
}
