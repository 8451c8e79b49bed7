// `bollard restore mysql --to-time T|--to-gtid G --replace --confirm <cluster name>` and
// `--replace --abort` (issue 23 item 3, docs/backup.md). The restored point becomes the
// cluster's data, every node the same, the old data kept:
//   1. the point is restored beside the cluster (a scratch MariaDB; the GTID reached is checked);
//   2. the old data is kept: a fresh base backup on a replica (`backup now`), pinned so that
//      retention never removes it; if it fails, nothing is replaced;
//   3. writes stop cluster-wide: the register flag restore:mysql = "<id> <wall ms>"; the holder's
//      agent makes MySQL read-only (ha/local.ts restoreHold), a failover meanwhile keeps it so;
//   4. the restored user schemas replace the primary's (backup/replace.ts), binlogged, so
//      replication carries them to every replica; each replica is waited for (MASTER_GTID_WAIT);
//   5. the flag is cleared (writes resume), the scratch server stopped.
// Every step is an event (kind "restore") with what it checked. A command that dies half way
// leaves the flag set (writes stay stopped, the writes-down alarm says why); `--abort` clears it
// and says, from this node's step file, what state the data is in.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { newId, parseManifest, setPinned, type Listed } from "../backup/manifest.ts";
import type { RestorePlan } from "../backup/plan.ts";
import { canWriteReadOnly, loadSchemas, position, userSchemas, waitReplica } from "../backup/replace.ts";
import { restoreMysql } from "../backup/restore.ts";
import { stopScratch, type Scratch } from "../backup/scratch.ts";
import type { MysqlConn } from "../backup/tools.ts";
import type { Config } from "../config/schema.ts";
import { restoring } from "../ha/flags.ts";
import { controlRequest } from "../runtime/control.ts";
import { mb, members, takeNow } from "./backup-cmd.ts";
import type { CommandContext } from "./types.ts";

const FLAG = "restore:mysql";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fail = (ctx: CommandContext, msg: string, code = 1) => { ctx.io.err(`bollard: restore: ${msg}`); return code; };

interface Opts { "to-time"?: string; "to-gtid"?: string; "dry-run"?: boolean; replace?: boolean; confirm?: string; abort?: boolean }

/** Why the arguments are refused (usage errors, exit 2), or null. Pure. */
export function replaceRefusal(svc: string | undefined, v: Opts, cluster: string): string | null {
  if (!v.replace) return v.confirm !== undefined || v.abort ? "--confirm and --abort go with --replace" : null;
  if (svc !== "mysql") return `--replace is for mysql only (restore ${svc ?? "?"} restores beside the cluster)`;
  const typed = v.confirm === undefined ? "" : `, got "${v.confirm}"`;
  if (v.abort) {
    if (v["to-time"] || v["to-gtid"] || v["dry-run"]) return "--replace --abort takes no point and no --dry-run";
    return v.confirm === cluster ? null : `--replace --abort lets writes resume on whatever the primary holds: it needs the cluster's name typed: --confirm ${cluster}${typed}`;
  }
  if (v["dry-run"] || v.confirm === cluster) return null;
  return `--replace makes the restored point the data of every node and stops writes meanwhile: it needs the cluster's name typed: --confirm ${cluster}${typed}`;
}

interface Committed { assignments: Record<string, string>; flags: Record<string, string>; down: string[] }

/** The committed config as this node's agent has it, and the peers it does not hear. */
async function committed(c: Config): Promise<Committed | null> {
  try {
    const r = await controlRequest(c.control.socket, "GET", "/status", undefined, 5000);
    const v = r.code === 200 ? (r.body as { view?: { committed?: Omit<Committed, "down">; peers?: { name: string; alive: boolean }[] } }).view : undefined;
    return v?.committed ? { ...v.committed, down: (v.peers ?? []).filter((p) => !p.alive).map((p) => p.name) } : null;
  } catch {
    return null;
  }
}

async function setFlag(c: Config, value: string | null, why: string): Promise<string | null> {
  const r = await controlRequest(c.control.socket, "POST", "/command", { op: "apply", why, flags: { [FLAG]: value } }, 15_000).catch((e: Error) => ({ code: 0, body: { error: e.message } }));
  const b = r.body as { status?: string; error?: string };
  return r.code === 200 && b.status === "ok" ? null : b.error ?? `HTTP ${r.code}`;
}

