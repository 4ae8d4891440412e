import { type ChildProcess, spawn } from 'node:child_process'
import { elementCount, TYPED_ARRAY } from '../../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData } from '../../infer/types.js'
import {
  alignShm,
  closeShm,
  createShmFile,
  readAll,
  SHM_DIR,
  type ShmFile,
  ShmLock,
  shmAvailable,
  unlinkShm,
  writeAll,
} from '../shm-file.js'

/**
 * One Python process running python/helix_torch_worker.py on one TorchScript file. Frames both ways
 * on its stdin/stdout: a 4-byte little-endian header length, a JSON header naming each tensor's
 * datatype, shape and byte count, then the tensors' raw little-endian bytes back to back. Requests
 * are answered in order, one at a time.
 *
 * With the `shm` channel the tensors' bytes move through a file in /dev/shm instead (tmpfs: memory
 * both processes reach): the daemon writes the inputs into it with pwrite, the worker maps it and
 * reads them in place, writes the outputs after them, and the frames carry only the headers, with
 * each tensor's offset. The file is unlinked once the worker has opened it, so nothing is left
 * behind when either process dies. One request at a time uses the file: further requests wait for
 * the answer before their inputs are written.
 */

/** How tensors travel between the daemon and its PyTorch workers (helix.yaml backends.pytorch.channel). */
export type TorchChannel = 'pipe' | 'shm'

/** backends.pytorch.channel as configured: auto is shm where /dev/shm exists, else the pipe. */
export type TorchChannelSetting = TorchChannel | 'auto'

export function resolveChannel(setting: TorchChannelSetting): TorchChannel {
  if (setting !== 'auto') return setting
  return shmAvailable() ? 'shm' : 'pipe'
}

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
  /** The shm channel's file (set by TorchWorker when the channel is shm). */
  shm?: string | null
}

interface TensorHeader {
  name: string
  datatype: Exclude<Datatype, 'BYTES'>
  shape: number[]
  nbytes: number
  /** Where the bytes lie in the shm file (shm channel only). */
  offset?: number
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
  /** Bytes the frame being received needs before it is worth joining the chunks again. */
  private needed = 4
  private stderrTail = ''
  private exitError: Error | undefined
  private readonly shm: ShmFile | undefined
  /** shm channel: one request at a time owns the file. */
  private readonly shmLock = new ShmLock()
  readonly ready: Promise<WorkerHello>
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>

  constructor(python: string, script: string, spec: WorkerSpec, channel: TorchChannel = 'pipe') {
    this.shm = channel === 'shm' ? createTorchShm() : undefined
    this.child = spawn(python, [script, JSON.stringify({ ...spec, shm: this.shm?.path ?? null })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.ready = new Promise<Frame>((resolve, reject) => this.pending.push({ resolve, reject })).then(
      (frame) => {
        if (!frame.header.ok) throw new WorkerExit(frame.header.error ?? 'the worker failed to start')
        return frame.header as unknown as WorkerHello
      },
    )
    // Once the worker has opened the file (or failed), its name is no longer needed.
    this.ready.then(
      () => this.unlinkShm(),
      () => this.unlinkShm(),
    )
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
        if (this.shm) closeShm(this.shm)
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
  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    if (this.exitError) throw this.exitError
    if (!this.shm) return this.exchange(inputs, outputNames)
    // The file passes to the next request only once this one's outputs are read.
    return this.shmLock.exclusive(async () => {
      if (this.exitError) throw this.exitError
      return this.exchange(inputs, outputNames)
    })
  }

  /** Sends one request frame (its tensors inline, or written to the shm file) and decodes the answer. */
  private async exchange(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    const shm = this.shm
    let offset = 0
    const tensors = inputs.map((t) => {
      const data = t.data as Exclude<TensorData, Uint8Array[]>
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      const header: TensorHeader = {
        name: t.name,
        datatype: t.datatype as TensorHeader['datatype'],
        shape: t.shape,
        nbytes: data.byteLength,
      }
      if (shm) {
        header.offset = offset
        writeShm(shm.fd, bytes, offset)
        offset = alignShm(offset + bytes.length)
      }
      return { header, bytes }
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
    if (!shm) for (const t of tensors) if (t.bytes.length) stdin?.write(t.bytes)
    stdin?.uncork()
    const frame = await answer
    if (!frame.header.ok) throw new Error(frame.header.error ?? 'the PyTorch worker failed')
    return shm
      ? readShmTensors(frame.header.tensors ?? [], shm.fd)
      : decodeTensors(frame.header.tensors ?? [], frame.body)
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

  private unlinkShm(): void {
    if (this.shm) unlinkShm(this.shm)
  }

  private receive(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    // A large frame arrives in many pipe-sized chunks: they are joined once it is complete, not at
    // every chunk (which made receiving quadratic in the frame's size).
    if (this.buffered < this.needed) return
    for (;;) {
      this.needed = 4
      if (this.buffered < 4) return
      let all =
        this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered)
      this.chunks = [all]
      const headerLength = all.readUInt32LE(0)
      this.needed = 4 + headerLength
      if (all.length < this.needed) return
      const header = JSON.parse(all.subarray(4, 4 + headerLength).toString('utf8')) as Frame['header']
      // With shm the tensors are in the file, not in the frame.
      const bodyLength = this.shm ? 0 : (header.tensors ?? []).reduce((n, t) => n + t.nbytes, 0)
      const end = 4 + headerLength + bodyLength
      this.needed = end
      if (all.length < end) return
      const body = all.subarray(4 + headerLength, end)
      all = all.subarray(end)
      this.chunks = all.length ? [all] : []
      this.buffered = all.length
      this.pending.shift()?.resolve({ header, body })
    }
  }
}

/** A new shm channel file; the setting named shm where there is no /dev/shm is the user's to fix. */
function createTorchShm(): ShmFile {
  if (!shmAvailable()) {
    throw new WorkerExit(
      `backends.pytorch.channel is shm but ${SHM_DIR} does not exist on this machine; set channel: pipe in helix.yaml`,
    )
  }
  return createShmFile('helix-torch')
}

function writeShm(fd: number, bytes: Buffer, position: number): void {
  try {
    writeAll(fd, bytes, position)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new Error(SHM_FULL)
    throw err
  }
}

/** What a full /dev/shm means for the user (Docker gives containers 64 MB of it by default). */
const SHM_FULL =
  'the batch does not fit in /dev/shm (it is full: a container gets 64 MB unless given more, e.g. docker run --shm-size 1g); give it more room or set backends.pytorch.channel: pipe in helix.yaml'

/** The outputs from the shm file: one pread each, straight into the output's own memory. */
function readShmTensors(headers: TensorHeader[], fd: number): Tensor[] {
  return headers.map((h) => {
    const Ctor = TYPED_ARRAY[h.datatype]
    const data = new Ctor(elementCount(h.shape))
    if (!readAll(fd, new Uint8Array(data.buffer, 0, h.nbytes), h.offset ?? 0))
      throw new Error(`the PyTorch worker's output '${h.name}' lies past the end of its shm file`)
    return { name: h.name, datatype: h.datatype, shape: h.shape, data }
  })
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
