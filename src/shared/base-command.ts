import { Command, Errors, Flags, type Interfaces } from '@oclif/core'
import { type HelixConfig, loadConfig } from './config.js'
import { toHelixError } from './errors.js'
import { DEFAULT_HELIX_DIR, HelixHome } from './home.js'

export type HelixFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof HelixCommand)['baseFlags'] & T['flags']
>
export type HelixArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * Base of every helix command: --dir / HELIX_DIR, --json (one JSON document on stdout; errors as
 * {"error":{code,message}} on stderr), --verbose, and the exit-code contract of README.md
 * (0 ok, 1 failure, 2 bad usage or input).
 */
export abstract class HelixCommand<T = unknown> extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    dir: Flags.string({
      description: 'Helix directory holding config, certificates, keys, models and data.',
      env: 'HELIX_DIR',
      default: DEFAULT_HELIX_DIR,
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({
      description: 'Print more detail, including stack traces of errors.',
      default: false,
      helpGroup: 'GLOBAL',
    }),
  }

  protected home!: HelixHome
  protected verbose = false

  public async init(): Promise<void> {
    await super.init()
    const { flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as typeof HelixCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.home = new HelixHome(flags.dir as string)
    this.verbose = Boolean(flags.verbose) || Boolean(process.env.DEBUG)
  }

  /** Loads helix.yaml (+ env, + the given overrides) for this command's helix directory. */
  protected async config_(overrides: Record<string, unknown> = {}): Promise<HelixConfig> {
    return loadConfig(this.home, overrides)
  }

  /** Prompts are allowed only on a TTY, without --yes and without --json (the CLI contract: scripts and CI never block on a question). */
  protected interactive(yes = false): boolean {
    return Boolean(process.stdin.isTTY) && !yes && !this.jsonEnabled() && !process.env.CI
  }

  /** Prints a warning line on stderr (never pollutes --json stdout). */
  protected note(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${message}\n`)
  }

  protected async catch(err: Error & { exitCode?: number }): Promise<never> {
    if (err instanceof Errors.ExitError) throw err
    const error = toHelixError(err)
    if (this.jsonEnabled()) {
      process.stderr.write(`${JSON.stringify({ error: error.toJSON() })}\n`)
    } else {
      process.stderr.write(`Error: ${error.message}\n`)
      if (error.hint) process.stderr.write(`Hint: ${error.hint}\n`)
      if (this.verbose) process.stderr.write(`${(error.cause as Error | undefined)?.stack ?? error.stack}\n`)
    }
    throw new Errors.ExitError(error.exitCode)
  }

  abstract run(): Promise<T>
}
