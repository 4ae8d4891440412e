import type { Sample } from './step-recorder.js'

/** What one request contributes before the loop stamps its completion time. */
export type Outcome = Omit<Sample, 'at'>

/**
 * What the closed and open loops drive: `send(from, lane)` makes one request on lane `lane` and
 * resolves (never rejects) with its outcome, latency measured from `from` (performance.now() time).
 * LoadClient speaks HTTP/1.1, GrpcLoadClient gRPC.
 */
export interface LoadSender {
  send(from: number, lane?: number): Promise<Outcome>
  close(): Promise<void>
}
