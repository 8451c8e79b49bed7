// `bollard backup list|status|now` and `bollard restore mysql|redis` (issue 23, docs/backup.md).
// The catalog is read from every member's backup target (config backup.target, {node} replaced:
// the same path on every node, another node's reached through its NFS mount; in the lab the
// nodes' state directories). `backup now` commits the register flag backup-now:<svc>; the agent
// whose node backup/place.ts names takes it, and the command waits for the new backup or the
// job's failure ("<ms> pin:<why>": pinned by the agent before retention runs, restore --replace). A restore runs on this node, into a new server beside the cluster.
import { parseArgs } from "node:util";
import { join } from "node:path";
import { readArchive, readArchiveStatus, type ArchiveStatus } from "../backup/archive.ts";
import { restorable, restoreChain } from "../backup/chain.ts";
import { readVmBackupStatus, vmStatusLine } from "../backup/vm-status.ts";
import { isGood, listBackups, setPinned, type Listed } from "../backup/manifest.ts";
import { planRestore, type Target } from "../backup/plan.ts";
import { connectHint, restoreMysql, restoreRedisInto } from "../backup/restore.ts";
import { readJobs } from "../backup/runtime.ts";
import type { JobResult } from "../backup/schedule.ts";
import { targetOf } from "../config/backup-schema.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { controlRequest } from "../runtime/control.ts";
import { abortReplace, replaceRefusal, runReplace } from "./restore-replace-cmd.ts";
import type { CommandContext, SubCommand } from "./types.ts";

const BACKUP_USAGE = [
  "backup list [--json]                every backup on every node's target (mysql, redis, vm), oldest first",
  "backup status [--json]              last good backup and its age, archive lag, space used, last jobs",
  "backup now mysql|redis [--no-wait]  take one now (on a replica, stored on another node)",
  "backup now vm:NAME [--no-wait]  take one of a VM's disks now (on the node running it; incremental unless its chain is full)",
  "backup unpin ID                     let retention remove a pinned backup (restore --replace pins the old data's)",
];
const RESTORE_USAGE = [
  "restore mysql --to-time T|--to-gtid G [--dry-run]  into a NEW MariaDB beside the cluster (T: ISO 8601, UTC if no zone)",
  "restore mysql --to-time T|--to-gtid G --replace --confirm CLUSTER [--dry-run]  make that point every node's data (CLUSTER: cluster.name; writes stop meanwhile; the old data kept in a pinned backup)",
  "restore mysql --replace --abort --confirm CLUSTER  clear the write stop a dead `restore --replace` left; says what state the data is in",
  "restore redis --backup ID [--dry-run]  into a NEW redis-server beside the cluster",
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fail = (ctx: CommandContext, cmd: string, msg: string, code = 1) => { ctx.io.err(`bollard: ${cmd}: ${msg}`); return code; };

function config(ctx: CommandContext): Config | string {
  const r = loadConfig(ctx.configPath, { secrets: false });
  if (!r.ok) return `config ${ctx.configPath}: ${r.errors.join("; ")}`;
  if (!r.config.backup) return `the config (${ctx.configPath}) has no backup: section: this cluster takes no backups`;
  return r.config;
}

export const members = (c: Config) => [...new Set([...c.cluster.members.map((m) => m.name), ...Object.keys(c.ha?.ha.nodes ?? {})])].sort();

export async function catalog(c: Config): Promise<{ backups: Listed[]; errors: { dir: string; error: string }[]; inProgress: { kind: string; id: string; dir: string }[] }> {
  const out = { backups: [] as Listed[], errors: [] as { dir: string; error: string }[], inProgress: [] as { kind: string; id: string; dir: string }[] };
  // every node's target, and where `bollard vm backup` keeps VM chains (vms.backup.dir), once each
  const dirs = [...new Set([...members(c).map((n) => targetOf(c.backup!, n)), ...(c.vms?.backup ? [c.vms.backup.dir] : [])])];
  for (const d of dirs) {
    const l = await listBackups(d);
    out.backups.push(...l.backups); out.errors.push(...l.errors); out.inProgress.push(...l.inProgress);
  }
  out.backups.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt));
  return out;
}

