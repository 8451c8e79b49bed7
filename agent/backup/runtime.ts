// The backup jobs on one node (issue 23): every few seconds, from the committed config and who is
// up, each agent works out the same answers (place.ts) and does what falls to it:
//   - the binlog archive, on the node whereToArchive names, pointed at the current primary;
//   - MySQL and Redis backups, on the replica whereToBackup names, when schedule.ts says one is
//     due (the schedule, or an operator's `bollard backup now`: the register flag
//     backup-now:<svc> = its wall time), stored on the node it names; then retention;
//   - the verification of the newest backup, on the same replica, into a scratch instance.
// Each node writes its jobs' last results to its own target (jobs.json), so that the acting
// leader, which judges the alarms, and the CLI read every node's word from the targets.
import { mkdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeView } from "../cluster/view.ts";
import { targetOf, type BackupConfig } from "../config/backup-schema.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { fenceHeld, inMaintenance } from "../ha/flags.ts";
import { BinlogArchiver, readArchiveFiles, readArchiveStatus, type ArchiveStatus } from "./archive.ts";
import { isGood, listBackups, newId, setPinned, type BackupKind, type Listed, type Manifest } from "./manifest.ts";
import { incrementalParent } from "./chain.ts";
import { datadirIdentity, takeMysqlBackup } from "./mysql-backup.ts";
import { whereToArchive, whereToBackup, type PlaceInput } from "./place.ts";
import { parseOneDomain } from "./plan.ts";
import { takeRedisBackup } from "./redis-backup.ts";
import { verifyMysql, verifyRedis } from "./restore.ts";
import { retain } from "./retention.ts";
import { backupDue, backupProblems, verifyDue, type BackupProblem, type JobResult } from "./schedule.ts";
import type { BackupSnapshot } from "./snapshot.ts";
import { sql } from "./tools.ts";

export interface BackupRuntimeDeps {
  config: Config;
  view: () => NodeView;
  log: Logger;
  now?: () => number;
  event?: (detail: string, fields: Record<string, unknown>) => void;
}


const readSecret = (f: string) => readFile(f, "utf8").then((s) => s.trim());

export class BackupRuntime {
  private readonly c: BackupConfig;
  private readonly self: string;
  private readonly now: () => number;
  private archiver: BinlogArchiver | null = null;
  private readonly running = new Set<string>();
  private readonly handled: Record<string, number> = {};
  private ticking = false;
  private warned = false;
  snap: BackupSnapshot = { backups: [], archive: null, jobs: [], running: [], problems: null, judged: [], targets: [] };

  constructor(private readonly d: BackupRuntimeDeps) {
    this.c = d.config.backup!;
    this.self = d.config.cluster.node;
    this.now = d.now ?? Date.now;
  }

  targets(members: string[]): { node: string; dir: string }[] {
    return members.map((n) => ({ node: n, dir: targetOf(this.c, n) }));
  }

