// The identity on this device, in the browser's storage (`storage` is localStorage in the page, a
// stand-in in the node tests): its key file, in the format `callvault id export` writes (the
// secret under a passphrase: argon2id and XChaCha20-Poly1305, crates/crypto/src/keyfile.rs), and
// its display name. The secret key itself is only ever in memory, once the passphrase opened the
// file; the same file is the backup, and a file the CLI exported is imported as it is.
// `ops` are identity.js's: {publicOf, generateSecretKey, sealKeyFile, openKeyFile}.

const FILE = 'callvault.keyfile'
const NAME = 'callvault.name'
// An earlier callvault kept the secret key here in plain hex: sealed (and removed) at next unlock.
const PLAIN = 'callvault.sk'

/** The shortest passphrase (the CLI's `id export` asks the same). */
export const MIN_PASSPHRASE = 8

/** What a passphrase lacks, or null. */
export function passphraseProblem (passphrase) {
  return [...(passphrase ?? '')].length < MIN_PASSPHRASE ? `the passphrase needs ${MIN_PASSPHRASE} characters or more` : null
}

/** Whether this browser holds an identity: 'locked' (a key file), 'plain' (an earlier
 * callvault's unsealed key, to be sealed), or null. */
export function storedIdentity (storage) {
  if (storage.getItem(FILE)) return 'locked'
  if (storage.getItem(PLAIN)) return 'plain'
  return null
}

/** Opens the stored identity with `passphrase` (an earlier plain key is sealed under it and the
 * plain copy removed); throws ('wrong passphrase', ...) and changes nothing on failure. */
export function unlockIdentity (storage, ops, passphrase) {
  const name = storage.getItem(NAME) || 'callvault user'
  const file = storage.getItem(FILE)
  if (file) {
    const { secret, guid } = ops.openKeyFile(file, passphrase)
    return { secret, name, guid }
  }
  const plain = storage.getItem(PLAIN)
  if (!plain) throw new Error('there is no identity in this browser')
  const problem = passphraseProblem(passphrase)
  if (problem) throw new Error(problem)
  const { guid } = ops.publicOf(plain)
  storage.setItem(FILE, ops.sealKeyFile(plain, passphrase))
  storage.removeItem(PLAIN)
  return { secret: plain, name, guid }
}

/** Makes an identity, or takes a key file (`importFile`, base64: a backup or `callvault id
 * export`), stores it under `passphrase` with `name`; throws and stores nothing on failure. */
export function createIdentity (storage, ops, name, passphrase, importFile = null) {
  if (importFile) {
    const { secret, guid } = ops.openKeyFile(importFile, passphrase)
    storage.setItem(FILE, importFile)
    storage.setItem(NAME, name)
    return { secret, name, guid }
  }
  const problem = passphraseProblem(passphrase)
  if (problem) throw new Error(problem)
  const secret = ops.generateSecretKey()
  const { guid } = ops.publicOf(secret)
  storage.setItem(FILE, ops.sealKeyFile(secret, passphrase))
  storage.setItem(NAME, name)
  return { secret, name, guid }
}

/** The stored key file's bytes: the backup, which `callvault id import` takes. */
export function keyFileBytes (storage) {
  const file = storage.getItem(FILE)
  if (!file) throw new Error('there is no key file in this browser')
  return Uint8Array.from(atob(file), (c) => c.charCodeAt(0))
}

/** A key file's bytes as stored (base64). */
export function keyFileText (bytes) {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s)
}
