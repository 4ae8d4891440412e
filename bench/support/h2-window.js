// An experiment for the daemon's gRPC face, loaded into `helix serve` with
// BENCH_DAEMON_NODE_ARGS="--import ./bench/support/h2-window.js": every HTTP/2 session the daemon
// accepts gets a larger connection-level receive window (H2_WINDOW bytes, default 8 MiB) instead of
// Node's 64 KB, which @grpc/grpc-js keeps and offers no server option for, and with H2_STREAM_WINDOW
// a larger initial window per stream (SETTINGS_INITIAL_WINDOW_SIZE) too. With 110 KB requests
// (PP-OCR cls) a 64 KB window makes calls wait for WINDOW_UPDATEs from the server's event loop
// (bench/README.md, gRPC vs REST). It patches node:http2 in that process only.
import http2 from 'node:http2'

const WINDOW = Number(process.env.H2_WINDOW ?? 8 * 1024 * 1024)
const STREAM_WINDOW = process.env.H2_STREAM_WINDOW ? Number(process.env.H2_STREAM_WINDOW) : undefined
for (const name of ['createServer', 'createSecureServer']) {
  const original = http2[name]
  http2[name] = function (options, ...rest) {
    const settings = { ...options?.settings, ...(STREAM_WINDOW ? { initialWindowSize: STREAM_WINDOW } : {}) }
    const server = original.call(this, { ...options, settings }, ...rest)
    server.on('session', (session) => session.once('localSettings', () => session.setLocalWindowSize(WINDOW)))
    return server
  }
}
