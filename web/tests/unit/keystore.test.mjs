// The identity store against a stand-in storage and stand-in key-file operations (the real ones,
// the E2EE module's, are tested against the CLI in crates/e2ee-wasm/tests/key_files_agree_with_the_cli.rs
// and in the browser test).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createIdentity, keyFileBytes, keyFileText, storedIdentity, unlockIdentity } from '../../src/keystore.js'

const storage = () => {
  const m = new Map()
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), values: () => [...m.values()] }
}
const publicOf = (secret) => { if (!/^[0-9a-f]{64}$/.test(secret)) throw new Error('invalid secret key'); return { public: 'p', guid: `guid-of-${secret.slice(0, 4)}` } }
// A stand-in seal: the secret reversed and tagged with the passphrase, base64.
const sealKeyFile = (secret, pass) => btoa(`${pass}|${[...secret].reverse().join('')}`)
const openKeyFile = (file, pass) => {
  const [p, s] = atob(file).split('|')
  if (p !== pass) throw new Error('wrong passphrase')
  const secret = [...s].reverse().join('')
  return { secret, guid: publicOf(secret).guid }
}
const ops = { publicOf, sealKeyFile, openKeyFile, generateSecretKey: () => 'ab'.repeat(32) }

test('an identity made here is stored sealed, never in plain, and unlocks with its passphrase only', () => {
  const s = storage()
  assert.equal(storedIdentity(s), null)
  const made = createIdentity(s, ops, 'Ada', 'long enough passphrase')
  assert.equal(made.guid, 'guid-of-abab')
  assert.equal(storedIdentity(s), 'locked')
  assert.ok(s.values().every((v) => !v.includes(made.secret)), 'no raw key in storage')
  assert.deepEqual(unlockIdentity(s, ops, 'long enough passphrase'), made)
  assert.throws(() => unlockIdentity(s, ops, 'another passphrase'), /wrong passphrase/)
})

test('a short passphrase is refused and nothing is stored', () => {
  const s = storage()
  assert.throws(() => createIdentity(s, ops, 'Ada', 'short'), /8 characters/)
  assert.equal(storedIdentity(s), null)
})

test('a key file imports as it is, and the backup is that file', () => {
  const file = sealKeyFile('cd'.repeat(32), 'the cli passphrase')
  const s = storage()
  assert.throws(() => createIdentity(s, ops, 'Bo', 'not it at all', file), /wrong passphrase/)
  assert.equal(storedIdentity(s), null, 'a file that does not open is not kept')
  const imported = createIdentity(s, { ...ops, generateSecretKey: () => assert.fail() }, 'Bo', 'the cli passphrase', file)
  assert.equal(imported.guid, 'guid-of-cdcd')
  assert.equal(keyFileText(keyFileBytes(s)), file)
})

test("an earlier callvault's plain key is sealed at unlock and the plain copy removed", () => {
  const s = storage()
  s.setItem('callvault.sk', 'ef'.repeat(32))
  s.setItem('callvault.name', 'Cy')
  assert.equal(storedIdentity(s), 'plain')
  assert.throws(() => unlockIdentity(s, ops, 'short'), /8 characters/)
  assert.equal(storedIdentity(s), 'plain')
  const id = unlockIdentity(s, ops, 'now a passphrase')
  assert.deepEqual(id, { secret: 'ef'.repeat(32), name: 'Cy', guid: 'guid-of-efef' })
  assert.equal(storedIdentity(s), 'locked')
  assert.ok(s.values().every((v) => !v.includes('ef'.repeat(32))))
  assert.deepEqual(unlockIdentity(s, ops, 'now a passphrase'), id)
})
