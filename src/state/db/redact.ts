/**
 * Connection URLs hold passwords; anything shown to a user, logged or put in an error goes through
 * redactUrl first (secrets are never logged).
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '*****'
    for (const key of [...parsed.searchParams.keys()]) {
      if (key.toLowerCase() === 'password') parsed.searchParams.set(key, '*****')
    }
    return parsed.toString()
  } catch {
    // Not a URL we can parse: hide everything between "://user:" and "@" as a last resort.
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1*****@')
  }
}
