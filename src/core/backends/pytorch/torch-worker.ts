import { type ChildProcess, spawn } from 'node:child_process'
import { elementCount, TYPED_ARRAY } from '../../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData } from '../../infer/types.js'

/**
 * One Python process running python/helix_torch_worker.py on one TorchScript file. Frames both ways
 * on its stdin/stdout: a 4-byte little-endian header length, a JSON header naming each tensor's
 * datatype, shape and byte count, then the tensors' raw little-endian bytes back to back. Requests
 * are answered in order, one at a time.
 */

/** What the worker reports once the model is loaded. */
export interface WorkerHello {
  torch: string
  cuda_available: boolean
  /** Where the model runs: 'cpu' or 'cuda:N'. */
  device: string
  device_name: string
  /** Set when device: auto fell back to the CPU: why. */
  fallback: string | null
}

export interface WorkerSpec {
  model: string
  device: string
  gpu: number | null
  threads: number | null
  inputs: { name: string; datatype: string }[]
  outputs: { name: string; datatype: string }[]
}

interface TensorHeader {
  name: string
  datatype: Exclude<Datatype, 'BYTES'>
  shape: number[]
  nbytes: number
}

interface Frame {
  header: { ok: boolean; error?: string; tensors?: TensorHeader[] } & Partial<WorkerHello>
  body: Buffer
}

interface Pending {
  resolve: (frame: Frame) => void
  reject: (err: Error) => void
}

/** Why a worker stopped: its exit code or signal and the last line it wrote to stderr. */
export class WorkerExit extends Error {
  override name = 'WorkerExit'
}

export class TorchWorker {
  private readonly child: ChildProcess
  private readonly pending: Pending[] = []
  private chunks: Buffer[] = []
  private buffered = 0
  private stderrTail = ''
  private exitError: Error | undefined
  readonly ready: Promise<WorkerHello>
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>

  constructor(python: string, script: string, spec: WorkerSpec) {
    this.child = spawn(python, [script, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.ready = new Promise<Frame>((resolve, reject) => this.pending.push({ resolve, reject })).then(
      (frame) => {
        if (!frame.header.ok) throw new WorkerExit(frame.header.error ?? 'the worker failed to start')
        return frame.header as unknown as WorkerHello
      },
    )
    this.ready.catch(() => {})
    this.child.stdout?.on('data', (chunk: Buffer) => this.receive(chunk))
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4096)
    })
    this.child.stdin?.on('error', () => {}) // a dead worker's pipe: the exit handler reports it
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err: NodeJS.ErrnoException) => {
        const reason =
          err.code === 'ENOENT'
            ? `${python} does not exist (backends.pytorch.python in helix.yaml)`
            : err.message
        this.fail(new WorkerExit(reason))
        resolve()
      })
      this.child.on('exit', (code, signal) => {
        const last = lastLine(this.stderrTail)
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`
        this.fail(new WorkerExit(`the PyTorch worker ${how}${last ? `: ${last}` : ''}`))
        resolve()
      })
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.length
  }

  get alive(): boolean {
    return this.exitError === undefined
  }

  /** Runs one batch; rejects with WorkerExit when the process dies first, with Error when the model raised. */
  run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    if (this.exitError) return Promise.reject(this.exitError)
    const tensors = inputs.map((t) => {
      const data = t.data as Exclude<TensorData, Uint8Array[]>
      return {
        header: {
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
          nbytes: data.byteLength,
        },
        bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      }
    })
    const header = Buffer.from(
      JSON.stringify({ tensors: tensors.map((t) => t.header), outputs: outputNames ?? null }),
    )
    const length = Buffer.alloc(4)
    length.writeUInt32LE(header.length)
    const answer = new Promise<Frame>((resolve, reject) => this.pending.push({ resolve, reject }))
    const stdin = this.child.stdin
    stdin?.cork()
    stdin?.write(length)
    stdin?.write(header)
    for (const t of tensors) if (t.bytes.length) stdin?.write(t.bytes)
    stdin?.uncork()
    return answer.then((frame) => {
      if (!frame.header.ok) throw new Error(frame.header.error ?? 'the PyTorch worker failed')
      return decodeTensors(frame.header.tensors ?? [], frame.body)
    })
  }

  /** Stops the process (SIGKILL after a grace period when it ignores its closed stdin). */
  async stop(reason = 'the worker was stopped'): Promise<void> {
    this.fail(new WorkerExit(reason))
    this.child.stdin?.end()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000)
    timer.unref()
    await this.exited
    clearTimeout(timer)
  }

  /** Kills the process at once (a hung worker). */
  kill(reason: string): void {
    this.fail(new WorkerExit(reason))
    this.child.kill('SIGKILL')
  }

  private fail(err: Error): void {
    this.exitError ??= err
    for (const p of this.pending.splice(0)) p.reject(this.exitError)
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    for (;;) {
      if (this.buffered < 4) return
      let all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks)
      this.chunks = [all]
      const headerLength = all.readUInt32LE(0)
      if (all.length < 4 + headerLength) return
      const header = JSON.parse(all.subarray(4, 4 + headerLength).toString('utf8')) as Frame['header']
      const bodyLength = (header.tensors ?? []).reduce((n, t) => n + t.nbytes, 0)
      const end = 4 + headerLength + bodyLength
      if (all.length < end) return
      const body = all.subarray(4 + headerLength, end)
      all = all.subarray(end)
      this.chunks = all.length ? [all] : []
      this.buffered = all.length
      this.pending.shift()?.resolve({ header, body })
    }
  }
}

function decodeTensors(headers: TensorHeader[], body: Buffer): Tensor[] {
  let offset = 0
  return headers.map((h) => {
    const Ctor = TYPED_ARRAY[h.datatype]
    const data = new Ctor(elementCount(h.shape))
    new Uint8Array(data.buffer).set(body.subarray(offset, offset + h.nbytes))
    offset += h.nbytes
    return { name: h.name, datatype: h.datatype, shape: h.shape, data }
  })
}

/** The last non-empty line of a process's stderr (a Python traceback's is the exception). */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim())
  return lines.filter((l) => l.length > 0).at(-1) ?? ''
}