  async stop(): Promise<void> {
    await this.archiver?.stop();
    this.archiver = null;
  }

  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try { await this.step(); } catch (e) { this.d.log.error("backup step failed", { err: (e as Error).message }); } finally { this.ticking = false; }
  }

  private async step(): Promise<void> {
    const v = this.d.view();
    if (!v.member) return;
    const cfg = v.committed;
    const members = cfg.members.map((m) => m.name);
    const up = [this.self, ...v.peers.filter((p) => p.alive).map((p) => p.name)];
    const excluded = members.filter((n) => inMaintenance(cfg.flags, n) || fenceHeld(cfg.flags, n));
    const place = (svc: "mysql" | "redis"): PlaceInput => ({ members, up, holder: cfg.assignments[svc] ?? null, excluded });
    const ha = this.d.config.ha!;
    // the catalog, from every node's target
    const all: Listed[] = [];
    for (const t of this.targets(members)) all.push(...(await listBackups(t.dir)).backups);
    all.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt));
    this.snap.backups = all;
    // the archive
    // MySQL 8: no mariadb-backup, no mariadb-binlog; not built (docs/backup.md)
    const maria = ha.mysql?.flavour !== "mysql8";
    if (!maria && !this.warned) {
      this.warned = true;
      this.d.log.warn("backups of MySQL 8 are not built (mariadb-backup and mariadb-binlog are MariaDB's): only Redis is backed up");
    }
    if (this.c.archive && ha.mysql && maria) {
      const w = whereToArchive(place("mysql"), null);
      const holder = cfg.assignments.mysql;
      if (w.ok && w.node === this.self && holder && ha.ha.nodes[holder]) {
        if (!this.archiver) {
          this.archiver = new BinlogArchiver({
            root: join(targetOf(this.c, this.self), "binlog"), node: this.self,
            // one server_id per node: two archivers (views that differ for a moment) must not
            // make the primary drop each other's stream
            serverId: 4290 + Math.max(0, members.indexOf(this.self)),
            allRoots: () => this.d.view().committed.members.map((m) => join(targetOf(this.c, m.name), "binlog")), user: ha.mysql.user, password: await readSecret(ha.mysql.password_file),
            now: this.now, log: this.d.log,
          });
        }
        await this.archiver.point({ node: holder, host: ha.ha.nodes[holder]!.address, port: ha.mysql.port });
        await this.archiver.refresh();
      } else if (this.archiver) {
        await this.archiver.stop();
        this.archiver = null;
      }
    }
    // backups and verifications that fall to this node
    for (const svc of ["mysql", "redis"] as const) {
      if (!ha[svc] || (svc === "mysql" && !maria)) continue;
      const p = whereToBackup(svc, place(svc));
      if (!p.ok || p.take !== this.self || this.running.has(svc)) continue;
      const mine = all.filter((b) => b.manifest.kind === svc);
      const latest = mine.filter((b) => isGood(b.manifest)).pop()?.manifest ?? null;
      // "<wall ms>" or "<wall ms> pin:<why>" (restore --replace keeps the old data: pinned before
      // retention runs, or the backups it would have kept beside it are pruned)
      const flag = cfg.flags[`backup-now:${svc}`] ?? "";
      const req = Number(flag.split(" ")[0] || NaN);
      const pin = /^\S+ pin:(.+)$/.exec(flag)?.[1] ?? null;
      const handled = Math.max(this.handled[svc] ?? 0, latest ? Date.parse(latest.startedAt) : 0);
      const due = backupDue(latest, svc === "mysql" ? this.c.mysqlEveryS : this.c.redisEveryS, this.now(), Number.isFinite(req) ? req : null, handled);
      if (due) {
        if (Number.isFinite(req)) this.handled[svc] = Math.max(this.handled[svc] ?? 0, req);
        this.job(svc, () => this.backup(svc, p.store, due, members, mine, pin));
        continue;
      }
      const toVerify = verifyDue(mine.map((b) => b.manifest), this.c.verifyEveryS, this.now());
      const b = toVerify && mine.find((x) => x.manifest.id === toVerify.id);
      if (b) this.job(`verify-${svc}`, () => this.verify(svc, b, mine));
    }
    this.snap.running = [...this.running];
    this.snap.jobs = [];
    for (const t of this.targets(members)) this.snap.jobs.push(...(await readJobs(t.dir)));
    // the archive's word: the freshest status.json on any target
    let arch: ArchiveStatus | null = null;
    for (const t of this.targets(members)) {
      const s = await readArchiveStatus(join(t.dir, "binlog"));
      if (s && (!arch || s.updatedAt > arch.updatedAt)) arch = s;
    }
    this.snap.archive = arch;
    this.snap.targets = await Promise.all(this.targets(members).map(async (t) => {
      try {
        const s = await statfs(t.dir);
        return { node: t.node, usedRatio: s.blocks > 0 ? 1 - s.bavail / s.blocks : null, error: null };
      } catch (e) {
        return { node: t.node, usedRatio: null, error: (e as NodeJS.ErrnoException).code === "ENOENT" ? null : (e as Error).message };
      }
    }));
    if (v.acting && v.role === "leader") {
      const kinds = (["mysql", "redis"] as const).filter((k) => ha[k]).map((k) => ({
        kind: k, everyS: k === "mysql" ? this.c.mysqlEveryS : this.c.redisEveryS,
        newestGood: all.filter((b) => b.manifest.kind === k && isGood(b.manifest)).pop()?.manifest ?? null,
        bad: all.filter((b) => b.manifest.kind === k && b.manifest.state === "bad").map((b) => b.manifest),
      }));
      const archive = this.c.archive && ha.mysql ? { gap: arch?.gap ?? null, error: arch?.error ?? null, updatedMs: arch ? Date.parse(arch.updatedAt) : null, running: arch?.running ?? false, downSinceMs: arch?.downSince ? Date.parse(arch.downSince) : null } : null;
      const r = backupProblems({ kinds, jobs: this.snap.jobs, archive, targets: this.snap.targets, fullRatio: this.c.fullRatio }, this.now());
      this.snap.problems = r.problems;
      this.snap.judged = r.judged;
    } else {
      this.snap.problems = null;
      this.snap.judged = [];
    }
  }

  private job(name: string, fn: () => Promise<void>): void {
    this.running.add(name);
    void fn().catch((e: Error) => this.d.log.error(`backup job ${name} failed`, { err: e.message })).finally(() => this.running.delete(name));
  }

  private async backup(svc: "mysql" | "redis", store: string, why: string, members: string[], mine: Listed[], pin: string | null = null): Promise<void> {
    const ha = this.d.config.ha!;
    const me = ha.ha.nodes[this.self]!;
    const target = targetOf(this.c, store);
    const id = newId(this.now(), this.self);
    const t0 = performance.now();
    this.d.log.info(`${svc} backup ${id} starting on ${this.self}, stored on ${store} (${why})`);
    let res: JobResult;
    try {
      let m: Manifest;
      if (svc === "mysql") {
        const conn = { host: me.address, port: ha.mysql!.port, user: ha.mysql!.user, password: await readSecret(ha.mysql!.password_file) };
        const datadir = (await sql(conn, "SELECT @@datadir;")).trim();
        const chain = incrementalParent(mine.map((b) => b.manifest), this.self, await datadirIdentity(datadir), this.c.mysqlIncrementals);
        this.d.log.info(`mysql backup ${id}: ${chain.why}`);
        m = await takeMysqlBackup({ conn, datadir, target, id, name: "mysql", node: this.self, storedOn: store, now: this.now, parent: chain.parent });
      } else {
        const password = ha.redis!.password_file ? await readSecret(ha.redis!.password_file) : undefined;
        m = await takeRedisBackup({ host: me.address, port: ha.redis!.port, password, target, id, name: "redis", node: this.self, storedOn: store, now: this.now });
      }
      res = { kind: svc, node: this.self, at: new Date(this.now()).toISOString(), ok: true, error: null, id, ms: Math.round(performance.now() - t0) };
      this.d.log.info(`${svc} backup ${id} complete: ${m.bytes} bytes in ${res.ms} ms`, { gtid: m.detail.gtid });
      if (pin) await setPinned(join(target, svc, id), pin);
      this.d.event?.(`${svc} backup ${id} complete on ${store} (${res.ms} ms, ${m.bytes} bytes${m.parent ? `, incremental on ${m.parent}` : ""})${pin ? `, pinned: ${pin}` : ""}`, { svc, id });
      await this.prune(svc, members);
    } catch (e) {
      res = { kind: svc, node: this.self, at: new Date(this.now()).toISOString(), ok: false, error: (e as Error).message.slice(0, 400), id, ms: Math.round(performance.now() - t0) };
      this.d.log.error(`${svc} backup ${id} failed`, { err: res.error });
      this.d.event?.(`${svc} backup ${id} FAILED: ${res.error}`, { svc, id, failed: true });
    }
    await this.record(res);
  }

  private async verify(svc: "mysql" | "redis", b: Listed, all: Listed[]): Promise<void> {
    const scratch = join(this.d.config.stateDir, "backup-verify", b.manifest.id);
    await rm(scratch, { recursive: true, force: true });
    await mkdir(join(this.d.config.stateDir, "backup-verify"), { recursive: true });
    const host = this.c.scratchHost;
    const r = svc === "mysql"
      ? await verifyMysql(b, scratch, host, this.c.ports.verifyMysql, this.now, all)
      : await verifyRedis(b, scratch, host, this.c.ports.verifyRedis, this.now);
    this.d.log[r.ok ? "info" : "error"](`verification of ${svc} backup ${b.manifest.id}: ${r.ok ? "good" : `BAD: ${r.error}`}`, { tables: r.tables, ms: Math.round(r.ms) });
    await this.record({ kind: `verify-${svc}`, node: this.self, at: new Date(this.now()).toISOString(), ok: r.ok, error: r.error, id: b.manifest.id, ms: Math.round(r.ms) });
  }

  /** Retention over the backups of `svc` on every target, then archive segments older than the
   *  oldest MySQL base backup kept. */
  private async prune(svc: BackupKind, members: string[]): Promise<void> {
    const all: Listed[] = [];
    for (const t of this.targets(members)) all.push(...(await listBackups(t.dir)).backups.filter((b) => b.manifest.kind === svc));
    const d = retain(all.map((b) => b.manifest), this.c.retention, this.now());
    for (const p of d.prune) {
      const b = all.find((x) => x.manifest.id === p.id)!;
      await rm(b.dir, { recursive: true, force: true });
      this.d.log.info(`backup ${svc}/${p.id} pruned: ${p.why}`);
    }
    if (svc !== "mysql") return;
    const kept = all.filter((b) => d.keep.some((k) => k.id === b.manifest.id) && isGood(b.manifest));
    const seqs = kept.map((b) => parseOneDomain(String(b.manifest.detail.gtid ?? ""))).map((g) => (typeof g === "string" ? 0 : g.seq));
    if (!seqs.length) return;
    const oldest = Math.min(...seqs);
    for (const t of this.targets(members)) {
      const root = join(t.dir, "binlog");
      const files = await readArchiveFiles(root);
      const segs = [...new Set(files.map((f) => f.segment))].sort();
      for (const seg of segs.slice(0, -1)) {
        const evs = files.filter((f) => f.segment === seg).flatMap((f) => f.events);
        if (evs.length && evs.every((e) => e.seq <= oldest)) {
          await rm(join(root, seg), { recursive: true, force: true });
          this.d.log.info(`binlog archive segment ${seg} pruned: older than the oldest base backup kept`);
        }
      }
    }
  }

  private async record(r: JobResult): Promise<void> {
    const dir = targetOf(this.c, this.self);
    const jobs = (await readJobs(dir)).filter((j) => j.kind !== r.kind);
    jobs.push(r);
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "jobs.json"), JSON.stringify(jobs, null, 2) + "\n");
    } catch (e) {
      this.d.log.warn("could not record a backup job's result", { err: (e as Error).message });
    }
    this.snap.jobs = [...this.snap.jobs.filter((j) => !(j.node === r.node && j.kind === r.kind)), r];
  }
}

export async function readJobs(dir: string): Promise<JobResult[]> {
  try {
    const j = JSON.parse(await readFile(join(dir, "jobs.json"), "utf8"));
    return Array.isArray(j) ? (j as JobResult[]).filter((x) => x && typeof x.kind === "string" && typeof x.at === "string") : [];
  } catch {
    return [];
  }
}
