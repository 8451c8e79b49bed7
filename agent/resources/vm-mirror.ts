// QEMU's own active mirror of a VM's disks to its replica (issue 14 §2, DESIGN §5b), and the
// live migration that hands the guest to that replica. On the VM's QMP:
//   blockdev-add driver=nbd   the replica's export (qemu-storage-daemon, vm-storage.ts), with a
//                             long reconnect-delay: a lost connection pauses the writes (they
//                             hang, unacknowledged) instead of failing them, and they are sent
//                             again when the target is back. Only `yank` makes them fail, which
//                             the agent does once the leader has outdated the replica.
//   blockdev-mirror sync=full copy-mode=write-blocking   the first copy in the background, and
//                             from the start every guest write completes only once both disks
//                             have it (BLOCK_JOB_READY: the first copy is done).
// A mirror rebuilt to a node that holds an older copy copies only the blocks written since
// (dirty bitmaps, vm-rebuild.ts); otherwise the whole disk (zero areas cost little: block status).
import type { VmDef } from "../ha/vm-types.ts";
import type { MirrorFacts } from "../ha/vm-types.ts";
import { rebuildChoice } from "../ha/vm-rebuild.ts";
import { diskBitmaps, prepareBitmaps, startIncremental } from "./vm-rebuild.ts";
import { exportName, nodeNames } from "./qemu-args.ts";
import type { Qmp } from "./qmp.ts";
import { DriverError } from "./types.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** how long writes wait for a lost mirror target before they fail (NBD reconnect-delay, s) */
export const RECONNECT_S = 3600;

interface JobInfo {
  device: string;
  type: string;
  len: number;
  offset: number;
  ready: boolean;
  status: string;
  "io-status"?: string;
  error?: string;
}

export async function jobs(q: Qmp): Promise<JobInfo[]> {
  return q.execute<JobInfo[]>("query-block-jobs");
}

export interface AttachResult {
  /** full: the whole disk is copied; incremental: the blocks a dirty bitmap lists; kept: jobs already there */
  mode: "full" | "incremental" | "kept";
  why: string;
  /** bytes the incremental copy has to send (the bitmaps' dirty bytes) */
  dirtyBytes?: number;
}

/**
 * Mirrors every disk of `def` to `host:port` (the replica's NBD server). Jobs already there are
 * kept. With `rb` (the replica's node and the copy it reports holding), a dirty bitmap for that
 * node is kept from now on, and where one already covers the node's older copy only the blocks
 * written since are copied (vm-rebuild.ts); otherwise, a full copy.
 */
export async function attachMirror(q: Qmp, def: VmDef, host: string, port: number, rb?: { node: string; copy: string | null }): Promise<AttachResult> {
  const js = await jobs(q);
  const have = new Set(js.map((j) => j.device));
  if (def.disks.every((d) => have.has(nodeNames(d.name).job))) return { mode: "kept", why: "its mirror jobs run already" };
  await dismissRebuilds(q, def, js);
  const choice = rb ? rebuildChoice(rb.node, rb.copy, await diskBitmaps(q, def)) : { mode: "full" as const, why: "a full copy" };
  if (rb) await prepareBitmaps(q, def, rb.node, rb.copy, choice.mode === "full");
  const nodes = new Set((await q.execute<{ "node-name": string }[]>("query-named-block-nodes", { flat: true })).map((x) => x["node-name"]));
  for (const d of def.disks) {
    const n = nodeNames(d.name);
    if (have.has(n.job)) continue;
    if (!nodes.has(n.target)) {
      await q.execute("blockdev-add", {
        driver: "nbd", "node-name": n.target, server: { type: "inet", host, port: String(port) }, export: exportName(def.name, d.name),
        "reconnect-delay": RECONNECT_S,
      }, 10_000);
    }
    await q.execute("blockdev-mirror", {
      "job-id": n.job, device: n.fmt, target: n.target, sync: choice.mode === "incremental" ? "none" : "full", "copy-mode": "write-blocking",
      "on-source-error": "stop", "on-target-error": "report", "auto-finalize": true, "auto-dismiss": false,
    });
  }
  if (choice.mode === "incremental") {
    try {
      await startIncremental(q, def, host, port, (disk) => exportName(def.name, disk), choice.bitmap, RECONNECT_S);
    } catch (e) {
      // a sync=none mirror alone would call itself ready with the older copy: it must not stay
      await detachMirror(q, def, { yank: false }).catch(() => undefined);
      throw new DriverError("mirror", `${def.name}: the incremental copy to ${rb!.node} did not start: ${(e as Error).message}`, e);
    }
    return { mode: "incremental", why: choice.why, dirtyBytes: choice.dirtyBytes };
  }
  return { mode: "full", why: choice.why };
}

