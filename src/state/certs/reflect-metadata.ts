/**
 * The slice of the Reflect metadata API (reflect-metadata) that @peculiar/x509's dependency tsyringe
 * checks for at load time and reads while resolving its services. The package demands a polyfill but
 * none is installed; this one is a WeakMap per target, inherited along the prototype chain like the
 * original. It only fills in what is missing, so a real polyfill loaded elsewhere wins.
 */
type MetadataTarget = object
type MetadataKey = unknown

const store = new WeakMap<MetadataTarget, Map<MetadataKey, unknown>>()

function ownMap(target: MetadataTarget, create: boolean): Map<MetadataKey, unknown> | undefined {
  let map = store.get(target)
  if (!map && create) {
    map = new Map()
    store.set(target, map)
  }
  return map
}

function getOwnMetadata(key: MetadataKey, target: MetadataTarget): unknown {
  return ownMap(target, false)?.get(key)
}

function getMetadata(key: MetadataKey, target: MetadataTarget): unknown {
  for (let t: MetadataTarget | null = target; t; t = Object.getPrototypeOf(t)) {
    const map = ownMap(t, false)
    if (map?.has(key)) return map.get(key)
  }
  return undefined
}

function defineMetadata(key: MetadataKey, value: unknown, target: MetadataTarget): void {
  ownMap(target, true)!.set(key, value)
}

const reflect = Reflect as unknown as Record<string, unknown>
if (typeof reflect.getMetadata !== 'function') {
  Object.assign(reflect, { getMetadata, getOwnMetadata, defineMetadata })
}
