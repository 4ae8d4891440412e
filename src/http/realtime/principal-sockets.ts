/** Open sockets per principal, for realtime.max_sockets_per_principal. */
export class PrincipalSockets {
  private readonly open = new Map<string, number>()

  constructor(private readonly max: number) {}

  /** Counts one more socket for `owner`; false (nothing counted) when it already has the most. */
  acquire(owner: string): boolean {
    const count = this.open.get(owner) ?? 0
    if (count >= this.max) return false
    this.open.set(owner, count + 1)
    return true
  }

  release(owner: string): void {
    const count = (this.open.get(owner) ?? 1) - 1
    if (count <= 0) this.open.delete(owner)
    else this.open.set(owner, count)
  }

  count(owner: string): number {
    return this.open.get(owner) ?? 0
  }
}