/** Rebuild jobs that ended: dismissed, their NBD connections closed (before another mirror). */
async function dismissRebuilds(q: Qmp, def: VmDef, js: JobInfo[]): Promise<void> {
  for (const d of def.disks) {
    const n = nodeNames(d.name);
    const j = js.find((x) => x.device === n.rebuild);
    if (j && j.status !== "concluded") continue;
    if (j) await q.execute("job-dismiss", { id: n.rebuild });
    try { await q.execute("blockdev-del", { "node-name": n.copy }); } catch { /* not there */ }
  }
}

/**
 * The mirror as the jobs say: none, syncing (first copy, or an incremental rebuild under way),
 * ready (every disk in sync), broken. A rebuild that concluded without error is done.
 */
export async function mirrorFacts(q: Qmp, def: VmDef, to: string): Promise<MirrorFacts | null> {
  const js = await jobs(q);
  const mine = def.disks.map((d) => js.find((j) => j.device === nodeNames(d.name).job));
  if (mine.every((j) => !j)) return null;
  const failed = (j: JobInfo | undefined) => !!j && (j.status === "aborting" || !!j.error || (!!j["io-status"] && j["io-status"] !== "ok"));
  const bad = mine.find((j) => !j || j.status === "concluded" || failed(j));
  if (bad) return { to, state: "broken", done: 0, error: bad ? (bad.error ?? `job ${bad.device} ${bad.status}${bad["io-status"] && bad["io-status"] !== "ok" ? `, io-status ${bad["io-status"]}` : ""}`) : "a disk has no mirror job" };
  const rebuilds = def.disks.map((d) => js.find((j) => j.device === nodeNames(d.name).rebuild)).filter((j): j is JobInfo => !!j);
  const rbad = rebuilds.find(failed);
  if (rbad) return { to, state: "broken", done: 0, error: `the incremental rebuild ${rbad.device} failed: ${rbad.error ?? rbad.status}` };
  const running = rebuilds.filter((j) => j.status !== "concluded");
  const all = [...mine.map((j) => j!), ...running];
  const len = all.reduce((a, j) => a + j.len, 0);
  const off = all.reduce((a, j) => a + Math.min(j.offset, j.len), 0);
  const ready = mine.every((j) => j!.ready) && !running.length;
  return { to, state: ready ? "ready" : "syncing", done: len ? Math.min(1, off / len) : 1 };
}

/** Waits until every disk's mirror is ready (the first copy done); throws if one breaks or time runs out. */
export async function waitReady(q: Qmp, def: VmDef, to: string, ms: number): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    const m = await mirrorFacts(q, def, to);
    if (m?.state === "ready") return;
    if (!m || m.state === "broken") throw new DriverError("mirror", `${def.name}: the mirror to ${to} ${m ? `broke: ${m.error}` : "is gone"}`);
    if (performance.now() > end) throw new DriverError("mirror", `${def.name}: the mirror to ${to} is not in sync after ${ms} ms (${Math.round(m.done * 100)} %)`);
    await sleep(50);
  }
}

/**
 * Ends the mirror of every disk: `yank` first when the target may hang (writes waiting on it
 * fail, and complete on the local disk alone), then cancel the job (a ready mirror's cancel
 * leaves the target consistent), dismiss it, and remove the NBD node.
 */
export async function detachMirror(q: Qmp, def: VmDef, o: { yank: boolean }): Promise<void> {
  for (const d of def.disks) {
    const n = nodeNames(d.name);
    if (o.yank) {
      try {
        await q.execute("yank", { instances: [{ type: "block-node", "node-name": n.target }] });
      } catch {
        /* no such node, or nothing to yank */
      }
    }
    let j = (await jobs(q)).find((x) => x.device === n.job);
    if (j && j.status !== "concluded") {
      try { await q.execute("block-job-cancel", { device: n.job, force: true }); } catch { /* concluded meanwhile */ }
    }
    const end = performance.now() + 10_000;
    while ((j = (await jobs(q)).find((x) => x.device === n.job)) && j.status !== "concluded") {
      if (performance.now() > end) throw new DriverError("mirror", `${def.name}: the mirror job ${n.job} did not end within 10 s (${j.status})`);
      await sleep(20);
    }
    if (j) await q.execute("job-dismiss", { id: n.job });
    await endRebuild(q, n.rebuild, n.copy, o.yank);
    try {
      await q.execute("blockdev-del", { "node-name": n.target });
    } catch (e) {
      if (!/not find|not found/i.test((e as Error).message)) throw e;
    }
  }
}

