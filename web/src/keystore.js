// The identity on this device: its secret key and display name in the browser's storage
// (`storage` is localStorage in the page, a stand-in in the node tests). What the key does is in
// identity.js; keeping it encrypted at rest under a passphrase is issue 17, point 2.

const SECRET = 'callvault.sk'
const NAME = 'callvault.name'

/** The stored identity `{secret, name, guid}`, or null when there is none. */
export function loadIdentity (storage, publicOf) {
  const secret = storage.getItem(SECRET)
  if (!secret) return null
  return { secret, name: storage.getItem(NAME) || 'callvault user', guid: publicOf(secret).guid }
}

/** Makes (or imports, from hex) an identity and stores it; throws on a key that is not one. */
export function createIdentity (storage, { publicOf, generateSecretKey }, name, importHex = null) {
  const secret = importHex ? importHex.trim().toLowerCase() : generateSecretKey()
  const { guid } = publicOf(secret)
  storage.setItem(SECRET, secret)
  storage.setItem(NAME, name)
  return { secret, name, guid }
}
