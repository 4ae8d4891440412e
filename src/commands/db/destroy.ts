import { Flags } from '@oclif/core'
import { type DestroyResult, destroyDatabase } from '../../provision/postgres/database.js'
import { HelixCommand } from '../../shared/base-command.js'
import { UserError } from '../../shared/errors.js'

export default class DbDestroy extends HelixCommand<DestroyResult> {
  static summary = 'Stop the embedded PostgreSQL and delete its data for good (wherever it lives).'
  static description =
    'Removes the cluster (data/postgres, or the directory under /var/lib/helix that `helix db status` shows when helix runs as root and the server user cannot reach the helix directory) and data/postgres.json. The next `helix db start` or `helix up` creates an empty database. Back up first with `helix db backup`.'
  static examples = ['<%= config.bin %> db backup --out helix.backup && <%= config.bin %> db destroy --yes']
  static flags = {
    yes: Flags.boolean({ description: 'Confirm the deletion (it cannot be undone).', default: false }),
  }

  async run(): Promise<DestroyResult> {
    const { flags } = await this.parse(DbDestroy)
    if (!flags.yes) {
      throw new UserError(
        'CONFIRMATION_REQUIRED',
        'Destroying the embedded database deletes all of its data.',
        {
          hint: 'Back it up with `helix db backup --out FILE`, then run again with --yes to confirm.',
        },
      )
    }
    const result = await destroyDatabase(this.home, await this.config_())
    this.log(
      result.removed
        ? `Deleted the embedded database at ${result.removed}${result.stopped ? ' (stopped it first)' : ''}.`
        : 'There was no embedded database to delete.',
    )
    return result
  }
}
