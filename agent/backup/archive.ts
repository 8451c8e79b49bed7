// The continuous binlog archive (issue 23 item 2): the primary's binlogs streamed, as they are
// written, to another node by the server's own client (`mariadb-binlog --read-from-remote-server
// --raw --stop-never`, https://mariadb.com/kb/en/using-mariadb-binlog/#streaming-binlogs). Layout:
//   <target>/binlog/<segment>/bin.NNNNNN   one segment per stream (one primary, one start)
//   <target>/binlog/<segment>/segment.json {primary, host, port, startedAt, from}
//   <target>/binlog/status.json            the archiver's last word: caught up when, lag, gap
// A stream starts at the GTID after the last one archived (--start-position=GTID is exclusive:
// the server sends what follows it, whichever of its binlog files holds it), so a re-point to a
// new primary after a failover or switchover continues the same GTID sequence with no gap: the
// new primary has the old one's transactions in its own binlog (log_slave_updates). When the new
// primary no longer has that GTID (purged), the server refuses (error 1236) and that is a gap:
// reported, an alarm, never papered over. Across all segments the GTID sequence is checked for
// holes too (gapsIn).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { scanBinlogFile, type BinlogEvent } from "./binlog-scan.ts";
import type { ArchiveFileInput, ArchiveInput } from "./plan.ts";
import { sql, withClientCnf, connArgs, type MysqlConn } from "./tools.ts";

export interface ArchiveStatus {
  node: string;
  primary: string | null;
  segment: string | null;
  running: boolean;
  /** since when no stream has run (null while one runs) */
  downSince: string | null;
  /** the last GTID archived */
  lastGtid: string | null;
  /** transactions the primary has that the archive has not (null: unknown) */
  behind: number | null;
  /** seconds since the archive last held everything the primary had (0 when caught up) */
  lagS: number | null;
  /** the last time whose primary position the archive is known to hold: a sample of the
   *  primary's position taken then is archived (lag = now - this, bounded by the refresh period) */
  caughtUpAt: string | null;
  /** the seq of that sample: the archive vouches for caughtUpAt up to this transaction */
  caughtUpSeq: number | null;
  /** a gap in the GTID sequence: why, or null */
  gap: string | null;
  error: string | null;
  updatedAt: string;
}

interface ScanCache { size: number; mtimeMs: number; events: BinlogEvent[] }
const cache = new Map<string, ScanCache>();

/** Every archived file under `root` (= <target>/binlog), scanned (cached by size and mtime). */
export async function readArchiveFiles(root: string, tool?: string): Promise<ArchiveFileInput[]> {
  const out: ArchiveFileInput[] = [];
  let segs: string[] = [];
  try { segs = (await readdir(root)).filter((s) => !s.endsWith(".json")).sort(); } catch { return out; }
  for (const seg of segs) {
    let files: string[] = [];
    try { files = (await readdir(join(root, seg))).filter((f) => !f.endsWith(".json")).sort(); } catch { continue; }
    for (const f of files) {
      const path = join(root, seg, f);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      let c = cache.get(path);
      if (!c || c.size !== st.size || c.mtimeMs !== st.mtimeMs) {
        const r = await scanBinlogFile(path, tool);
        c = { size: st.size, mtimeMs: st.mtimeMs, events: r.events };
        cache.set(path, c);
      }
      out.push({ path, segment: seg, events: c.events });
    }
  }
  return out;
}

export async function readArchive(roots: string[], tool?: string): Promise<ArchiveInput> {
  const files: ArchiveFileInput[] = [];
  let caughtUpMs: number | null = null, caughtUpSeq: number | null = null;
  for (const r of roots) {
    files.push(...(await readArchiveFiles(r, tool)));
    const s = await readArchiveStatus(r);
    const t = s?.caughtUpAt ? Date.parse(s.caughtUpAt) : NaN;
    if (Number.isFinite(t) && t > (caughtUpMs ?? 0) && typeof s?.caughtUpSeq === "number") {
      caughtUpMs = t;
      caughtUpSeq = s.caughtUpSeq;
    }
  }
  files.sort((a, b) => a.segment.localeCompare(b.segment) || a.path.localeCompare(b.path));
  return { files, caughtUpMs, caughtUpSeq };
}

export async function readArchiveStatus(root: string): Promise<ArchiveStatus | null> {
  try { return JSON.parse(await readFile(join(root, "status.json"), "utf8")) as ArchiveStatus; } catch { return null; }
}

