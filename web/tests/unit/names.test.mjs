// The browser's display-name rule agrees with the protocol schema's `display_name` pattern over
// every Unicode code point, and refuses what the hardening review found shown to peers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { displayNameProblem } from '../../src/names.js'

const schema = JSON.parse(readFileSync(new URL('../../../protocol/schemas/modules/calling/v1/common.json', import.meta.url)))
const def = schema.$defs.display_name
const pattern = new RegExp(def.pattern, 'u')
const schemaOk = (s) => [...s].length >= def.minLength && [...s].length <= def.maxLength && pattern.test(s)

test('agrees with the schema on every code point, alone and inside a name', () => {
  let refused = 0
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue // not scalar values: no JSON string holds one alone
    const c = String.fromCodePoint(cp)
    for (const s of [c, `Ada${c}`]) {
      assert.equal(displayNameProblem(s) === null, schemaOk(s), `U+${cp.toString(16)} in ${JSON.stringify(s)}`)
    }
    if (displayNameProblem(`Ada${c}`) !== null) refused++
  }
  // Cc (65) + Cf (170 in Unicode 16) but ZWNJ, ZWJ and the 96 tags + U+2028/U+2029.
  assert.equal(refused, 65 + 170 - 2 - 96 + 2)
})

test('refuses exactly Cc, Cf (but ZWNJ, ZWJ and tags), Zl and Zp', () => {
  const categories = /(?![\u200c\u200d\u{e0020}-\u{e007f}])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue
    const c = String.fromCodePoint(cp)
    assert.equal(displayNameProblem(`Ada${c}`) !== null, categories.test(c), `U+${cp.toString(16)}`)
  }
})

test('refuses controls, bidi overrides, zero-width characters and blank names', () => {
  for (const bad of ['', ' ', '\u00a0\u3000', 'Ada\u0085', 'Ada\u009b31m', '\u202eadA', 'A\u200bda', 'Ada\u2060', '\ufeffAda', 'a'.repeat(101)]) {
    assert.notEqual(displayNameProblem(bad), null, JSON.stringify(bad))
  }
  const family = '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}'
  const scotland = '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}'
  for (const good of ['Ada', ' Ada ', 'Zoë Ünal-Ødegård', 'علي', '李小龍', '😀🚀', 'é'.repeat(100), 'می\u200cخواهم', family, scotland]) {
    assert.equal(displayNameProblem(good), null, good)
  }
})
