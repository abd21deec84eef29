// Usage: node wrap.mjs <sender secret hex> <recipient public hex> <kind> <created_at> < content
// Prints the gift wrap (kind 1059) as JSON.
import { readFileSync } from 'node:fs'
import * as nip59 from 'nostr-tools/nip59'
import { hexToBytes } from 'nostr-tools/utils'

const [sk, pk, kind, createdAt] = process.argv.slice(2)
const content = readFileSync(0, 'utf8')
const wrap = nip59.wrapEvent({ kind: Number(kind), content, tags: [], created_at: Number(createdAt) }, hexToBytes(sk), pk)
process.stdout.write(JSON.stringify(wrap))
