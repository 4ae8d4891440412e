// The /docs explorer: lists the operations of /openapi.json and lets a user try them with a pasted
// key. The key stays in this page's memory only (never stored, never sent anywhere but this server).
;(async () => {
  const status = document.getElementById('status')
  const list = document.getElementById('operations')
  const credential = document.getElementById('credential')
  let spec
  try {
    spec = await (await fetch('/openapi.json')).json()
  } catch (err) {
    status.textContent = `Could not load /openapi.json: ${err}`
    return
  }
  status.textContent = `${spec.info.title} ${spec.info.version}: ${Object.keys(spec.paths).length} paths.`
  const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props)
    for (const child of children) node.append(child)
    return node
  }
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue
      const params = (op.parameters || []).filter((p) => p.in === 'path' || p.in === 'query')
      const inputs = params.map((p) => {
        const input = el('input', { name: p.name, placeholder: `${p.in}: ${p.name}` })
        return { p, input, row: el('label', { textContent: `${p.name} ` }, [input]) }
      })
      const hasBody = Boolean(op.requestBody)
      const body = el('textarea', { placeholder: 'JSON body' })
      const out = el('pre')
      const run = el('button', { textContent: 'Send' })
      run.addEventListener('click', async () => {
        let url = path
        const query = new URLSearchParams()
        for (const { p, input } of inputs) {
          if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(input.value))
          else if (input.value !== '') query.set(p.name, input.value)
        }
        if ([...query].length) url += `?${query}`
        const headers = {}
        if (credential.value) headers.authorization = `Bearer ${credential.value.trim()}`
        if (hasBody && body.value.trim() !== '') headers['content-type'] = 'application/json'
        out.textContent = '…'
        try {
          const res = await fetch(url, {
            method: method.toUpperCase(),
            headers,
            body: hasBody && body.value.trim() !== '' ? body.value : undefined,
          })
          const text = await res.text()
          let shown = text
          try {
            shown = JSON.stringify(JSON.parse(text), null, 2)
          } catch {}
          out.textContent = `${res.status} ${res.statusText}\n\n${shown}`
        } catch (err) {
          out.textContent = String(err)
        }
      })
      const summary = el('summary', {}, [
        el('span', { className: 'method', textContent: method.toUpperCase() }),
        path,
        el('span', { className: 'tag', textContent: op.summary || '' }),
      ])
      list.append(
        el('details', {}, [summary, ...inputs.map((i) => i.row), ...(hasBody ? [body] : []), run, out]),
      )
    }
  }
})()
