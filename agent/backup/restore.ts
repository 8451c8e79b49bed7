// Restoring MySQL and Redis backups into a new server beside the live cluster (issue 23 items
// 3, 4), and the verification job that does the same into a scratch instance and checks it
// (item 6). MySQL: the prepared copy of the base backup is copied into the new instance's
// datadir, mariadbd started on it with its own binlog, its GTID state set to the backup's, then
// the archived binlogs replayed by relay-replay.ts (mariadb-binlog | mariadb, GTIDs kept), one
// stream segment at a time, each from the restored server's own position on (so what two
// segments both hold is applied once), the last one up to the plan's GTID (--stop-position is
// inclusive). An incremental base backup is applied on a copy of its chain (chain.ts).
import { cp, mkdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { replayRelayLog } from "../resources/relay-replay.ts";
import { restoreChain } from "./chain.ts";
import { isGood, setState, type Listed, type Manifest } from "./manifest.ts";
import type { RestorePlan } from "./plan.ts";
import { startScratchMariadb, startScratchRedis, stopScratch, type Scratch } from "./scratch.ts";
import { checkSums } from "./sums.ts";
import { run, sql, type MysqlConn } from "./tools.ts";

export interface Into {
  /** the new instance's own directory (must not exist) */
  dir: string;
  host: string;
  port: number;
  detached?: boolean;
}

const LONG_MS = 3_600_000;
const rootConn = (x: Scratch): MysqlConn => ({ socket: x.socket!, user: "root", password: "" });

/** `base`'s data in `data`: a copy of its full backup, then a copy of each incremental of its
 *  chain applied to it in order (the stored backups are only read); each link's checksums first. */
export async function copyChain(base: Listed, all: Listed[], data: string): Promise<Listed[]> {
  const ch = restoreChain(all.map((b) => b.manifest), base.manifest.id);
  if (!ch.ok) throw new Error(ch.error);
  const links = ch.chain.map((m) => all.find((b) => b.manifest.id === m.id)!);
  for (const l of links.slice(0, -1)) {
    const bad = await checkSums(l.dir);
    if (bad) throw new Error(`backup ${l.manifest.id} (in the chain of ${base.manifest.id}): ${bad}`);
  }
  await cp(join(links[0]!.dir, "data"), data, { recursive: true });
  // --prepare --incremental-dir moves the .delta files out of the incremental's directory: it is
  // applied from a copy, so that the stored backup stays whole (a test caught this)
  for (const l of links.slice(1)) {
    const inc = `${data}.incremental`;
    await rm(inc, { recursive: true, force: true });
    await cp(join(l.dir, "data"), inc, { recursive: true });
    try {
      await run("mariadb-backup", ["--prepare", `--target-dir=${data}`, `--incremental-dir=${inc}`], { timeoutMs: LONG_MS });
    } finally {
      await rm(inc, { recursive: true, force: true });
    }
  }
  return links;
}

/** The base backup alone (its chain applied), started: the first half of every MySQL restore
 *  and verification. `all`: the catalog, where an incremental's parents are found. */
export async function startFromBase(base: Listed, into: Into, all: Listed[] = [base]): Promise<Scratch> {
  await mkdir(dirname(into.dir), { recursive: true });
  await mkdir(into.dir, { recursive: false, mode: 0o700 }); // a new one: never over an earlier restore
  await copyChain(base, all.some((b) => b.manifest.id === base.manifest.id) ? all : [...all, base], join(into.dir, "data"));
  const x = await startScratchMariadb({ dir: into.dir, host: into.host, port: into.port, detached: into.detached });
  try {
    const gtid = String(base.manifest.detail.gtid ?? "");
    // the restored server's binlog starts at the backup's position, so its gtid_binlog_pos says
    // where it is and replayed GTIDs follow in strict order
    await sql(rootConn(x), `RESET MASTER; SET GLOBAL gtid_binlog_state = '${gtid.replace(/[^0-9,-]/g, "")}'; SET GLOBAL read_only = 0;`);
    return x;
  } catch (e) {
    await stopScratch(x);
    throw e;
  }
}

export async function gtidPos(x: Scratch): Promise<string> {
  return (await sql(rootConn(x), "SELECT @@gtid_binlog_pos;")).trim();
}

export interface RestoreResult { scratch: Scratch; reached: string; ms: number }

export async function restoreMysql(plan: RestorePlan, base: Listed, into: Into, all: Listed[] = [base]): Promise<RestoreResult> {
  const t0 = performance.now();
  const x = await startFromBase(base, into, all);
  try {
    for (const seg of plan.segments) {
      const pos = await gtidPos(x);
      const last = seg === plan.segments[plan.segments.length - 1];
      await replayRelayLog(seg.files, pos, { socketPath: x.socket!, user: "root", password: "" }, {
        timeoutMs: 3_600_000,
        binlogArgs: last && plan.stop ? [`--stop-position=${plan.stop}`] : [],
      });
    }
    const reached = await gtidPos(x);
    if (reached !== plan.reach) throw new Error(`the restore reached gtid ${reached || "none"}, the plan said ${plan.reach}`);
    return { scratch: x, reached, ms: performance.now() - t0 };
  } catch (e) {
    await stopScratch(x);
    throw e;
  }
}

export interface VerifyResult {
  ok: boolean;
  error: string | null;
  gtid: string | null;
  tables: number;
  rows: Record<string, number>;
  ms: number;
}

const SYSTEM = "('mysql','information_schema','performance_schema','sys')";

/** Restores `b` into a scratch instance in `scratchDir` and checks it: it starts, its GTID
 *  position is the manifest's, every table passes CHECK TABLE and can be counted. The verdict is
 *  written into the manifest (state "verified" or "bad", detail.verify); the scratch is removed. */
export async function verifyMysql(b: Listed, scratchDir: string, host: string, port: number, now: () => number, all: Listed[] = [b]): Promise<VerifyResult> {
  return verifying(b, scratchDir, now, async (res, keep) => {
    const x = keep(await startFromBase(b, { dir: scratchDir, host, port }, all));
    res.gtid = await gtidPos(x);
    const want = String(b.manifest.detail.gtid ?? "");
    if (res.gtid !== want) throw new Error(`restored GTID position ${res.gtid || "none"} is not the manifest's ${want || "none"}`);
    const tables = (await sql(rootConn(x), `SELECT CONCAT('\`', table_schema, '\`.\`', table_name, '\`') FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ${SYSTEM} ORDER BY 1;`)).trim().split("\n").filter(Boolean);
    for (const t of tables) {
      // a large table takes long: the deadline is the job's, not a query's
      const check = (await sql(rootConn(x), `CHECK TABLE ${t};`, "mariadb", LONG_MS)).trim().split("\n");
      const verdict = check.find((l) => /\tstatus\t/.test(l))?.split("\t")[3];
      if (verdict !== "OK") throw new Error(`CHECK TABLE ${t}: ${check.map((l) => l.split("\t").slice(2).join(" ")).join("; ")}`);
      res.rows[t.replace(/`/g, "")] = Number((await sql(rootConn(x), `SELECT COUNT(*) FROM ${t};`, "mariadb", LONG_MS)).trim());
    }
    res.tables = tables.length;
  });
}

/** One verification: the backup's checksums, then `body` on a scratch server (kept through
 *  `keep`, stopped after whatever happens), the verdict written into the manifest. */
async function verifying(b: Listed, scratchDir: string, now: () => number, body: (res: VerifyResult, keep: (x: Scratch) => Scratch) => Promise<void>): Promise<VerifyResult> {
  const t0 = performance.now();
  const res: VerifyResult = { ok: false, error: null, gtid: null, tables: 0, rows: {}, ms: 0 };
  let x: Scratch | null = null;
  try {
    const sums = await checkSums(b.dir);
    if (sums) throw new Error(sums);
    await body(res, (s) => (x = s));
    res.ok = true;
  } catch (e) {
    res.error = (e as Error).message.slice(0, 500);
  } finally {
    if (x) await stopScratch(x).catch(() => undefined);
    await rm(scratchDir, { recursive: true, force: true }).catch(() => undefined);
    res.ms = performance.now() - t0;
  }
  await writeVerdict(b, res, now);
  return res;
}

async function writeVerdict(b: Listed, res: VerifyResult, now: () => number): Promise<Manifest> {
  const { ok, ...rest } = res;
  return setState(b.dir, ok ? "verified" : "bad", { verify: { at: new Date(now()).toISOString(), ok, ...rest, ms: Math.round(res.ms) } });
}

/** Redis: the dump is checked by redis-check-rdb and loaded by a scratch redis-server; its key
 *  count must be the one recorded when the backup was taken. */
export async function verifyRedis(b: Listed, scratchDir: string, host: string, port: number, now: () => number): Promise<VerifyResult> {
  return verifying(b, scratchDir, now, async (res, keep) => {
    await run("redis-check-rdb", [join(b.dir, "dump.rdb")], { timeoutMs: 600_000 });
    keep(await restoreRedisInto(b, { dir: scratchDir, host, port }));
    const keys = Number((await run("redis-cli", ["-h", host, "-p", String(port), "DBSIZE"], { timeoutMs: 10_000 })).stdout.trim());
    res.rows = { keys };
    const want = b.manifest.detail.keys;
    if (typeof want === "number" && keys !== want) throw new Error(`restored ${keys} keys, the backup recorded ${want}`);
  });
}

export async function restoreRedisInto(b: Listed, into: Into): Promise<Scratch> {
  if (!isGood(b.manifest)) throw new Error(`backup ${b.manifest.id} is ${b.manifest.state}: not restored`);
  await mkdir(dirname(into.dir), { recursive: true });
  await mkdir(into.dir, { recursive: false, mode: 0o700 });
  await cp(join(b.dir, "dump.rdb"), join(into.dir, "dump.rdb"));
  return startScratchRedis({ dir: into.dir, host: into.host, port: into.port, detached: into.detached });
}

/** For messages: what a scratch instance is and how to reach it. */
export function connectHint(x: Scratch): string {
  return x.kind === "mysql"
    ? `mariadb --socket=${x.socket}   (or -h ${x.host} -P ${x.port} with the cluster's own accounts)\nstop it: kill ${x.pid}; remove ${x.dir} when done`
    : `redis-cli -h ${x.host} -p ${x.port}\nstop it: kill ${x.pid}; remove ${x.dir} when done`;
}

export async function readText(p: string): Promise<string> { return readFile(p, "utf8"); }