/** An incremental rebuild's backup job ended (cancelled if it runs: its bitmap is merged back) and its NBD node removed. */
async function endRebuild(q: Qmp, id: string, node: string, yank: boolean): Promise<void> {
  if (yank) {
    try { await q.execute("yank", { instances: [{ type: "block-node", "node-name": node }] }); } catch { /* no such node */ }
  }
  let j = (await jobs(q)).find((x) => x.device === id);
  if (j && j.status !== "concluded") {
    try { await q.execute("block-job-cancel", { device: id, force: true }); } catch { /* concluded meanwhile */ }
  }
  const end = performance.now() + 10_000;
  while ((j = (await jobs(q)).find((x) => x.device === id)) && j.status !== "concluded") {
    if (performance.now() > end) throw new DriverError("mirror", `the rebuild job ${id} did not end within 10 s (${j.status})`);
    await sleep(20);
  }
  if (j) await q.execute("job-dismiss", { id });
  try { await q.execute("blockdev-del", { "node-name": node }); } catch { /* not there */ }
}

export interface MigrationResult {
  /** from `migrate` to completed, ms */
  ms: number;
  /** the guest's pause as QEMU measured it (downtime), plus the mirror hand-over at switchover */
  downtimeMs: number;
  /** ms spent in the pre-switchover hand-over of the disks */
  switchoverMs: number;
}

/**
 * Live migration of the guest to the target QEMU waiting on `host:port` (started with
 * `-incoming defer` on the replica's copy of the disks). With pause-before-switchover the
 * source stops at the end with the guest paused: every write is then on the target (the mirror
 * is write-blocking and in sync), the mirror is ended so that nothing writes the target's disk
 * any more, and only then does the target get the device state. A failure before that leaves
 * the guest running here with its mirror; `afterMirror` tells a failure after it apart.
 */
export async function migrateOut(q: Qmp, def: VmDef, host: string, port: number, onPhase: (p: string) => void = () => {}): Promise<MigrationResult> {
  const t0 = performance.now();
  await q.execute("migrate-set-capabilities", { capabilities: [{ capability: "pause-before-switchover", state: true }] });
  await q.execute("migrate-set-parameters", { "downtime-limit": 300, "max-bandwidth": 4 * 1024 * 1024 * 1024 });
  await q.execute("migrate", { uri: `tcp:${host}:${port}` });
  onPhase("migrating");
  const st = await waitMigration(q, ["pre-switchover"], 300_000);
  const ts = performance.now();
  onPhase("switchover");
  try {
    await detachMirror(q, def, { yank: false });
  } catch (e) {
    try { await q.execute("migrate_cancel"); } catch { /* already over */ }
    throw new MigrationError(`ending the mirror at switchover: ${(e as Error).message}`, true);
  }
  await q.execute("migrate-continue", { state: "pre-switchover" });
  let done: MigrateInfo;
  try {
    done = await waitMigration(q, ["completed"], 60_000);
  } catch (e) {
    throw new MigrationError((e as Error).message, true);
  }
  void st;
  const switchoverMs = performance.now() - ts;
  return { ms: Math.round(performance.now() - t0), downtimeMs: Math.round(done.downtime ?? switchoverMs), switchoverMs: Math.round(switchoverMs) };
}

export class MigrationError extends DriverError {
  constructor(message: string, readonly afterMirror: boolean) {
    super("migrate", message);
  }
}

interface MigrateInfo {
  status: string;
  "total-time"?: number;
  downtime?: number;
  "error-desc"?: string;
}

async function waitMigration(q: Qmp, want: string[], ms: number): Promise<MigrateInfo> {
  const end = performance.now() + ms;
  for (;;) {
    const m = await q.execute<MigrateInfo>("query-migrate");
    if (want.includes(m.status)) return m;
    if (m.status === "failed" || m.status === "cancelled") throw new MigrationError(`migration ${m.status}${m["error-desc"] ? `: ${m["error-desc"]}` : ""}`, false);
    if (performance.now() > end) {
      try { await q.execute("migrate_cancel"); } catch { /* over */ }
      throw new MigrationError(`migration not ${want.join("/")} after ${ms} ms (${m.status})`, false);
    }
    await sleep(20);
  }
}

/** The target QEMU (started with -incoming defer) listens for the migration. */
export async function listenIncoming(q: Qmp, host: string, port: number): Promise<void> {
  await q.execute("migrate-incoming", { uri: `tcp:${host}:${port}` });
}

/** Whether the incoming migration has arrived in full (query-migrate on the target). */
export async function incomingDone(q: Qmp): Promise<boolean> {
  const m = await q.execute<MigrateInfo>("query-migrate");
  return m.status === "completed";
}
