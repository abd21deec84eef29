// The user's identity key and what it does, by the E2EE module's pure-Rust secp256k1 (no
// JavaScript crypto library): public key and guid, Nostr events (BIP-340 signatures), and NIP-44
// v2 sealing of signals to peers, and key files (the CLI's format). Randomness comes from
// crypto.getRandomValues.
import { callJson, loadE2ee } from './wasm.js'

let wasm = null

/** Loads the module; every other function needs it loaded. */
export async function initIdentity () {
  wasm = await loadE2ee()
}

export const bytesToHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
export function hexToBytes (hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error('not hex')
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16))
}
const random32 = () => bytesToHex(crypto.getRandomValues(new Uint8Array(32)))
const op = (request) => callJson(wasm, 'cv_identity', request)

/** The public key (hex) and guid of a secret key (hex); throws if it is not a valid key. */
export function publicOf (secretHex) {
  return op({ op: 'public', secret: secretHex })
}

/** A new secret key (hex). */
export function generateSecretKey () {
  for (;;) {
    const candidate = random32()
    try {
      publicOf(candidate)
      return candidate
    } catch { /* not below the curve order (p < 2^-127): draw again */ }
  }
}

/** `{kind, created_at, tags, content}` signed by `secretHex`: the whole event. */
export function signEvent (secretHex, { kind, created_at: createdAt, tags = [], content }) {
  return op({ op: 'sign', secret: secretHex, aux: random32(), kind, created_at: createdAt, tags, content })
}

/** NIP-44 v2: `plaintext` sealed from `secretHex` to `peerHex`. */
export function nip44Encrypt (secretHex, peerHex, plaintext) {
  return op({ op: 'encrypt', secret: secretHex, peer: peerHex, nonce: random32(), plaintext }).payload
}

/** NIP-44 v2: a payload from `peerHex` opened with `secretHex`; throws if it does not open. */
export function nip44Decrypt (secretHex, peerHex, payload) {
  return op({ op: 'decrypt', secret: secretHex, peer: peerHex, payload }).plaintext
}

/** The secret key (hex) sealed under `passphrase` as a key file (base64), the format
 * `callvault id export` writes. */
export function sealKeyFile (secretHex, passphrase) {
  const salt = bytesToHex(crypto.getRandomValues(new Uint8Array(16)))
  const nonce = bytesToHex(crypto.getRandomValues(new Uint8Array(24)))
  return op({ op: 'seal_key', secret: secretHex, passphrase, salt, nonce }).file
}

/** A key file (base64) opened with `passphrase`: `{secret, public, guid}`; throws ('wrong
 * passphrase', 'not a callvault key file', ...). */
export function openKeyFile (fileBase64, passphrase) {
  return op({ op: 'open_key', file: fileBase64, passphrase })
}
