// `npm run bench -- text`: text generation and embeddings through the built `helix serve` (OpenAI
// API over HTTP, SSE streaming), each against a reference measured in the same run:
//  1. 16 concurrent streamed chats of 64 tokens: continuous batching (text.max_sequences 16) against
//     the same daemon serving the same files with one sequence at a time (max_sequences 1).
//     Targets: aggregate tokens/s >= 3x, p95 time to first token lower.
//  2. One stream of 64 tokens against a direct onnxruntime-node greedy loop (prefill, then one token
//     per step with the KV cache) on the same model file in this process. Target: >= 0.9x.
//  3. Embeddings, 64 concurrent clients of one text each: token-budget batching (max_batch_tokens
//     4096) against batches of one text (max_batch_tokens 16). Target: >= 2x.
// The chat model is generated (hidden 256, 4 layers, Qwen3's 152k vocabulary and real tokenizer); the
// embedding model has all-MiniLM-L6-v2's shape (6 layers, hidden 384).
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { startDaemon } from './lib/daemon.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { importTestHelper } from './support/test-helper.js'

const STREAMS = Number(process.env.BENCH_STREAMS ?? 16)
const TOKENS = Number(process.env.BENCH_TOKENS ?? 64)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const EMBED_CLIENTS = Number(process.env.BENCH_EMBED_CLIENTS ?? 64)
const EMBED_SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const PROMPT = 'Write one sentence about the sea.'
// What 64 concurrent clients embed: search queries (about 11 tokens), and passages (about 60 tokens,
// a retrieval chunk's sentence or two), each measured on its own.
const EMBED_TEXTS = {
  query: 'how do I rotate an API key without downtime?',
  passage:
    'Self-hosted model serving puts text and tensor models behind one secure, observable API on your own machines: ' +
    'certificates, keys, a database, rate limits and metrics come with it, so a team can search its documents ' +
    'without sending them anywhere.',
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** A second model directory serving the same files under another name, with its own config.yaml. */
async function alias(models, from, to, configYaml) {
  const source = join(models, from, '1')
  const target = join(models, to, '1')
  await mkdir(join(target, 'onnx'), { recursive: true })
  for (const entry of await readdir(source))
    if (entry !== 'onnx') await symlink(join(source, entry), join(target, entry))
  await symlink(join(source, 'onnx', 'model.onnx'), join(target, 'onnx', 'model.onnx'))
  await writeFile(join(models, to, 'config.yaml'), configYaml)
}

/** One streamed chat completion; resolves with the arrival time of every content delta. */
async function streamChat(url, model) {
  const started = performance.now()
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model,
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: TOKENS,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  })
  if (!response.ok) throw new Error(`chat ${model}: HTTP ${response.status} ${await response.text()}`)
  const arrivals = []
  let usage
  let buffer = ''
  const decoder = new TextDecoder()
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true })
    let at = buffer.indexOf('\n\n')
    while (at >= 0) {
      const event = buffer.slice(0, at)
      buffer = buffer.slice(at + 2)
      at = buffer.indexOf('\n\n')
      const data = event.replace(/^data: /, '')
      if (data === '[DONE]') continue
      const parsed = JSON.parse(data)
      if (parsed.usage) usage = parsed.usage
      if (parsed.choices?.[0]?.delta?.content) arrivals.push(performance.now())
    }
  }
  if (usage?.completion_tokens !== TOKENS)
    throw new Error(`chat ${model}: ${usage?.completion_tokens} tokens, not ${TOKENS}`)
  return { started, arrivals, ended: performance.now(), tokens: usage.completion_tokens }
}

/** STREAMS concurrent streams: aggregate tokens/s and p95 time to first token. */
async function concurrentChats(url, model) {
  const started = performance.now()
  const runs = await Promise.all(Array.from({ length: STREAMS }, () => streamChat(url, model)))
  const seconds = (performance.now() - started) / 1000
  const tokens = runs.reduce((n, r) => n + r.tokens, 0)
  return {
    tokensPerSecond: tokens / seconds,
    ttftP95Ms: percentile(
      runs.map((r) => r.arrivals[0] - r.started),
      95,
    ),
  }
}

