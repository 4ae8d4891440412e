import { Flags } from '@oclif/core'
import { cliCreateUser } from '../../cli/admin.js'
import type { PublicUser } from '../../core/identity/accounts.js'
import { HelixCommand } from '../../shared/base-command.js'
import { UserError } from '../../shared/errors.js'

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

export default class UsersCreate extends HelixCommand<{ user: PublicUser; advice?: string }> {
  static summary = 'Create a user account (and mail an e-mail verification link).'
  static description =
    'Passwords are read from stdin with --password-stdin so they never appear in the process list or shell history. Without a password the user signs in after a password reset.'
  static examples = [
    '<%= config.bin %> users create --email ada@example.com --admin',
    'printf %s "$PASSWORD" | <%= config.bin %> users create --email ada@example.com --password-stdin --json',
  ]
  static flags = {
    email: Flags.string({ description: 'E-mail address (unique, case-insensitive).', required: true }),
    name: Flags.string({ description: 'Display name.' }),
    admin: Flags.boolean({ description: 'Make the user an administrator.', default: false }),
    'password-stdin': Flags.boolean({ description: 'Read the password from stdin.', default: false }),
  }

  async run(): Promise<{ user: PublicUser; advice?: string }> {
    const { flags } = await this.parse(UsersCreate)
    const password = flags['password-stdin'] ? await readStdin() : undefined
    if (flags['password-stdin'] && !password) {
      throw new UserError('INVALID_INPUT', 'No password arrived on stdin.', {
        hint: 'Pipe it in: printf %s "$PASSWORD" | helix users create …',
      })
    }
    const result = await cliCreateUser(this.home, await this.config_(), {
      email: flags.email,
      ...(password !== undefined ? { password } : {}),
      ...(flags.name ? { displayName: flags.name } : {}),
      admin: flags.admin,
    })
    this.log(`Created ${result.user.role} ${result.user.email} (${result.user.id}).`)
    if (result.advice) this.note(result.advice)
    return result
  }
}