/** Holes in the archived GTID sequence (per domain), as "d-?-a..b" ranges. Pure. */
export function gapsIn(files: ArchiveFileInput[]): string[] {
  const seqs = new Map<number, Set<number>>();
  for (const f of files) for (const e of f.events) {
    if (!seqs.has(e.domain)) seqs.set(e.domain, new Set());
    seqs.get(e.domain)!.add(e.seq);
  }
  const out: string[] = [];
  for (const [d, set] of seqs) {
    const s = [...set].sort((a, b) => a - b);
    for (let i = 1; i < s.length; i++) if (s[i]! > s[i - 1]! + 1) out.push(`${d}-?-${s[i - 1]! + 1}..${s[i]! - 1}`);
  }
  return out;
}

export function lastEvent(files: ArchiveFileInput[]): BinlogEvent | null {
  let last: BinlogEvent | null = null;
  for (const f of files) for (const e of f.events) if (!last || e.seq > last.seq) last = e;
  return last;
}

export interface ArchiverOptions {
  /** <target>/binlog on this node */
  root: string;
  /** every node's <target>/binlog (this one's included): a stream resumes after the last GTID
   *  archived anywhere, so an archive that moved to another node continues the sequence */
  allRoots?: () => string[];
  node: string;
  /** user and password the stream logs in with (REPLICATION SLAVE, BINLOG MONITOR) */
  user: string;
  password: string;
  now: () => number;
  log: { info(m: string, f?: object): void; warn(m: string, f?: object): void; error(m: string, f?: object): void };
  tool?: string;
  /** server_id the stream presents to the primary (unique in the cluster) */
  serverId?: number;
}

export interface PrimaryRef { node: string; host: string; port: number }

export class BinlogArchiver {
  private primary: PrimaryRef | null = null;
  private child: ChildProcess | null = null;
  private segment: string | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private samples: { seq: number; at: number }[] = [];
  private st: ArchiveStatus;

  constructor(private readonly o: ArchiverOptions) {
    this.st = { node: o.node, primary: null, segment: null, running: false, downSince: new Date(o.now()).toISOString(), lastGtid: null, behind: null, lagS: null, caughtUpAt: null, caughtUpSeq: null, gap: null, error: null, updatedAt: new Date(o.now()).toISOString() };
  }

  status(): ArchiveStatus { return { ...this.st }; }

  /** Streams from `p` (null: stops streaming). Re-pointing kills the old stream and starts a
   *  new segment from the last archived GTID. */
  async point(p: PrimaryRef | null): Promise<void> {
    if (p && this.primary && p.node === this.primary.node && p.host === this.primary.host && p.port === this.primary.port && this.child) return;
    await this.kill();
    this.primary = p;
    this.st.primary = p?.node ?? null;
    if (p && !this.stopped) await this.startStream().catch((e: Error) => this.failed(e.message));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.kill();
    await this.refresh().catch(() => undefined);
  }

  /** Compares the archive with the primary, writes status.json; call every few seconds. */
  private async allFiles(): Promise<ArchiveFileInput[]> {
    const roots = this.o.allRoots?.() ?? [this.o.root];
    const out: ArchiveFileInput[] = [];
    for (const r of roots.includes(this.o.root) ? roots : [...roots, this.o.root]) out.push(...(await readArchiveFiles(r, this.o.tool)));
    return out;
  }

  async refresh(): Promise<ArchiveStatus> {
    // the primary's position first, then the archive: under a steady writer the archive is then
    // compared with a position it had time to receive (the other order always finds it behind)
    let pseq: number | null = null, at = this.o.now();
    if (this.primary && this.child) {
      try {
        const pos = (await sql({ host: this.primary.host, port: this.primary.port, user: this.o.user, password: this.o.password }, "SELECT @@gtid_binlog_pos;", "mariadb", 5000)).trim();
        const m = /(\d+)-(\d+)-(\d+)/.exec(pos);
        pseq = m ? Number(m[3]) : 0;
        at = this.o.now();
      } catch (e) {
        this.st.error = `primary ${this.primary.node}: ${(e as Error).message}`;
      }
    }
    const files = await this.allFiles();
    const last = lastEvent(files);
    this.st.lastGtid = last ? `${last.domain}-${last.server}-${last.seq}` : null;
    const holes = gapsIn(files);
    if (holes.length) this.st.gap = `the archive misses transactions ${holes.join(", ")}`;
    if (pseq !== null) {
      const have = last?.seq ?? 0;
      this.st.behind = Math.max(0, pseq - have);
      // samples of the primary's position; the newest the archive holds dates the archive
      this.samples.push({ seq: pseq, at });
      const held = this.samples.filter((x) => x.seq <= have);
      if (held.length) {
        const h = held[held.length - 1]!;
        this.st.caughtUpAt = new Date(h.at).toISOString();
        this.st.caughtUpSeq = h.seq;
        this.samples = this.samples.filter((x) => x.seq > have);
      }
      this.samples = this.samples.slice(-20);
    } else {
      this.st.behind = null;
    }
    this.st.lagS = this.st.caughtUpAt ? Math.max(0, (this.o.now() - Date.parse(this.st.caughtUpAt)) / 1000) : null;
    this.st.running = !!this.child;
    if (this.st.running) this.st.downSince = null;
    else this.st.downSince ??= new Date(this.o.now()).toISOString();
    this.st.segment = this.segment;
    this.st.updatedAt = new Date(this.o.now()).toISOString();
    await mkdir(this.o.root, { recursive: true });
    await writeFile(join(this.o.root, "status.json"), JSON.stringify(this.st, null, 2) + "\n");
    return this.status();
  }