export const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const age = (iso: string) => { const s = Math.round((Date.now() - Date.parse(iso)) / 1000); return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`; };

async function list(c: Config, ctx: CommandContext): Promise<number> {
  const cat = await catalog(c);
  if (ctx.json) { ctx.io.out(JSON.stringify({ backups: cat.backups.map((b) => ({ ...b.manifest, dir: b.dir, good: isGood(b.manifest) })), inProgress: cat.inProgress, errors: cat.errors })); return 0; }
  ctx.io.out("KIND   ID                              NAME      TAKEN ON  STORED ON  STARTED (UTC)         SECONDS  SIZE       STATE");
  for (const b of cat.backups) {
    const m = b.manifest;
    const state = (m.state === "bad" ? `BAD (${String((m.detail.verify as { error?: string } | undefined)?.error ?? "").slice(0, 60)})` : m.state) + (m.pinned ? ` PINNED (${m.pinned.slice(0, 80)})` : "");
    ctx.io.out(`${m.kind.padEnd(6)} ${m.id.padEnd(31)} ${m.name.slice(0, 9).padEnd(9)} ${m.node.padEnd(9)} ${m.storedOn.padEnd(10)} ${m.startedAt.slice(0, 19).padEnd(21)} ${String(Math.round((Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000)).padStart(7)}  ${mb(m.bytes).padStart(9)}  ${state}${m.parent ? `, incremental on ${m.parent}` : ""}`);
  }
  if (!cat.backups.length) ctx.io.out("(no backups)");
  for (const p of cat.inProgress) ctx.io.out(`in progress or abandoned (not a backup): ${p.kind}/${p.id} in ${p.dir}`);
  for (const e of cat.errors) ctx.io.out(`unreadable (not a backup): ${e.dir}: ${e.error}`);
  return 0;
}

async function status(c: Config, ctx: CommandContext): Promise<number> {
  const cat = await catalog(c);
  let archive: ArchiveStatus | null = null;
  const jobs: JobResult[] = [];
  const space: Record<string, number> = {};
  for (const n of members(c)) {
    const t = targetOf(c.backup!, n);
    const s = await readArchiveStatus(join(t, "binlog"));
    if (s && (!archive || s.updatedAt > archive.updatedAt)) archive = s;
    jobs.push(...(await readJobs(t)));
    space[n] = cat.backups.filter((b) => b.manifest.storedOn === n).reduce((a, b) => a + b.manifest.bytes, 0);
  }
  const kinds = ["mysql", "redis", "vm"].map((kind) => {
    const good = cat.backups.filter((b) => b.manifest.kind === kind && isGood(b.manifest));
    const last = good[good.length - 1]?.manifest ?? null;
    return { kind, lastGood: last?.id ?? null, lastGoodAt: last?.startedAt ?? null, ageS: last ? Math.round((Date.now() - Date.parse(last.startedAt)) / 1000) : null, good: good.length, bad: cat.backups.filter((b) => b.manifest.kind === kind && !isGood(b.manifest)).length };
  });
  const vms = c.vms?.backup ? await readVmBackupStatus(c.vms.backup.dir, c.vms.catalog.defs.map((d) => d.name), members(c), Date.now()) : [];
  if (ctx.json) { ctx.io.out(JSON.stringify({ kinds, vms, archive, jobs, spaceBytes: space })); return 0; }
  for (const k of kinds) if (k.good || k.bad) ctx.io.out(`${k.kind.padEnd(6)} last good ${k.lastGood ?? "none"}${k.lastGoodAt ? ` (${age(k.lastGoodAt)} ago)` : ""}; ${k.good} good, ${k.bad} bad`);
  for (const v of vms) ctx.io.out(vmStatusLine(v));
  if (archive) ctx.io.out(`binlog archive on ${archive.node} from ${archive.primary ?? "no primary"}: ${archive.running ? "streaming" : "NOT streaming"}, last ${archive.lastGtid ?? "none"}, lag ${archive.lagS === null ? "unknown" : `${archive.lagS.toFixed(1)} s`}, behind ${archive.behind ?? "?"} trx${archive.gap ? `, GAP: ${archive.gap}` : ""}${archive.error ? ` (${archive.error})` : ""} (as of ${age(archive.updatedAt)} ago)`);
  else ctx.io.out("binlog archive: no word from an archiver");
  ctx.io.out(`space: ${Object.entries(space).map(([n, b]) => `${n} ${mb(b)}`).join(", ")}`);
  for (const j of jobs.sort((a, b) => a.at.localeCompare(b.at))) ctx.io.out(`last ${j.kind} on ${j.node} at ${j.at}: ${j.ok ? "ok" : `FAILED: ${j.error}`}${j.id ? ` (${j.id})` : ""}`);
  return 0;
}

/** Commits backup-now:<svc> and, with `wait`, waits for the new backup (or the job's failure). */
export async function takeNow(c: Config, svc: string, wait: boolean, say: (s: string) => void, why = `operator backup of ${svc}`, pin?: string): Promise<{ ok: true; backup: Listed | null } | { ok: false; error: string }> {
  const t0 = Date.now();
  const r = await controlRequest(c.control.socket, "POST", "/command", { op: "apply", why, flags: { [`backup-now:${svc}`]: pin ? `${t0} pin:${pin}`.slice(0, 300) : String(t0) } }, 15_000).catch((e: Error) => ({ code: 0, body: { error: e.message } }));
  const b = r.body as { status?: string; epoch?: number; error?: string };
  if (r.code !== 200 || b.status !== "ok") return { ok: false, error: `refused: ${b.error ?? `HTTP ${r.code}`}` };
  const vm = svc.startsWith("vm:") ? svc.slice(3) : null;
  say(`requested (config epoch ${b.epoch}); ${vm ? "the node running it takes it" : "a replica takes it"}`);
  if (!wait) return { ok: true, backup: null };
  const mine = (m: Listed["manifest"]) => (vm ? m.kind === "vm" && m.name === vm : m.kind === svc);
  for (let i = 0; i < 3600; i++) {
    await sleep(1000);
    const got = (await catalog(c)).backups.find((x) => mine(x.manifest) && Date.parse(x.manifest.startedAt) >= t0 - 1000);
    if (got) return { ok: true, backup: got };
    const jobs: JobResult[] = [];
    if (vm) {
      const j = (await readVmBackupStatus(c.vms!.backup!.dir, [vm], members(c), Date.now()))[0]?.lastBackupJob;
      if (j) jobs.push(j);
    } else for (const n of members(c)) jobs.push(...(await readJobs(targetOf(c.backup!, n))));
    const failed = jobs.find((j) => (vm || j.kind === svc) && !j.ok && Date.parse(j.at) >= t0);
    if (failed) return { ok: false, error: `the backup on ${failed.node} failed: ${failed.error}` };
  }
  return { ok: false, error: "no backup within an hour" };
}

async function now(c: Config, svc: string, wait: boolean, ctx: CommandContext): Promise<number> {
  const r = await takeNow(c, svc, wait, (s) => ctx.io.out(s));
  if (!r.ok) return fail(ctx, "backup now", r.error);
  const m = r.backup?.manifest;
  if (m) ctx.io.out(`${svc} backup ${m.id} complete: taken on ${m.node}, stored on ${m.storedOn}, ${mb(m.bytes)}`);
  return 0;
}

export const backupCommand: SubCommand = {
  name: "backup",
  usage: BACKUP_USAGE,
  async run(args, ctx) {
    let p;
    try { p = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" }, "no-wait": { type: "boolean" } } }); } catch (e) { return fail(ctx, "backup", `${(e as Error).message}\nrun "bollard --help" for usage`, 2); }
    const [sub, svc] = p.positionals;
    const c = config(ctx);
    if (typeof c === "string") return fail(ctx, "backup", c, 2);
    ctx = { ...ctx, json: ctx.json || !!p.values.json };
    if (sub === "list" && p.positionals.length === 1) return list(c, ctx);
    if (sub === "status" && p.positionals.length === 1) return status(c, ctx);
    if (sub === "now" && (svc === "mysql" || svc === "redis") && p.positionals.length === 2) return now(c, svc, !p.values["no-wait"], ctx);
    if (sub === "now" && svc?.startsWith("vm:") && p.positionals.length === 2) {
      const name = svc.slice(3);
      if (!c.vms?.backup) return fail(ctx, "backup now", "no vms.backup section in the config: VM backups are not configured", 2);
      if (!c.vms.catalog.defs.some((d) => d.name === name)) return fail(ctx, "backup now", `no VM ${JSON.stringify(name)} (known: ${c.vms.catalog.defs.map((d) => d.name).join(", ") || "none"})`, 2);
      return now(c, svc, !p.values["no-wait"], ctx);
    }
    if (sub === "unpin" && svc && p.positionals.length === 2) {
      const b = (await catalog(c)).backups.find((x) => x.manifest.id === svc);
      if (!b) return fail(ctx, "backup unpin", `no backup ${svc} (see bollard backup list)`);
      if (!b.manifest.pinned) { ctx.io.out(`backup ${svc} is not pinned`); return 0; }
      await setPinned(b.dir, null);
      ctx.io.out(`backup ${svc} unpinned (was: ${b.manifest.pinned}); retention removes it once it is outside the daily and weekly windows`);
      return 0;
    }
    return fail(ctx, "backup", `expected: list | status | now mysql|redis | unpin ID\nrun "bollard --help" for usage`, 2);
  },
};

/** "2026-12-06T10:30:15Z", "2026-12-06 10:30:15" (UTC), "...+01:00" -> ms. */
export function parseTime(t: string): number | null {
  const s = t.trim().replace(" ", "T");
  const ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?/.test(s) && Number.isFinite(ms) ? ms : null;
}

export const restoreCommand: SubCommand = {
  name: "restore",
  usage: RESTORE_USAGE,
  async run(args, ctx) {
    let p;
    try {
      p = parseArgs({ args, allowPositionals: true, options: { "to-time": { type: "string" }, "to-gtid": { type: "string" }, backup: { type: "string" }, "dry-run": { type: "boolean" }, replace: { type: "boolean" }, confirm: { type: "string" }, abort: { type: "boolean" }, dir: { type: "string" }, port: { type: "string" } } });
    } catch (e) { return fail(ctx, "restore", `${(e as Error).message}\nrun "bollard --help" for usage`, 2); }
    const [svc] = p.positionals;
    const c = config(ctx);
    if (typeof c === "string") return fail(ctx, "restore", c, 2);
    const v = p.values;
    const refused = replaceRefusal(svc, v, c.cluster.name);
    if (refused) return fail(ctx, "restore", refused, 2);
    if (v.abort) return abortReplace(c, ctx);
    const dir = v.dir ?? join(c.stateDir, "restore", `${svc}-${new Date().toISOString().replace(/[-:.]/g, "")}`);
    if (svc === "mysql") {
      if (!!v["to-time"] === !!v["to-gtid"]) return fail(ctx, "restore", "expected exactly one of --to-time T or --to-gtid G", 2);
      let target: Target;
      if (v["to-time"]) {
        const ms = parseTime(v["to-time"]);
        if (ms === null) return fail(ctx, "restore", `--to-time: expected an ISO 8601 time (2026-12-06T10:30:15Z), got "${v["to-time"]}"`, 2);
        target = { time: ms };
      } else target = { gtid: v["to-gtid"]! };
      const cat = await catalog(c);
      const mysqls = cat.backups.filter((b) => b.manifest.kind === "mysql");
      const ok = new Set(restorable(mysqls.map((b) => b.manifest)).map((m) => m.id));
      const bases = mysqls.filter((b) => ok.has(b.manifest.id));
      const archive = await readArchive(members(c).map((n) => join(targetOf(c.backup!, n), "binlog")));
      const r = planRestore(bases.map((b) => ({ id: b.manifest.id, gtid: String(b.manifest.detail.gtid ?? ""), finishedMs: Date.parse(b.manifest.finishedAt), dir: b.dir })), archive, target);
      if (!r.ok) return fail(ctx, "restore", r.error);
      ctx.io.out(`plan: ${r.plan.describe}`);
      const base = bases.find((b) => b.manifest.id === r.plan.base.id)!;
      const ch = restoreChain(mysqls.map((b) => b.manifest), base.manifest.id);
      if (ch.ok && ch.chain.length > 1) ctx.io.out(`chain: full ${ch.chain[0]!.id}, then incremental ${ch.chain.slice(1).map((m) => m.id).join(", ")} applied to a copy of it`);
      const port = v.port ? Number(v.port) : c.backup!.ports.restoreMysql;
      if (v.replace) return runReplace(c, ctx, { plan: r.plan, base, all: mysqls, dir, port, dryRun: !!v["dry-run"] });
      if (v["dry-run"]) return 0;
      try {
        const res = await restoreMysql(r.plan, base, { dir, host: c.backup!.scratchHost, port, detached: true }, mysqls);
        ctx.io.out(`restored to gtid ${res.reached} in ${(res.ms / 1000).toFixed(1)} s: a new MariaDB (pid ${res.scratch.pid}) on ${res.scratch.host}:${res.scratch.port}, datadir ${dir}/data\nconnect: ${connectHint(res.scratch)}`);
        return 0;
      } catch (e) { return fail(ctx, "restore", (e as Error).message); }
    }
    if (svc === "redis") {
      if (!v.backup) return fail(ctx, "restore", "expected --backup ID (see bollard backup list)", 2);
      const b = (await catalog(c)).backups.find((x) => x.manifest.kind === "redis" && x.manifest.id === v.backup);
      if (!b) return fail(ctx, "restore", `no redis backup ${v.backup} (see bollard backup list)`);
      if (!isGood(b.manifest)) return fail(ctx, "restore", `redis backup ${v.backup} is ${b.manifest.state}: its verification failed`);
      ctx.io.out(`plan: redis backup ${b.manifest.id} (${b.manifest.detail.keys} keys, taken on ${b.manifest.node} at ${b.manifest.startedAt})`);
      if (v["dry-run"]) return 0;
      try {
        const x = await restoreRedisInto(b, { dir, host: c.backup!.scratchHost, port: v.port ? Number(v.port) : c.backup!.ports.restoreRedis, detached: true });
        ctx.io.out(`restored: a new redis-server (pid ${x.pid}) on ${x.host}:${x.port}\nconnect: ${connectHint(x)}`);
        return 0;
      } catch (e) { return fail(ctx, "restore", (e as Error).message); }
    }
    return fail(ctx, "restore", `expected: restore mysql|redis ...\nrun "bollard --help" for usage`, 2);
  },
};
