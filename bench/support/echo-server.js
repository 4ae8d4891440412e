// A bare Fastify echo server (the reference "fastest possible Node HTTP service"), run as its own
// process so it never shares an event loop with a load generator. Prints "listening on <url>".
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
app.all('/echo', async (req) => req.body ?? { ok: true })
// The KServe shapes of the tiny model (bench/support/tiny-model.js), so the same helix bench run fits
// both servers: fixed metadata and a fixed answer.
app.get('/v2/models/:model', async (req) => ({
  name: req.params.model,
  versions: ['1'],
  platform: 'onnxruntime_onnx',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
}))
app.post('/v2/models/:model/infer', async (req) => ({
  model_name: req.params.model,
  model_version: '1',
  outputs: [],
}))
const url = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(`listening on ${url}`)
process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
