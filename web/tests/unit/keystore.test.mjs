// The identity store against a stand-in storage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createIdentity, loadIdentity } from '../../src/keystore.js'

const storage = () => { const m = new Map(); return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)) } }
const publicOf = (secret) => { if (!/^[0-9a-f]{64}$/.test(secret)) throw new Error('invalid secret key'); return { public: 'p', guid: `guid-of-${secret.slice(0, 4)}` } }

test('an identity made or imported is stored and loads again', () => {
  const s = storage()
  assert.equal(loadIdentity(s, publicOf), null)
  const made = createIdentity(s, { publicOf, generateSecretKey: () => 'ab'.repeat(32) }, 'Ada')
  assert.deepEqual(loadIdentity(s, publicOf), made)
  const imported = createIdentity(storage(), { publicOf, generateSecretKey: () => assert.fail() }, 'Bo', ' CD'.padEnd(65, 'd'))
  assert.equal(imported.guid, 'guid-of-cddd')
})

test('a key that is not one is refused and nothing is stored', () => {
  const s = storage()
  assert.throws(() => createIdentity(s, { publicOf, generateSecretKey: () => '' }, 'Ada', 'not hex'), /invalid/)
  assert.equal(loadIdentity(s, publicOf), null)
})
