const months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

// RFC 5322 §4.3: obsolete zone names; military zones count as -0000 (unknown).
const zoneMinutes: Record<string, number> = {
  ut: 0,
  gmt: 0,
  z: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
};

const dateTime =
  /^\s*(?:[a-z]+\s*,?\s*)?(\d{1,2})[\s-]*([a-z]{3})[a-z]*[\s-]*(\d{2,4})\s+(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?\s*(?:([+-])(\d{2})(\d{2})|([a-z]+))?/i;

/**
 * Parses an RFC 5322 §3.3 date-time (obsolete forms of §4.3 included) to ms
 * since the epoch, or null when it cannot be read.
 *
 * @example
 * ```ts
 * parseMailDate("Mon, 7 Feb 1994 21:52:25 -0800 (PST)"); // 760686745000
 * parseMailDate("yesterday"); // null
 * ```
 */
export function parseMailDate(text: string): number | null {
  const m = dateTime.exec(text);
  if (!m) return null;
  const day = Number(m[1]);
  const month = months.indexOf(m[2].toLowerCase());
  let year = Number(m[3]);
  // RFC 5322 §4.3: two-digit years below 50 are 20xx, others 19xx; three digits add 1900.
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let offset = 0;
  if (m[7] !== undefined) {
    offset = (m[7] === "-" ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  } else if (m[10] !== undefined) {
    offset = zoneMinutes[m[10].toLowerCase()] ?? 0;
  }
  const utc = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  return utc - offset * 60_000;
}
