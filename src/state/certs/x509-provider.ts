import { webcrypto } from 'node:crypto'
// Must load before @peculiar/x509 (ES modules evaluate in import order).
import './reflect-metadata.js'
import * as x509 from '@peculiar/x509'

// @peculiar/x509 signs through WebCrypto; node's implementation is native (OpenSSL), so keys and
// signatures cost milliseconds even for RSA-3072.
x509.cryptoProvider.set(webcrypto as unknown as Crypto)

export { x509 }
