import { readFile } from 'node:fs/promises'
import { UserError } from '../../shared/errors.js'

/** Reads a file given on the command line, as one clear error when it is missing. */
export async function readInputFile(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new UserError(
      'BENCH_INPUT_UNREADABLE',
      `Cannot read --${flag} file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: `Check the path given to --${flag}.`,
        cause: err,
      },
    )
  }
}

/** Parses a JSON file given on the command line. */
export async function readJsonFile<T>(path: string, flag: string): Promise<T> {
  const text = (await readInputFile(path, flag)).toString('utf8')
  try {
    return JSON.parse(text) as T
  } catch (err) {
    throw new UserError(
      'BENCH_INPUT_INVALID',
      `--${flag} file ${path} is not valid JSON: ${(err as Error).message}`,
      {
        hint: `Give --${flag} a JSON file.`,
        cause: err,
      },
    )
  }
}
