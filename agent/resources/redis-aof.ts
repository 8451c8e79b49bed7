// Where a Redis that restarted from its append-only file stands in the replication stream it
// was part of (issue 15 item 3, the whole-room cold start). A Redis loaded from its AOF starts
// with a replication offset of 0 (measured, 7.0.15: INFO says slave_repl_offset:1 whatever it
// loaded): offsets cannot say which of three restarted servers has the most. bollard stamps the
// stream instead: the primary's agent runs INCR bollard:stamp (STAMP_KEY) whenever writes went
// by since its last stamp (at most every STAMP_EVERY_MS). Every server's AOF holds the same
// stream (a replica's incr file is byte for byte its master's, measured: the replica writes the
// commands it applies, as the master propagated them), so a restarted server's position is
// (the stamp it loaded, the commands after that stamp in its AOF): two servers with the same
// stamp order by the commands after it, exactly.
//
// AOF layout (Redis 7.0 multi-part AOF, https://redis.io/docs/management/persistence/): the
// directory `appenddirname` holds a manifest (`appendfilename`.manifest) whose lines are
// `file NAME seq N type b|h|i`: one base (an RDB or an AOF, a snapshot), history files about to
// be deleted, and incr files in seq order. Incr files are RESP arrays (`*N\r\n` then N bulk
// strings `$len\r\n...\r\n`), with `#...` annotation lines when aof-timestamp-enabled is set.
// A power cut may leave the last command cut short: it is not counted (Redis drops it too,
// aof-load-truncated yes).
//
// Pure parsing (aofTail), and one reader of the files (readAofPosition) that returns an error
// value, never throws.
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** the key the primary's agent increments (the stream's stamp); documented in docs/ha.md */
export const STAMP_KEY = "bollard:stamp";
/** a primary stamps at most this often, and only when writes went by since its last stamp */
export const STAMP_EVERY_MS = 100;

export interface ManifestFile {
  name: string;
  seq: number;
  type: "b" | "h" | "i";
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses an AOF manifest (Redis 7.0 aof.c aofLoadManifestFromFile): key value pairs per line. */
export function parseManifest(text: string): Parsed<ManifestFile[]> {
  const out: ManifestFile[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith("#")) continue;
    const words = line.split(/\s+/);
    if (words.length % 2) return { ok: false, error: `manifest line ${i + 1}: expected key value pairs, got ${JSON.stringify(line.slice(0, 80))}` };
    const kv = new Map<string, string>();
    for (let w = 0; w < words.length; w += 2) kv.set(words[w]!, words[w + 1]!);
    const name = kv.get("file"), seq = Number(kv.get("seq")), type = kv.get("type");
    if (!name || name.includes("/") || !Number.isInteger(seq) || (type !== "b" && type !== "h" && type !== "i")) {
      return { ok: false, error: `manifest line ${i + 1}: expected "file NAME seq N type b|h|i", got ${JSON.stringify(line.slice(0, 80))}` };
    }
    out.push({ name, seq, type });
  }
  return { ok: true, value: out };
}

export interface AofTail {
  /** whether the stamp command was found in these files */
  stamped: boolean;
  /** commands after the last stamp (all commands when none was found), SELECT left out */
  after: number;
  /** complete commands read */
  commands: number;
  /** bytes at the end that do not make a whole command (a write cut short) */
  truncated: number;
}

const CR = 13, LF = 10, STAR = 42, DOLLAR = 36, HASH = 35;

/**
 * Reads the commands of incr files (their contents in seq order): counts those after the last
 * `INCR bollard:stamp`. SELECT is left out: a server writes one when its own AOF changes
 * database, which a replica and its master may do at different points. Throws nothing; bytes
 * that are not RESP give an error value.
 */
