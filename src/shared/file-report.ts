/** What a provisioning step did to the helix directory; paths are relative to its root. */
export interface FileReport {
  created: string[]
  kept: string[]
}

export function mergeReports(...reports: FileReport[]): FileReport {
  return {
    created: reports.flatMap((r) => r.created),
    kept: reports.flatMap((r) => r.kept),
  }
}
