// VM disk backups of a running VM (issue 23 §5), over a QMP monitor of its QEMU (the CLI's: the
// second one; the agent's scheduled ones, runtime/vm-backup-jobs.ts: its own), as QEMU's
// docs/interop/bitmaps.rst describes. In one QMP `transaction` (one point in time for every disk), per disk:
//   block-dirty-bitmap-add  bollard-bk.<id> on the disk's file node: it records every write from
//                           this backup's point in time on, for the next incremental one;
//   blockdev-backup         sync=full, or sync=incremental with bitmap bollard-bk.<parent>, to a
//                           qcow2 image in <target>/vm/<id>.tmp/ (an incremental one's backing file
//                           is its parent's image: `qemu-img convert` of it reads the whole chain).
// The parent's bitmap is removed as soon as the job succeeded (before the manifest is written):
// a backup that then fails to land leaves no bitmap claiming a chain that is not there, and the
// next backup is full. Guest-consistent where the guest answers on its guest agent channel
// (guest-fsfreeze-freeze before the transaction, thaw right after it: copy-before-write keeps the
// point in time); otherwise crash-consistent, and the manifest says why.
// The backup directory is written here; it is another node's storage when vms.backup.dir is a
// mount of it (docs/vm.md).
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { SUMS, writeSums } from "../backup/sums.ts";
import type { VmDef } from "../ha/vm-types.ts";
import { backupBitmap, backupId, latestOf, parseManifest, planBackup, type BackupPlan, type VmBackupManifest } from "./vm-backup-manifest.ts";
import { nodeNames, type VmPaths } from "./qemu-args.ts";
import type { Qmp } from "./qmp.ts";
import { DriverError } from "./types.ts";
import { GRANULARITY, diskBitmaps } from "./vm-rebuild.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every backup under <root>/vm: the good manifests, and the directories whose manifest is bad (with why). */
export function readBackups(root: string): { manifests: VmBackupManifest[]; bad: { id: string; error: string }[] } {
  const dir = join(root, "vm");
  const manifests: VmBackupManifest[] = [];
  const bad: { id: string; error: string }[] = [];
  if (!existsSync(dir)) return { manifests, bad };
  for (const id of readdirSync(dir)) {
    if (id.endsWith(".tmp")) continue;
    let text: string;
    try { text = readFileSync(join(dir, id, "manifest.json"), "utf8"); } catch (e) { bad.push({ id, error: `manifest.json: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }); continue; }
    const r = parseManifest(text, id);
    if (r.ok) manifests.push(r.m);
    else bad.push({ id, error: r.error });
  }
  return { manifests, bad };
}

export interface BackupRequest {
  def: VmDef;
  paths: VmPaths;
  /** vms.backup.dir */
  root: string;
  node: string;
  storedOn: string;
  full: boolean;
  qemuVersion?: string;
  /** ms to wait for the guest agent's answer */
  agentMs?: number;
  /** vms.backup.full_every: incrementals between two full backups (absent: no limit) */
  fullEvery?: number;
}

export interface BackupResult {
  manifest: VmBackupManifest;
  plan: BackupPlan;
  ms: number;
}

export async function takeBackup(q: Qmp, r: BackupRequest): Promise<BackupResult> {
  const t0 = performance.now();
  const started = new Date();
  const id = backupId(r.def.name, started);
  const dir = join(r.root, "vm");
  const tmp = join(dir, `${id}.tmp`);
  const { manifests } = readBackups(r.root);
  const bms = await diskBitmaps(q, r.def);
  const plan = planBackup({
    wantFull: r.full, latest: latestOf(manifests, r.def.name), all: manifests, ...(r.fullEvery !== undefined ? { fullEvery: r.fullEvery } : {}),
    disks: r.def.disks.map((d) => ({ name: d.name, sizeMb: d.sizeMb, bitmaps: bms.find((b) => b.disk === d.name)?.bitmaps.map((x) => x.name) ?? [] })),
  });
  // a mirror's incremental rebuild (vm-rebuild.ts) is a backup job too: wait for it; a concluded one is no obstacle
  const running = (await q.execute<{ device: string; type: string; status: string }[]>("query-block-jobs")).filter((j) => j.type === "backup" && j.status !== "concluded");
  if (running.length) throw new DriverError("backup", `${r.def.name}: a backup job runs already (${running.map((j) => j.device).join(", ")}): try again when it is done`);
  mkdirSync(tmp, { recursive: true, mode: 0o750 });
  const added: string[] = [];
  let bitmapAdded = false;
  let frozen = false;
  try {
    for (const d of r.def.disks) {
      const file = join(tmp, `${d.name}.qcow2`);
      const args = ["create", "-q", "-f", "qcow2", "-o", `cluster_size=${GRANULARITY}`];
      if (plan.kind === "incremental") args.push("-b", `../${plan.parent}/${d.name}.qcow2`, "-F", "qcow2");
      args.push(file, `${d.sizeMb}M`);
      const c = spawnSync("qemu-img", args, { encoding: "utf8" });
      if (c.status !== 0) throw new DriverError("backup", `qemu-img ${args.join(" ")}: ${(c.stderr || String(c.error)).trim()}`);
      const node = `bk-${d.name}`;
      await q.execute("blockdev-add", { driver: "qcow2", "node-name": node, file: { driver: "file", filename: file }, backing: null });
      added.push(node);
    }
    // the guest opens its end of the agent's port only where qemu-ga runs (query-chardev frontend-open)
    const chardevs = await q.execute<{ label: string; "frontend-open": boolean }[]>("query-chardev");
    const consistency = chardevs.find((c) => c.label === "qga0")?.["frontend-open"]
      ? await freeze(r.paths.qga, r.agentMs ?? 3000)
      : { frozen: false, why: "no guest agent: the guest has not opened its guest agent port (crash-consistent: as after a power cut)" };
    frozen = consistency.frozen;
    const actions: unknown[] = [];
    for (const d of r.def.disks) {
      const n = nodeNames(d.name);
      actions.push({ type: "block-dirty-bitmap-add", data: { node: n.file, name: backupBitmap(id), granularity: GRANULARITY, persistent: false } });
      actions.push({
        type: "blockdev-backup",
        data: {
          "job-id": `backup-${d.name}`, device: n.file, target: `bk-${d.name}`, sync: plan.kind,
          ...(plan.kind === "incremental" ? { bitmap: backupBitmap(plan.parent), "bitmap-mode": "on-success" } : {}),
          "auto-finalize": true, "auto-dismiss": false,
        },
      });
    }
    try {
      await q.execute("transaction", { actions }, 30_000);
      bitmapAdded = true;
    } finally {
      if (frozen) await thaw(r.paths.qga).catch(() => undefined);
    }
    const bytes = await waitJobs(q, r.def.disks.map((d) => `backup-${d.name}`));
    // the job holds what the parent's bitmap listed: that bitmap has served (see the header)
    for (const d of r.def.disks) {
      const f = nodeNames(d.name).file;
      const drop = (await diskBitmaps(q, r.def)).find((x) => x.disk === d.name)!.bitmaps.filter((b) => b.name.startsWith("bollard-bk.") && b.name !== backupBitmap(id));
      for (const b of drop) await q.execute("block-dirty-bitmap-remove", { node: f, name: b.name });
    }
    for (const n of added.splice(0)) await q.execute("blockdev-del", { "node-name": n });
    const disks = r.def.disks.map((d) => ({ name: d.name, file: `${d.name}.qcow2`, sizeMb: d.sizeMb, bytes: bytes[`backup-${d.name}`] ?? 0 }));
    // each image's sha256 (SHA256SUMS, as the MySQL/Redis backups): a verification finds a bit
    // flipped on the target since, before it reads anything else
    await writeSums(tmp);
    const manifest: VmBackupManifest = {
      id, kind: "vm", name: r.def.name, node: r.node, storedOn: r.storedOn, startedAt: started.toISOString(), finishedAt: new Date().toISOString(),
      bytes: disks.reduce((a, d) => a + d.bytes, 0), parent: plan.kind === "incremental" ? plan.parent : null, state: "complete",
      detail: { disks, consistency: consistency.frozen ? "guest-frozen" : "crash-consistent", consistencyWhy: consistency.why, ...(r.qemuVersion ? { qemu: r.qemuVersion } : {}), sums: SUMS },
    };
    writeDurable(join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    for (const d of disks) syncFile(join(tmp, d.file));
    renameSync(tmp, join(dir, id));
    syncFile(dir);
    return { manifest, plan, ms: Math.round(performance.now() - t0) };
  } catch (e) {
    if (bitmapAdded) {
      // no backup `id` in the target: its bitmap must not anchor the next incremental
      for (const d of r.def.disks) await q.execute("block-dirty-bitmap-remove", { node: nodeNames(d.name).file, name: backupBitmap(id) }).catch(() => undefined);
    }
    for (const d of r.def.disks) await q.execute("job-dismiss", { id: `backup-${d.name}` }).catch(() => undefined);
    for (const n of added) await q.execute("blockdev-del", { "node-name": n }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof DriverError ? e : new DriverError("backup", `${r.def.name}: ${(e as Error).message}`, e);
  }
}

/** Waits for the backup jobs to conclude; their bytes copied, or throws with the first error. */
async function waitJobs(q: Qmp, ids: string[]): Promise<Record<string, number>> {
  for (;;) {
    const js = (await q.execute<{ device: string; status: string; len: number; offset: number; error?: string }[]>("query-block-jobs")).filter((j) => ids.includes(j.device));
    const bad = js.find((j) => j.error);
    if (bad) throw new DriverError("backup", `backup job ${bad.device} failed: ${bad.error}`);
    if (js.length === ids.length && js.every((j) => j.status === "concluded")) {
      for (const j of js) await q.execute("job-dismiss", { id: j.device });
      return Object.fromEntries(js.map((j) => [j.device, j.len]));
    }
    if (js.length < ids.length) throw new DriverError("backup", `backup jobs gone: ${ids.filter((i) => !js.some((j) => j.device === i)).join(", ")}`);
    await sleep(50);
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, "r");
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

function writeDurable(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o640 });
  syncFile(path);
}

/** One request on the guest agent's channel (qemu-ga's JSON protocol), or null after `ms`. */
function qga(sock: string, cmd: string, ms: number): Promise<unknown | null> {
  return new Promise((resolve) => {
    if (!existsSync(sock)) return resolve(null);
    const s = connect(sock);
    let buf = "";
    const done = (v: unknown | null) => { clearTimeout(t); s.destroy(); resolve(v); };
    const t = setTimeout(() => done(null), ms);
    s.on("error", () => done(null));
    // guest-sync-delimited first: a 0xFF byte resets the guest's parser, the reply carries our id
    s.on("connect", () => s.write(`\xff{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n{"execute":"${cmd}"}\n`));
    s.on("data", (d) => {
      buf += d.toString("latin1").replace(/\xff/g, "");
      const lines = buf.split("\n").filter((l) => l.trim());
      const replies = lines.map((l) => { try { return JSON.parse(l) as { return?: unknown; error?: { desc?: string } }; } catch { return null; } }).filter((x) => x);
      if (replies.length >= 2) done(replies[1]);
    });
  });
}

/** fsfreeze through the guest agent, where the guest has one. */
async function freeze(sock: string, ms: number): Promise<{ frozen: boolean; why: string }> {
  const r = (await qga(sock, "guest-fsfreeze-freeze", ms)) as { return?: number; error?: { desc?: string } } | null;
  if (!r) return { frozen: false, why: "no guest agent answered (crash-consistent: as after a power cut)" };
  if (r.error) return { frozen: false, why: `the guest agent refused fsfreeze: ${r.error.desc ?? "?"} (crash-consistent)` };
  return { frozen: true, why: `guest agent froze ${r.return ?? "?"} filesystems` };
}

async function thaw(sock: string): Promise<void> {
  await qga(sock, "guest-fsfreeze-thaw", 5000);
}

/**
 * Restores the chain ending at `top` into raw disk files: `qemu-img convert` of the top images
 * (it reads the backing chain), to <dest>.new, fsync'd, then renamed over <dest>.
 */
export function restoreDisks(root: string, top: VmBackupManifest, dest: (disk: string) => string): { ms: number; bytes: number } {
  const t0 = performance.now();
  let bytes = 0;
  for (const d of top.detail.disks) {
    const src = join(root, "vm", top.id, d.file);
    const out = dest(d.name);
    const c = spawnSync("qemu-img", ["convert", "-q", "-f", "qcow2", "-O", "raw", src, `${out}.new`], { encoding: "utf8" });
    if (c.status !== 0) { rmSync(`${out}.new`, { force: true }); throw new DriverError("restore", `qemu-img convert ${src}: ${(c.stderr || String(c.error)).trim()}`); }
    syncFile(`${out}.new`);
    renameSync(`${out}.new`, out);
    bytes += statSync(out).size;
  }
  return { ms: Math.round(performance.now() - t0), bytes };
}