export function aofTail(files: readonly Buffer[]): Parsed<AofTail> {
  const t: AofTail = { stamped: false, after: 0, commands: 0, truncated: 0 };
  for (const [fi, b] of files.entries()) {
    let p = 0;
    const line = (): string | null => {
      const e = b.indexOf(LF, p);
      if (e < 0 || e === p || b[e - 1] !== CR) return null;
      const s = b.toString("latin1", p, e - 1);
      p = e + 1;
      return s;
    };
    while (p < b.length) {
      const start = p;
      if (b[p] === HASH) { if (line() === null) { t.truncated += b.length - start; break; } continue; }
      if (b[p] !== STAR) return { ok: false, error: `AOF file ${fi + 1}, byte ${p}: expected '*' (a command), got ${JSON.stringify(String.fromCharCode(b[p]!))}` };
      const head = line();
      const n = head === null ? NaN : Number(head.slice(1));
      if (head === null) { t.truncated += b.length - start; break; }
      if (!Number.isInteger(n) || n < 1) return { ok: false, error: `AOF file ${fi + 1}, byte ${start}: bad array header ${JSON.stringify(head.slice(0, 20))}` };
      const argv: string[] = [];
      let cut = false;
      for (let a = 0; a < n; a++) {
        if (p >= b.length) { cut = true; break; }
        if (b[p] !== DOLLAR) return { ok: false, error: `AOF file ${fi + 1}, byte ${p}: expected '$' (a bulk string)` };
        const h = line();
        if (h === null) { cut = true; break; }
        const len = Number(h.slice(1));
        if (!Number.isInteger(len) || len < 0) return { ok: false, error: `AOF file ${fi + 1}, byte ${p}: bad bulk length ${JSON.stringify(h.slice(0, 20))}` };
        if (p + len + 2 > b.length) { cut = true; break; }
        // only the first two arguments matter: the command's name and the stamp key
        if (a < 2) argv.push(b.toString("latin1", p, p + Math.min(len, 64)));
        p += len + 2;
      }
      if (cut) { t.truncated += b.length - start; break; }
      t.commands++;
      const cmd = argv[0]!.toUpperCase();
      if (cmd === "INCR" && argv[1] === STAMP_KEY) { t.stamped = true; t.after = 0; } else if (cmd !== "SELECT") t.after++;
    }
  }
  return { ok: true, value: t };
}

export interface AofPosition {
  /** the stamp the server loaded (0 when it has none) */
  stamp: number;
  /** commands after it */
  after: number;
  /** false when the last stamp was folded into the base by a rewrite: `after` then counts only
   *  the commands since the rewrite, a lower bound */
  exact: boolean;
  files: number;
  bytes: number;
}

/** `aof:STAMP+AFTER`, the position a restarted Redis reports (runtime cmp reads it back). */
export const formatAofPosition = (p: { stamp: number; after: number }): string => `aof:${p.stamp}+${p.after}`;

export function parseAofPosition(s: string): { stamp: number; after: number } | null {
  const m = /^aof:(\d+)\+(\d+)$/.exec(s);
  return m ? { stamp: Number(m[1]), after: Number(m[2]) } : null;
}

/**
 * Redis positions: a number is the offset of a server that has been in the current stream since
 * it started (a master, or a replica that synced); `aof:S+N` a server restarted from its AOF that
 * has not replicated since. Offsets compare as numbers, AOF positions by stamp then commands. A
 * server in the stream is ahead of one that restarted: the restarted one was gone meanwhile, and
 * everything acknowledged since is in the stream (a restarted master's unreplicated tail was
 * never confirmed by WAIT; issue 22 lets it give way).
 */
export function cmpRedisPositions(a: string, b: string): number {
  const pa = parseAofPosition(a), pb = parseAofPosition(b);
  if (pa && pb) return Math.sign(pa.stamp - pb.stamp) || Math.sign(pa.after - pb.after);
  if (pa) return -1;
  if (pb) return 1;
  return Math.sign(Number(a) - Number(b));
}

/** Reads the manifest and incr files of `dir/appendDir` and says where the server stands. */
/** Where the AOF is, from `CONFIG GET app* dir`'s flat reply; null when appendonly is off. */
export function aofConfig(reply: unknown): Parsed<{ dir: string; appendDir: string; file: string } | null> {
  const kv = new Map<string, string>();
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) kv.set(String(reply[i]), String(reply[i + 1]));
  if (kv.get("appendonly") !== "yes") return { ok: true, value: null };
  const [dir, appendDir, file] = [kv.get("dir"), kv.get("appenddirname"), kv.get("appendfilename")];
  if (!dir || !appendDir || !file) return { ok: false, error: `CONFIG GET dir appenddirname appendfilename: got ${JSON.stringify([...kv])}` };
  return { ok: true, value: { dir, appendDir, file } };
}

export async function readAofPosition(dir: string, appendDir: string, appendFilename: string, stamp: number): Promise<Parsed<AofPosition>> {
  const base = join(dir, appendDir);
  try {
    const m = parseManifest(await readFile(join(base, `${appendFilename}.manifest`), "utf8"));
    if (!m.ok) return m;
    const incr = m.value.filter((f) => f.type === "i").sort((x, y) => x.seq - y.seq);
    const bufs = await Promise.all(incr.map((f) => readFile(join(base, f.name))));
    const t = aofTail(bufs);
    if (!t.ok) return t;
    return { ok: true, value: { stamp, after: t.value.after, exact: t.value.stamped || stamp === 0, files: bufs.length, bytes: bufs.reduce((s, x) => s + x.length, 0) } };
  } catch (e) {
    return { ok: false, error: `AOF in ${base}: ${(e as Error).message}` };
  }
}
