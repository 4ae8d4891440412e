import { execaSync } from 'execa'

/**
 * Whether an external tool (nginx, openssl, redis-server, promtool…) is installed. Tests that need one
 * use `describe.skipIf(!hasTool(x))` locally; under CI=true a missing tool throws instead, so CI can
 * never pass by skipping (.ci/run installs them all).
 */
export function hasTool(name: string): boolean {
  const found = execaSync('sh', ['-c', `command -v ${name}`], { reject: false }).exitCode === 0
  if (!found && process.env.CI) {
    throw new Error(`${name} is required under CI=true but is not installed (see .ci/run)`)
  }
  if (!found)
    console.warn(`skipping tests that need ${name}: install it (apt-get install ${name}) to run them`)
  return found
}

/** Debian's Python with python3-grpcio and python3-grpc-tools (the distribution's, not a pyenv shim). */
export const DEBIAN_PYTHON = '/usr/bin/python3'

/** Whether Debian's Python can generate and run gRPC clients; under CI=true a missing one fails. */
export function hasPythonGrpc(): boolean {
  const found =
    execaSync(DEBIAN_PYTHON, ['-c', 'import grpc, grpc_tools.protoc'], { reject: false }).exitCode === 0
  if (!found && process.env.CI) {
    throw new Error('python3-grpcio and python3-grpc-tools are required under CI=true (see .ci/run)')
  }
  if (!found) {
    console.warn('skipping tests that need python3-grpcio: apt-get install python3-grpcio python3-grpc-tools')
  }
  return found
}

/** Whether Debian's Python can import torch (python3-torch); under CI=true a missing one fails. */
export function hasPythonTorch(): boolean {
  const found = execaSync(DEBIAN_PYTHON, ['-c', 'import torch'], { reject: false }).exitCode === 0
  if (!found && process.env.CI) {
    throw new Error('python3-torch is required under CI=true (see .ci/run)')
  }
  if (!found) console.warn('skipping tests that need torch: apt-get install python3-torch')
  return found
}