/** The reference loop: onnxruntime-node directly, greedy, KV cache fed back, TOKENS tokens. */
async function directLoop(session, config, promptIds) {
  const { num_hidden_layers: layers, num_key_value_heads: heads, head_dim: dim } = config
  let past = {}
  for (let l = 0; l < layers; l++)
    for (const kind of ['key', 'value'])
      past[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [
        1,
        heads,
        0,
        dim,
      ])
  let ids = promptIds
  let position = 0
  const started = performance.now()
  for (let step = 0; step < TOKENS; step++) {
    const n = ids.length
    const results = await session.run({
      ...past,
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(position + n).fill(1n), [1, position + n]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(ids, (_, i) => BigInt(position + i)),
        [1, n],
      ),
    })
    const logits = results.logits.data
    const vocab = results.logits.dims[2]
    let best = 0
    for (let i = 1, from = (n - 1) * vocab; i < vocab; i++)
      if (logits[from + i] > logits[from + best]) best = i
    position += n
    ids = [best]
    past = {}
    for (let l = 0; l < layers; l++)
      for (const kind of ['key', 'value'])
        past[`past_key_values.${l}.${kind}`] = results[`present.${l}.${kind}`]
  }
  return TOKENS / ((performance.now() - started) / 1000)
}

/** EMBED_CLIENTS clients each sending one text at a time for EMBED_SECONDS: requests per second. */
async function embeddingLoad(url, model, text) {
  const until = performance.now() + EMBED_SECONDS * 1000
  let done = 0
  const client = async () => {
    while (performance.now() < until) {
      const response = await fetch(`${url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, input: text, encoding_format: 'base64' }),
      })
      if (!response.ok)
        throw new Error(`embeddings ${model}: HTTP ${response.status} ${await response.text()}`)
      await response.arrayBuffer()
      done++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: EMBED_CLIENTS }, client))
  return done / ((performance.now() - started) / 1000)
}

async function main() {
  const { writeChatModel, writeEmbeddingModel, BENCH_CHAT_MODEL } = await importTestHelper('text-models')
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-text-'))
  const models = join(dir, 'models')
  const chat = await writeChatModel(join(models, 'chat', '1'), { ...BENCH_CHAT_MODEL, seed: 5 })
  await writeFile(join(models, 'chat', 'config.yaml'), 'text:\n  max_sequences: 16\n')
  await alias(models, 'chat', 'chat-serial', 'text:\n  max_sequences: 1\n')
  // The shape of all-MiniLM-L6-v2 (6 layers, hidden 384), the most used sentence-embedding model.
  await writeEmbeddingModel(join(models, 'embed', '1'), { hidden: 384, heads: 6, layers: 6, seed: 4 })
  await writeFile(join(models, 'embed', 'config.yaml'), 'text:\n  max_batch_tokens: 4096\n')
  await alias(models, 'embed', 'embed-single', 'text:\n  max_batch_tokens: 16\n')
  const daemon = await startDaemon(dir, { timeoutMs: 180_000 })
  // The daemon listens while its models load; wait until all four are ready.
  for (const deadline = Date.now() + 180_000; ; ) {
    const ready = await fetch(`${daemon.url}/v2/health/ready`).catch(() => undefined)
    if (ready?.status === 200) break
    if (Date.now() > deadline) throw new Error('the models did not load within 180 s')
    await new Promise((r) => setTimeout(r, 250))
  }
  const session = await ort.InferenceSession.create(chat.onnxPath, {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  })
  const { Tokenizer } = await import('@huggingface/tokenizers')
  const { Template } = await import('@huggingface/jinja')
  const readJson = async (file) => JSON.parse(await readFile(join(chat.dir, file), 'utf8'))
  const tokenizerJson = await readJson('tokenizer.json')
  const tokenizerConfig = await readJson('tokenizer_config.json')
  const prompt = new Template(tokenizerConfig.chat_template).render({
    messages: [{ role: 'user', content: PROMPT }],
    add_generation_prompt: true,
  })
  const promptIds = new Tokenizer(tokenizerJson, tokenizerConfig).encode(prompt, {
    add_special_tokens: false,
  }).ids
  const rounds = {
    batched: [],
    serial: [],
    single: [],
    direct: [],
    embed: [],
    embedSingle: [],
    passage: [],
    passageSingle: [],
  }
  try {
    // Warm both models (first runs allocate the arenas) before anything is timed.
    await streamChat(daemon.url, 'chat')
    await streamChat(daemon.url, 'chat-serial')
    await directLoop(session, chat.config, promptIds)
    for (let round = 0; round < ROUNDS; round++) {
      rounds.batched.push(await concurrentChats(daemon.url, 'chat'))
      rounds.serial.push(await concurrentChats(daemon.url, 'chat-serial'))
      const one = await streamChat(daemon.url, 'chat')
      rounds.single.push(TOKENS / ((one.ended - one.started) / 1000))
      rounds.direct.push(await directLoop(session, chat.config, promptIds))
      rounds.embed.push(await embeddingLoad(daemon.url, 'embed', EMBED_TEXTS.query))
      rounds.embedSingle.push(await embeddingLoad(daemon.url, 'embed-single', EMBED_TEXTS.query))
      rounds.passage.push(await embeddingLoad(daemon.url, 'embed', EMBED_TEXTS.passage))
      rounds.passageSingle.push(await embeddingLoad(daemon.url, 'embed-single', EMBED_TEXTS.passage))
      const r = rounds
      console.log(
        `round ${round + 1}: batched ${r.batched[round].tokensPerSecond.toFixed(0)} tok/s (p95 TTFT ${r.batched[round].ttftP95Ms.toFixed(0)} ms), ` +
          `one at a time ${r.serial[round].tokensPerSecond.toFixed(0)} tok/s (p95 TTFT ${r.serial[round].ttftP95Ms.toFixed(0)} ms); ` +
          `single stream ${r.single[round].toFixed(0)} vs direct ${r.direct[round].toFixed(0)} tok/s; ` +
          `embeddings: queries ${r.embed[round].toFixed(0)} vs ${r.embedSingle[round].toFixed(0)} req/s, ` +
          `passages ${r.passage[round].toFixed(0)} vs ${r.passageSingle[round].toFixed(0)} req/s`,
      )
    }
  } finally {
    await session.release()
    await daemon.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const batching = median(rounds.batched.map((b, i) => b.tokensPerSecond / rounds.serial[i].tokensPerSecond))
  const ttftBatched = median(rounds.batched.map((b) => b.ttftP95Ms))
  const ttftSerial = median(rounds.serial.map((b) => b.ttftP95Ms))
  const single = median(rounds.single.map((s, i) => s / rounds.direct[i]))
  const embedding = median(rounds.embed.map((e, i) => e / rounds.embedSingle[i]))
  const passages = median(rounds.passage.map((e, i) => e / rounds.passageSingle[i]))
  const verdict = (ok) => (ok ? 'met' : 'MISSED')
  const lines = [
    '## Text generation and embeddings (`npm run bench -- text`)',
    '',
    `${machine()}, ${availableParallelism()} CPUs, load average ${loadavg()[0].toFixed(2)}; ${ROUNDS} rounds, medians of per-round ratios.`,
    `Generated Qwen3-format chat model (hidden 256, 4 layers, 152k vocabulary) and embedding model (all-MiniLM-L6-v2's shape: 6 layers, hidden 384; one text per request), served by one \`helix serve\`.`,
    '',
    '| measure | helix | reference | ratio | target |',
    '| --- | --- | --- | --- | --- |',
    `| ${STREAMS} concurrent streamed chats × ${TOKENS} tokens, aggregate tokens/s | ${median(rounds.batched.map((b) => b.tokensPerSecond)).toFixed(0)} (continuous batching) | ${median(rounds.serial.map((b) => b.tokensPerSecond)).toFixed(0)} (one sequence at a time) | ${batching.toFixed(2)} | ≥ 3 (${verdict(batching >= 3)}) |`,
    `| p95 time to first token, ms | ${ttftBatched.toFixed(0)} | ${ttftSerial.toFixed(0)} | ${(ttftBatched / ttftSerial).toFixed(2)} | lower (${verdict(ttftBatched < ttftSerial)}) |`,
    `| one stream, tokens/s | ${median(rounds.single).toFixed(0)} (HTTP SSE) | ${median(rounds.direct).toFixed(0)} (direct onnxruntime greedy loop) | ${single.toFixed(2)} | ≥ 0.9 (${verdict(single >= 0.9)}) |`,
    `| embeddings, ${EMBED_CLIENTS} clients sending search queries (~11 tokens), requests/s | ${median(rounds.embed).toFixed(0)} (token-budget batches) | ${median(rounds.embedSingle).toFixed(0)} (one text per batch) | ${embedding.toFixed(2)} | ≥ 2 (${verdict(embedding >= 2)}) |`,
    `| embeddings, ${EMBED_CLIENTS} clients sending passages (~60 tokens), requests/s | ${median(rounds.passage).toFixed(0)} (token-budget batches) | ${median(rounds.passageSingle).toFixed(0)} (one text per batch) | ${passages.toFixed(2)} | (no target) |`,
    '',
    'On two CPU cores a passage of ~60 tokens already fills the matrix multiplications better than a',
    'query does, so batching gains less for passages; the encoder computes in a worker thread either way.',
  ]
  console.log(`\n${lines.join('\n')}`)
  writeReadmeSection('text-generation', lines.join('\n'))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
