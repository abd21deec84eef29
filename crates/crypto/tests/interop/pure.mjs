// Usage: node pure.mjs < request.json
// Checks what callvault's pure-Rust browser identity (crates/e2ee-wasm) made, with nostr-tools:
// request {event, payload, our_public, peer_secret, reply_plaintext}. Prints {verified,
// plaintext, reply}: whether the event verifies, the NIP-44 payload opened by the peer, and a
// payload the peer sealed back to us.
import { readFileSync } from 'node:fs'
import { verifyEvent } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'

const r = JSON.parse(readFileSync(0, 'utf8'))
const ck = nip44.getConversationKey(hexToBytes(r.peer_secret), r.our_public)
process.stdout.write(JSON.stringify({
  verified: verifyEvent(r.event),
  plaintext: nip44.decrypt(r.payload, ck),
  reply: nip44.encrypt(r.reply_plaintext, ck),
}))
