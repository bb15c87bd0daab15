/**
 * Whether `s` has at most `max` characters counted as code points, as a user counts them and
 * as a VARCHAR(n) does (not UTF-16 units). A string is never longer in code points than in
 * units, so the common short string is answered without walking it; only one longer in units
 * than `max` is counted (an emoji is two units, one code point).
 */
export function fitsChars(s: string, max: number): boolean {
  if (s.length <= max) return true;
  let count = 0;
  for (const _ of s) if (++count > max) return false;
  return true;
}
