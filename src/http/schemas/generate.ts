import { type Static, Type } from '@sinclair/typebox'

/**
 * TypeBox schemas of Triton's generate extension (KServe v2 REST): POST …/generate and
 * …/generate_stream. Errors are the KServe shape, {"error": "…"}.
 */

export const GenerateParameters = Type.Object(
  {
    max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    seed: Type.Optional(Type.Integer()),
    stop: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
    frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
    ignore_eos: Type.Optional(Type.Boolean({ description: 'Generate max_tokens whatever the model says.' })),
  },
  { description: 'Sampling parameters; parameters not listed here are ignored, as Triton passes them on.' },
)

export const GenerateBody = Type.Object({
  id: Type.Optional(Type.String()),
  text_input: Type.String({ description: 'The prompt, as it is (no chat template).' }),
  parameters: Type.Optional(GenerateParameters),
})
export type GenerateBody = Static<typeof GenerateBody>

export const GenerateResponse = Type.Object(
  {
    id: Type.Optional(Type.String()),
    model_name: Type.String(),
    model_version: Type.String(),
    text_output: Type.String(),
  },
  { description: 'generate_stream answers text/event-stream: one such object per piece of text.' },
)
