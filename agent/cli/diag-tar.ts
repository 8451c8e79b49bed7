// The diagnostics bundle's format and its redaction (issue 6 `bollard diag`).
// - A minimal POSIX ustar writer (IEEE Std 1003.1-1988 "ustar Interchange Format": 512-byte
//   headers, octal numbers, checksum over the header with the checksum field as spaces, two
//   zero blocks at the end), gzipped with node:zlib; and the matching reader for tests.
// - Secrets never enter a bundle: in the config, the values of keys that name secrets
//   (SECRET_KEY) are replaced, and the contents of the files such keys point at (password
//   files, the join token) are collected; every text going into the bundle is then scrubbed of
//   those values and of the values of environment variables that name secrets (SECRET_ENV).
import { readFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";
import { parseDocument, stringify } from "yaml";

export const SECRET_KEY = /pass|token|secret|key|community/i;
export const SECRET_ENV = /pass|token|secret|key/i;
export const REDACTED = "<redacted>";
/** Shorter values are not scrubbed from free text (they would match everywhere). */
export const MIN_SECRET = 4;

export interface TarEntry {
  name: string;
  data: Buffer | string;
  mode?: number;
  /** seconds since the epoch */
  mtime?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cutAt = name.lastIndexOf("/", 155);
    if (cutAt <= 0 || Buffer.byteLength(name.slice(cutAt + 1)) > 100) throw new Error(`tar: name too long: ${name}`);
    prefix = name.slice(0, cutAt);
    base = name.slice(cutAt + 1);
  }
  h.write(base, 0, 100, "utf8");
  h.write(octal(mode & 0o7777, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(Math.floor(mtime), 12), 136, "ascii");
  h.write("        ", 148, "ascii"); // checksum field counts as spaces
  h.write("0", 156, "ascii"); // typeflag: regular file
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write("root", 265, "ascii");
  h.write("root", 297, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

/** An uncompressed ustar archive of `entries` (regular files only). */
export function tar(entries: TarEntry[], now = Date.now() / 1000): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === "string" ? Buffer.from(e.data, "utf8") : e.data;
    parts.push(header(e.name, data.length, e.mode ?? 0o600, e.mtime ?? now), data);
    const padding = (512 - (data.length % 512)) % 512;
    if (padding) parts.push(Buffer.alloc(padding));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const tarGz = (entries: TarEntry[], now?: number): Buffer => gzipSync(tar(entries, now), { level: 9 });

/** The files of a (gzipped) ustar archive: name -> contents. */
export function untar(buf: Buffer): Map<string, Buffer> {
  const b = buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
  const out = new Map<string, Buffer>();
  for (let off = 0; off + 512 <= b.length; ) {
    const h = b.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const str = (s: number, n: number) => h.subarray(s, s + n).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(str(124, 12).trim() || "0", 8);
    const prefix = str(345, 155);
    const name = prefix ? `${prefix}/${str(0, 100)}` : str(0, 100);
    out.set(name, b.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

// ---- secrets ---------------------------------------------------------------------------

/** Every string leaf of `v` (a secret key's value may be a mapping, e.g. snmp v3). */
function leaves(v: unknown, out: string[]): void {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => leaves(x, out));
  else if (v && typeof v === "object") Object.values(v).forEach((x) => leaves(x, out));
}

/** A copy of `v` with the values of secret-named keys replaced; their values and the contents
 * of the files they name (keys ending in _file) go to `secrets`. */
export function redactValue(v: unknown, secrets: Set<string>, readFile: (p: string) => string = (p) => readFileSync(p, "utf8")): unknown {
  if (Array.isArray(v)) return v.map((x) => redactValue(x, secrets, readFile));
  if (!v || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!SECRET_KEY.test(k)) {
      out[k] = redactValue(x, secrets, readFile);
      continue;
    }
    const vals: string[] = [];
    leaves(x, vals);
    for (const s of vals) {
      secrets.add(s);
      if (/_file$|file$/i.test(k) && s.startsWith("/")) addFileSecrets(s, secrets, readFile);
    }
    out[k] = typeof x === "number" || typeof x === "boolean" || x === null ? x : REDACTED;
  }
  return out;
}

/** A secret file's contents: all of it, each line, and each line's `user:secret` part. */
export function addFileSecrets(file: string, secrets: Set<string>, readFile: (p: string) => string = (p) => readFileSync(p, "utf8")): void {
  let text: string;
  try {
    text = readFile(file);
  } catch {
    return;
  }
  secrets.add(text.trim());
  for (const line of text.split(/\r?\n/)) {
    const l = line.trim();
    if (!l) continue;
    secrets.add(l);
    const colon = l.indexOf(":");
    if (colon > 0) secrets.add(l.slice(colon + 1));
  }
}

/** The config file's text with secrets replaced (YAML in, YAML out; comments are dropped). */
export function redactConfigText(text: string, secrets: Set<string>, readFile?: (p: string) => string): string {
  const doc = parseDocument(text);
  if (doc.errors.length) {
    // not YAML we can read: line by line, `key: value` with a secret key loses its value
    return text.replace(/^(\s*-?\s*["']?([A-Za-z0-9_.-]+)["']?\s*:\s*)(.+)$/gm, (all, head: string, key: string, val: string) => {
      if (!SECRET_KEY.test(key)) return all;
      const v = val.trim().replace(/^["']|["']$/g, "");
      secrets.add(v);
      if (v.startsWith("/")) addFileSecrets(v, secrets, readFile);
      return `${head}${REDACTED}`;
    });
  }
  return stringify(redactValue(doc.toJS(), secrets, readFile));
}

/** Values of environment variables whose names say they are secrets. */
export function envSecrets(env: NodeJS.ProcessEnv, secrets: Set<string>): void {
  for (const [k, v] of Object.entries(env)) if (SECRET_ENV.test(k) && v) secrets.add(v);
}

/** `text` without any of `secrets` (longest first, so a secret inside another goes too). */
export function scrub(text: string, secrets: Iterable<string>): string {
  const list = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET).sort((a, b) => b.length - a.length);
  let out = text;
  for (const s of list) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}
