import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { type BuildAppOptions, buildApp } from '../../../src/http/app.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  addToRepository,
  CLS_MODEL_PATH,
  corruptModel,
  IDENTITY_DATATYPES,
  identityModel,
  matmulChainModel,
  multiIoModel,
  recurrentModel,
  scaleModel,
} from '../../helpers/onnx-models.js'

/** The models every app test can call, in a fresh repository of real .onnx files. */
export async function modelRepository(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('helix-app-')
  await addToRepository(dir, 'cls', await readFile(CLS_MODEL_PATH))
  await addToRepository(dir, 'add', addModel())
  await addToRepository(dir, 'multi', multiIoModel())
  await addToRepository(dir, 'recurrent', recurrentModel())
  await addToRepository(dir, 'scale', scaleModel(2), { version: 1 })
  await addToRepository(dir, 'scale', scaleModel(3), {
    version: 2,
    config: { version_policy: { all: true } },
  })
  await addToRepository(dir, 'slow', matmulChainModel(256, 64), {
    config: { max_batch_size: 0, queue: { max_size: 1 } },
  })
  await addToRepository(dir, 'broken', corruptModel())
  for (const datatype of IDENTITY_DATATYPES) {
    await addToRepository(dir, `id_${datatype.toLowerCase()}`, identityModel(datatype))
  }
  return { dir, cleanup }
}

export interface TestApp {
  app: FastifyInstance
  service: HelixModelService
  repositoryDir: string
  close: () => Promise<void>
}

/** A built app over a real model service and repository; close() tears everything down. */
export async function testApp(options: Partial<BuildAppOptions> = {}): Promise<TestApp> {
  const repo = await modelRepository()
  const service = await createModelService({ repositoryDir: repo.dir, defaultDevice: 'cpu' })
  const app = await buildApp({ service, ...options })
  return {
    app,
    service,
    repositoryDir: repo.dir,
    close: async () => {
      await app.close()
      await service.close()
      await repo.cleanup()
    },
  }
}

/** A binary-extension request body: JSON header then the raw bytes of each binary input. */
export function binaryBody(
  header: unknown,
  ...tensors: ArrayBufferView[]
): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header))
  const parts = tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))
  return { body: Buffer.concat([json, ...parts]), headerLength: json.length }
}

/** The JSON header of a binary-extension response. */
export interface BinaryHeader {
  model_name: string
  model_version: string
  outputs: {
    name: string
    datatype: string
    shape: number[]
    data?: unknown[]
    parameters: { binary_data_size: number }
  }[]
}

/** Splits a binary-extension response into its JSON header and the bytes after it. */
export function splitBinaryResponse(
  raw: Buffer,
  headerLength: number,
): { header: BinaryHeader; tail: Buffer } {
  return { header: JSON.parse(raw.subarray(0, headerLength).toString()), tail: raw.subarray(headerLength) }
}