  private async startStream(): Promise<void> {
    const p = this.primary!;
    const files = await this.allFiles();
    const last = lastEvent(files);
    const conn: MysqlConn = { host: p.host, port: p.port, user: this.o.user, password: this.o.password };
    // the first binlog file the primary still has: where a stream with nothing archived starts
    const logs = (await sql(conn, "SHOW BINARY LOGS;", "mariadb", 5000)).trim().split("\n").map((l) => l.split("\t")[0]!).filter(Boolean);
    if (!logs.length) throw new Error(`primary ${p.node} has no binary logs (is log-bin on?)`);
    const seg = `${new Date(this.o.now()).toISOString().replace(/[-:]/g, "").replace(".", "")}-${p.node}`;
    const dir = join(this.o.root, seg);
    await mkdir(dir, { recursive: true });
    const from = last ? `${last.domain}-${last.server}-${last.seq}` : null;
    await writeFile(join(dir, "segment.json"), JSON.stringify({ primary: p.node, host: p.host, port: p.port, startedAt: new Date(this.o.now()).toISOString(), from }) + "\n");
    const args = ["-R", "--raw", "--stop-never", `--stop-never-slave-server-id=${this.o.serverId ?? 4290}`, `--result-file=${dir}/`, ...(from ? [`--start-position=${from}`] : []), logs[0]!];
    await withClientCnf(this.o.password, async (cnf) => {
      // the option file must outlive the start only: mariadb-binlog reads it at once
      const child = spawn(this.o.tool ?? "mariadb-binlog", [`--defaults-extra-file=${cnf}`, ...connArgs(conn), ...args], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr!.on("data", (d) => { err = (err + d).slice(-4000); });
      await new Promise<void>((resolve, reject) => { child.once("spawn", () => resolve()); child.once("error", reject); });
      this.child = child;
      this.segment = seg;
      this.st.error = null;
      child.once("exit", (code, sig) => {
        if (this.child !== child) return; // killed on purpose
        this.child = null;
        const why = err.trim().split("\n").slice(-1)[0] ?? `exit ${code ?? sig}`;
        if (/1236|Could not find GTID|purged/i.test(err)) {
          this.st.gap = `primary ${p.node} no longer has the binlogs after ${from}: ${why}`;
          this.o.log.error("binlog archive gap", { primary: p.node, from, err: why });
        } else {
          this.o.log.warn(`binlog archive stream from ${p.node} ended: ${why}`);
        }
        this.st.error = `stream from ${p.node} ended: ${why}`;
        // after a gap the same request fails the same way: try again slowly (a new primary re-points at once)
        const wait = this.st.gap ? 30_000 : 1000;
        if (!this.stopped) this.restartTimer = setTimeout(() => { this.restartTimer = null; if (this.primary && !this.child) this.startStream().catch((e: Error) => this.failed(e.message)); }, wait);
      });
      await new Promise((r) => setTimeout(r, 300)); // it has read the option file and connected, or failed
      if (this.child === child) this.o.log.info(`binlog archive streaming from ${p.node} (${p.host}:${p.port}) into ${seg}`, { from: from ?? logs[0] });
    });
  }

  private failed(msg: string): void {
    this.st.error = msg;
    this.o.log.warn(`binlog archive: ${msg}`);
    if (!this.stopped && !this.restartTimer) this.restartTimer = setTimeout(() => { this.restartTimer = null; if (this.primary && !this.child) this.startStream().catch((e: Error) => this.failed(e.message)); }, 2000);
  }

  private async kill(): Promise<void> {
    if (this.restartTimer) { clearTimeout(this.restartTimer); this.restartTimer = null; }
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 3000);
    await gone;
    clearTimeout(t);
  }
}
