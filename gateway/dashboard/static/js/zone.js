// Calendar arithmetic in an IANA time zone, with Intl only: the wall-clock time of an instant, the
// instant of a wall-clock time, the ranges the views ask for and how their buckets are labelled.
const formats = new Map();

function parts(ms, tz) {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formats.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return { y: +p.year, m: +p.month, d: +p.day, h: +p.hour, mi: +p.minute, s: +p.second };
}

export const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

export function zones() {
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return all.includes("UTC") ? all : ["UTC", ...all];
}

export function isZone(tz) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// The instant (ms) whose wall-clock time in tz is y-m-d h:00 (fields may overflow: month 13, day 0).
export function instant(tz, y, m, d = 1, h = 0) {
  const want = Date.UTC(y, m - 1, d, h);
  let guess = want;
  for (let i = 0; i < 3; i++) {
    const w = parts(guess, tz);
    const diff = want - Date.UTC(w.y, w.m - 1, w.d, w.h, w.mi, w.s);
    if (diff === 0) break;
    guess += diff;
  }
  return guess;
}

// [start, end) of the `count` buckets of `width` ending with the one holding `now` (the last bucket is
// whole, so its etag holds while nothing changes), or from/to local dates ("YYYY-MM-DD", to exclusive).
export function range(width, tz, { from, to, now = Date.now() } = {}) {
  if (from && to) {
    const [fy, fm, fd] = from.split("-").map(Number);
    const [ty, tm, td] = to.split("-").map(Number);
    return [instant(tz, fy, fm, fd), instant(tz, ty, tm, td)];
  }
  const w = parts(now, tz);
  if (width === "1h") return [instant(tz, w.y, w.m, w.d, w.h - 47), instant(tz, w.y, w.m, w.d, w.h + 1)];
  if (width === "month") return [instant(tz, w.y, w.m - 11, 1), instant(tz, w.y, w.m + 1, 1)];
  return [instant(tz, w.y, w.m, w.d - 29), instant(tz, w.y, w.m, w.d + 1)];
}

const pad = (n) => String(n).padStart(2, "0");

export function label(ms, width, tz) {
  const w = parts(ms, tz);
  if (width === "month") return `${w.y}-${pad(w.m)}`;
  const day = `${w.y}-${pad(w.m)}-${pad(w.d)}`;
  return width === "1h" || width === "1m" ? `${day} ${pad(w.h)}:${pad(w.mi)}` : day;
}

export function localDate(ms, tz) {
  const w = parts(ms, tz);
  return `${w.y}-${pad(w.m)}-${pad(w.d)}`;
}

export function time(iso, tz) {
  if (!iso) return "";
  const ms = Date.parse(iso);
  return `${label(ms, "1h", tz)}:${pad(parts(ms, tz).s)}`;
}
