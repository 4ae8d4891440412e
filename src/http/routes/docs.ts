import type {} from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { renderTemplate } from '../../shared/templates.js'

/** GET /openapi.json (OpenAPI 3.1 generated from the route schemas) and the /docs explorer. */
export async function docsRoutes(app: FastifyInstance, options: { title: string }) {
  let page: string | undefined
  let script: string | undefined
  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  )
  app.get('/docs', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    page ??= renderTemplate('docs/explorer.html.eta', {
      title: options.title,
      specUrl: '/openapi.json',
      scriptUrl: '/docs/explorer.js',
    })
    reply.type('text/html; charset=utf-8')
    return page
  })
  app.get(
    '/docs/explorer.js',
    { config: { access: 'public' }, schema: { hide: true } },
    async (_request, reply) => {
      script ??= renderTemplate('docs/explorer.js', {})
      reply.type('text/javascript; charset=utf-8')
      return script
    },
  )
}