/** An event in this node's event log; a failure to record is said, never fatal. */
async function event(c: Config, ctx: CommandContext, detail: string, fields: Record<string, unknown> = {}): Promise<void> {
  const r = await controlRequest(c.control.socket, "POST", "/backup/event", { detail, fields }, 5000).catch((e: Error) => ({ code: 0, body: { error: e.message } }));
  if (r.code !== 200) ctx.io.err(`bollard: restore: event not recorded (${(r.body as { error?: string }).error ?? `HTTP ${r.code}`}): ${detail}`);
  ctx.io.out(detail);
}

async function conn(c: Config, node: string): Promise<MysqlConn> {
  const m = c.ha!.mysql!;
  return { host: c.ha!.ha.nodes[node]!.address, port: m.port, user: m.user, password: (await readFile(m.password_file, "utf8")).trim() };
}

type Step = "restored" | "old-kept" | "writes-stopped" | "loading" | "loaded" | "done";
interface StepFile { id: string; step: Step; at: string; reach: string; primary: string | null; stopPos: string | null; preBackup: string | null; scratchPid: number | null; scratchDir: string }
const stepPath = (c: Config, id: string) => join(c.stateDir, "restore", `replace-${id}.json`);
async function saveStep(c: Config, s: StepFile): Promise<void> {
  await mkdir(join(c.stateDir, "restore"), { recursive: true });
  await writeFile(stepPath(c, s.id), JSON.stringify({ ...s, at: new Date().toISOString() }) + "\n");
}

const STATE: Record<Step, string> = {
  restored: "unchanged: the old data (the replace stopped before anything was loaded)",
  "old-kept": "unchanged: the old data (kept in the pinned backup too)",
  "writes-stopped": "unchanged: the old data (writes were stopped, nothing loaded yet)",
  loading: "UNKNOWN: the load into the primary was under way: some schemas may be dropped or half loaded. Run the same restore --replace again (it replaces all user schemas), or restore the pinned backup",
  loaded: "the restored point (loaded into the primary; replicas catch up through replication)",
  done: "the restored point, on every node",
};

