// Display names: the rule of the protocol's `display_name` (protocol/schemas/modules/calling/v1/
// common.json) and of `callvault_protocol::fields::DisplayName`: 1 to 100 characters, not blank,
// and no Unicode control (Cc) or format (Cf) character nor line/paragraph separator, but
// U+200C/U+200D (Persian and Indic spelling, emoji sequences) and the tag characters (flags).

// The same ranges as the schema's pattern (a node test checks they agree over every code point).
const FORBIDDEN = '\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891' +
  '\\u08e2\\u180e\\u200b\\u200e-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\u{110bd}' +
  '\\u{110cd}\\u{13430}-\\u{1343f}\\u{1bca0}-\\u{1bca3}\\u{1d173}-\\u{1d17a}\\u{e0001}'
const BAD = new RegExp(`[${FORBIDDEN}]`, 'u')
const VISIBLE = /[^\s]/u

/** Why `name` cannot be a display name, or null when it can. */
export function displayNameProblem (name) {
  if (typeof name !== 'string') return 'a name is text'
  const chars = [...name].length
  if (chars < 1) return 'the name is empty'
  if (chars > 100) return 'the name is longer than 100 characters'
  if (BAD.test(name)) return 'the name holds control or invisible formatting characters'
  if (!VISIBLE.test(name)) return 'the name is blank'
  return null
}
