// Usage: node unwrap.mjs <recipient secret hex> < wrap.json
// Prints the rumor as JSON.
import { readFileSync } from 'node:fs'
import * as nip59 from 'nostr-tools/nip59'
import { hexToBytes } from 'nostr-tools/utils'

const [sk] = process.argv.slice(2)
const wrap = JSON.parse(readFileSync(0, 'utf8'))
const rumor = nip59.unwrapEvent(wrap, hexToBytes(sk))
process.stdout.write(JSON.stringify(rumor))
