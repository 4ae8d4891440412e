/** One serialised server frame. `sent` turns true once it is handed to the socket. */
export interface OutFrame {
  readonly text: string
  /** Its size for the buffer limits (UTF-16 units: JSON frames are mostly ASCII). */
  readonly size: number
  sent: boolean
}

export function outFrame(text: string): OutFrame {
  return { text, size: text.length, sent: false }
}

/** What the writer needs of a WebSocket (ws's WebSocket fits). */
export interface FrameSink {
  /** Bytes accepted by send() but not yet written to the network. */
  readonly bufferedAmount: number
  /** `done` runs once the frame is written out (or failed). */
  send(text: string, done: (err?: Error) => void): void
}

export interface FrameWriterLimits {
  /** Frames wait while the socket buffers at least this much. */
  highWaterBytes: number
  /** Past this much waiting to be sent, the reader is too slow: overflow. */
  maxQueueBytes: number
}

/**
 * The send side of one socket with backpressure: frames go to the socket while its buffer is below
 * the high-water mark and wait in a queue otherwise; each write that completes sends more. Nothing
 * here waits for the client, so a producer (a generation) never blocks on a slow reader: past
 * maxQueueBytes the writer gives up and calls onOverflow once.
 */
export class FrameWriter {
  private queue: (OutFrame | undefined)[] = []
  private head = 0
  private queuedBytes = 0
  private stopped = false

  constructor(
    private readonly sink: FrameSink,
    private readonly limits: FrameWriterLimits,
    private readonly onOverflow: () => void,
  ) {}

  /** Bytes waiting in the queue (not yet handed to the socket). */
  get queued(): number {
    return this.queuedBytes
  }

  get closed(): boolean {
    return this.stopped
  }

  push(frame: OutFrame): void {
    if (this.stopped) return
    this.queue.push(frame)
    this.queuedBytes += frame.size
    this.pump()
    // Only frames left waiting count: the socket itself holds at most the high-water mark plus one
    // frame, so a single large answer to a client that reads is never mistaken for a slow reader.
    if (this.queuedBytes > this.limits.maxQueueBytes) {
      this.stop()
      this.onOverflow()
    }
  }

  /** Drops what waits; later pushes are ignored (the socket is closing or gone). */
  stop(): void {
    this.stopped = true
    this.queue = []
    this.head = 0
    this.queuedBytes = 0
  }

  private readonly pump = (err?: Error): void => {
    if (err) return
    while (!this.stopped && this.head < this.queue.length) {
      if (this.sink.bufferedAmount >= this.limits.highWaterBytes) return
      const frame = this.queue[this.head] as OutFrame
      this.queue[this.head++] = undefined
      this.queuedBytes -= frame.size
      frame.sent = true
      this.sink.send(frame.text, this.pump)
    }
    if (this.head > 0 && this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }
}