export async function runReplace(c: Config, ctx: CommandContext, o: { plan: RestorePlan; base: Listed; all: Listed[]; dir: string; port: number; dryRun: boolean }): Promise<number> {
  if (!c.ha?.mysql) return fail(ctx, "--replace: this node's config has no ha: mysql section");
  const st = await committed(c);
  if (!st) return fail(ctx, `the agent does not answer on ${c.control.socket}: --replace goes through it`);
  const holder = st.assignments.mysql;
  if (!holder || !c.ha.ha.nodes[holder]) return fail(ctx, "no MySQL primary is assigned: nothing to replace into");
  const under = restoring(st.flags, "mysql");
  if (under) return fail(ctx, `a restore --replace (${under.id}) is under way since ${new Date(under.at).toISOString()}: wait for it, or, if its command died, 'bollard restore mysql --replace --abort --confirm ${c.cluster.name}'`);
  const replicas = members(c).filter((n) => n !== holder && c.ha!.ha.nodes[n]);
  const down = st.down.filter((n) => replicas.includes(n));
  if (o.dryRun) {
    ctx.io.out(`replace: would restore ${o.plan.reach} beside the cluster (${c.backup!.scratchHost}:${o.port}), then:`);
    ctx.io.out(`  1. keep the old data: a fresh base backup on a replica (backup now mysql), pinned (retention keeps it until 'bollard backup unpin ID')`);
    ctx.io.out(`  2. stop writes: register flag ${FLAG}; the primary ${holder} made read-only`);
    ctx.io.out(`  3. drop ${holder}'s user schemas and load the restored ones (mariadb-dump | mariadb as ${c.ha.mysql.user}), binlogged`);
    ctx.io.out(`  4. wait for ${replicas.filter((n) => !down.includes(n)).join(", ") || "no replica"} to reach the primary's GTID, then resume writes${down.length ? ` (${down.join(", ")} not heard: not waited for; it catches up by replication when back)` : ""}`);
    return 0;
  }
  const id = newId(Date.now(), c.cluster.node);
  const t0 = Date.now();
  const primary = await conn(c, holder);
  try {
    if (!(await canWriteReadOnly(primary))) return fail(ctx, `the HA user ${primary.user} cannot write while read_only is on (it needs READ ONLY ADMIN or ALL PRIVILEGES ON *.*): nothing was changed`);
  } catch (e) { return fail(ctx, `cannot reach the primary ${holder}'s MySQL: ${(e as Error).message}; nothing was changed`); }
  const file: StepFile = { id, step: "restored", at: "", reach: o.plan.reach, primary: holder, stopPos: null, preBackup: null, scratchPid: null, scratchDir: o.dir };
  let x: Scratch | null = null;
  let stopped = false;
  try {
    const r = await restoreMysql(o.plan, o.base, { dir: o.dir, host: c.backup!.scratchHost, port: o.port }, o.all);
    x = r.scratch;
    file.scratchPid = x.pid;
    await saveStep(c, file);
    const from: MysqlConn = { socket: x.socket!, user: "root", password: "" };
    const schemas = await userSchemas(from);
    await event(c, ctx, `restore --replace ${id}: restored beside the cluster in ${(r.ms / 1000).toFixed(1)} s: gtid ${r.reached} (the plan's ${o.plan.reach}), schemas ${schemas.join(",") || "none"}`, { id, reached: r.reached, base: o.base.manifest.id });
    const pin = `old data before restore --replace ${id} (to ${o.plan.reach}) at ${new Date().toISOString()}`;
    const kept = await takeNow(c, "mysql", true, () => undefined, `restore --replace ${id}: keep the old data`, pin);
    if (!kept.ok || !kept.backup) throw new Error(`the backup of the current data failed (${kept.ok ? "none" : kept.error}): nothing was replaced`);
    // the agent pinned it before its retention ran; an agent of an earlier version did not
    // (seen here a moment after its rename: the agent's pin follows within milliseconds)
    if (!kept.backup.manifest.pinned) {
      await sleep(1500);
      const m = parseManifest(await readFile(join(kept.backup.dir, "manifest.json"), "utf8"));
      if (!m.ok || !m.value.pinned) await setPinned(kept.backup.dir, pin);
    }
    file.preBackup = kept.backup.manifest.id;
    file.step = "old-kept";
    await saveStep(c, file);
    await event(c, ctx, `restore --replace ${id}: old data kept: backup ${kept.backup.manifest.id} (gtid ${String(kept.backup.manifest.detail.gtid ?? "?")}, ${mb(kept.backup.manifest.bytes)}, taken on ${kept.backup.manifest.node}, stored on ${kept.backup.manifest.storedOn}), pinned`, { id, backup: kept.backup.manifest.id });
    const err = await setFlag(c, `${id} ${Date.now()}`, `restore --replace ${id}: stop writes`);
    if (err) throw new Error(`the write stop was refused: ${err}; nothing was replaced`);
    stopped = true;
    const tStop = Date.now();
    // the holder's agent makes it read-only (and kills client connections: a query of ours in
    // that moment is lost and asked again); a failover meanwhile moves the holder
    let now = holder, pos: Awaited<ReturnType<typeof position>> | null = null, last = "";
    for (let i = 0; !pos?.readOnly; i++) {
      if (i >= 120) throw new Error(`${now}'s MySQL is still ${pos ? "writable" : `not answering (${last})`} 60 s after the write stop`);
      if (i > 0) await sleep(500);
      const h = (await committed(c))?.assignments.mysql ?? now;
      if (h !== now) { now = h; Object.assign(primary, await conn(c, h)); }
      pos = await position(primary).catch((e: Error) => { last = e.message; return null; });
    }
    file.step = "writes-stopped"; file.primary = now; file.stopPos = pos.binlogPos;
    await saveStep(c, file);
    await event(c, ctx, `restore --replace ${id}: writes stopped: ${now}'s MySQL read_only=1 at gtid ${pos.binlogPos} (the old data's last transaction: backup ${file.preBackup} + the binlog archive up to it)`, { id, primary: now, gtid: pos.binlogPos });
    file.step = "loading";
    await saveStep(c, file);
    const l = await loadSchemas(from, primary);
    const after = await position(primary);
    file.step = "loaded";
    await saveStep(c, file);
    await event(c, ctx, `restore --replace ${id}: loaded into ${now} in ${(l.ms / 1000).toFixed(1)} s: dropped ${l.dropped.join(",") || "none"}, loaded ${l.loaded.join(",") || "none"} (${mb(l.bytes)} of SQL); ${now} at gtid ${after.binlogPos}`, { id, primary: now, gtid: after.binlogPos, dropped: l.dropped, loaded: l.loaded });
    // a node that is not heard (powered off, cut off) is not waited for: it replicates the load
    // when it is back, like any transaction it missed
    const proof: string[] = [];
    const gone = (await committed(c))?.down ?? [];
    for (const n of gone.filter((m) => m !== now && c.ha!.ha.nodes[m])) proof.push(`${n} not heard: not waited for`);
    for (const n of members(c).filter((m) => m !== now && c.ha!.ha.nodes[m] && !gone.includes(m))) {
      const cur = await waitReplica(await conn(c, n), after.binlogPos, 600).catch((e: Error) => { throw new Error(`replica ${n}: ${e.message}`); });
      proof.push(`${n} ${cur}`);
    }
    await event(c, ctx, `restore --replace ${id}: every replica heard reached ${now}'s gtid ${after.binlogPos}: ${proof.join("; ") || "no replica"}`, { id, gtid: after.binlogPos, replicas: proof });
    const clr = await setFlag(c, null, `restore --replace ${id}: writes resume`);
    if (clr) throw new Error(`the write stop could not be cleared: ${clr}`);
    stopped = false;
    const stopMs = Date.now() - tStop;
    file.step = "done";
    await saveStep(c, file);
    await event(c, ctx, `restore --replace ${id}: writes resume; done in ${((Date.now() - t0) / 1000).toFixed(1)} s, writes stopped ${(stopMs / 1000).toFixed(1)} s; old data in pinned backup ${file.preBackup} (bollard backup unpin ${file.preBackup} lets retention remove it)`, { id, ms: Date.now() - t0, stopMs, backup: file.preBackup });
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    if (!stopped) return fail(ctx, msg);
    await event(c, ctx, `restore --replace ${id}: FAILED at step ${file.step}: ${msg}; writes stay stopped; the data is ${STATE[file.step]}`, { id, step: file.step }).catch(() => undefined);
    return fail(ctx, `${msg}\nwrites stay stopped (${FLAG} is set). The data is ${STATE[file.step]}.\nResume writes on it: bollard restore mysql --replace --abort --confirm ${c.cluster.name}`);
  } finally {
    if (x) await stopScratch(x).catch(() => undefined);
    await rm(o.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

export async function abortReplace(c: Config, ctx: CommandContext): Promise<number> {
  const st = await committed(c);
  if (!st) return fail(ctx, `the agent does not answer on ${c.control.socket}: --abort goes through it`);
  const r = restoring(st.flags, "mysql");
  if (!r) { ctx.io.out(`no restore --replace under way (no ${FLAG} flag): writes are not stopped by one`); return 0; }
  let s: StepFile | null = null;
  try { s = JSON.parse(await readFile(stepPath(c, r.id), "utf8")) as StepFile; } catch { /* it ran on another node, or died before its first step */ }
  const where = s ? `the data is ${STATE[s.step]}` : `the replace ran on ${r.id.split("-").pop()} (its step file is there, ${join(c.stateDir, "restore")}): compare the schemas on the primary with what you expect`;
  const holder = st.assignments.mysql;
  let now = "";
  if (holder && c.ha?.mysql && c.ha.ha.nodes[holder]) {
    try { const p = await conn(c, holder); now = `; ${holder} at gtid ${(await position(p)).binlogPos}, schemas ${(await userSchemas(p)).join(",") || "none"}`; } catch (e) { now = `; ${holder} not reached: ${(e as Error).message}`; }
  }
  // the scratch server a dead command left: stopped by its PID once /proc says it is that one
  if (s?.scratchPid && (await readFile(`/proc/${s.scratchPid}/cmdline`, "utf8").catch(() => "")).includes(s.scratchDir)) {
    await stopScratch({ pid: s.scratchPid }, 5000).catch(() => undefined);
    await rm(s.scratchDir, { recursive: true, force: true }).catch(() => undefined);
  }
  const err = await setFlag(c, null, `restore --replace ${r.id} aborted by an operator`);
  if (err) return fail(ctx, `the write stop could not be cleared: ${err}`);
  await event(c, ctx, `restore --replace ${r.id} aborted (step ${s?.step ?? "unknown"}): writes resume; ${where}${now}${s?.preBackup ? `; the old data is in pinned backup ${s.preBackup}` : ""}`, { id: r.id, step: s?.step ?? null });
  return 0;
}
