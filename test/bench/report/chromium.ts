import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'

export interface RenderedReport {
  /** Console errors and warnings, and uncaught page errors. */
  problems: string[]
  /** Requests for anything but the file itself (a self-contained page makes none). */
  requests: string[]
  /** Number of elements matching each selector. */
  counts: Record<string, number>
  text: Record<string, string>
}

/** Opens an HTML file in Debian's headless Chromium (no network, fresh profile) and inspects it. */
export async function renderInChromium(
  file: string,
  selectors: string[],
  textOf: string[] = [],
): Promise<RenderedReport> {
  const profile = await mkdtemp(join(tmpdir(), 'helix-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
  try {
    const page = await browser.newPage()
    const problems: string[] = []
    const requests: string[] = []
    page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && problems.push(m.text()))
    page.on('pageerror', (e) => problems.push(e.message))
    page.on('request', (r) => !r.url().startsWith('file:') && requests.push(r.url()))
    await page.goto(pathToFileURL(file).href)
    const counts: Record<string, number> = {}
    for (const s of selectors) counts[s] = await page.locator(s).count()
    const text: Record<string, string> = {}
    for (const s of textOf) text[s] = (await page.locator(s).textContent()) ?? ''
    return { problems, requests, counts, text }
  } finally {
    await browser.close()
    await rm(profile, { recursive: true, force: true })
  }
}
