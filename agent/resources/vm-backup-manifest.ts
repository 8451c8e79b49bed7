// VM backups' manifests and the decisions about them (issue 23 §5): pure. The JSON shape is the
// one agent/backup/manifest.ts writes for MySQL and Redis (branch `backup`): a backup is a
// directory <target>/vm/<id>/ with manifest.json; <id>.tmp while it is written, renamed when
// complete, so that a half backup never looks complete (issue 23 §7).
//   {id, kind: "vm", name, node, storedOn, startedAt, finishedAt, bytes, parent, state, detail}
//   detail: {disks: [{name, file, sizeMb, bytes}], consistency, consistencyWhy, qemu}
// A full backup's images are standalone qcow2 files; an incremental one's hold the blocks written
// since its parent, with the parent's image as their qcow2 backing file (QEMU's bitmaps.rst).

import type { Manifest } from "../backup/manifest.ts";

export type BackupState = "complete" | "verified" | "bad";

export interface VmBackupDisk {
  name: string;
  /** the image, relative to the backup's directory */
  file: string;
  sizeMb: number;
  /** bytes the backup job copied */
  bytes: number;
}

export interface VmBackupManifest {
  id: string;
  kind: "vm";
  name: string;
  node: string;
  storedOn: string;
  startedAt: string;
  finishedAt: string;
  bytes: number;
  parent: string | null;
  state: BackupState;
  detail: {
    disks: VmBackupDisk[]; consistency: "guest-frozen" | "crash-consistent"; consistencyWhy: string; qemu?: string;
    /** "SHA256SUMS": the backup's directory holds sha256sum(1) lines of its images (backup/sums.ts) */
    sums?: string;
    /** a verification's verdict (agent/resources/vm-backup-verify.ts) */
    verify?: { at: string; ok: boolean; error: string | null; ms: number; steps: string[] };
  };
}

/** A VM manifest is one of the catalog's (agent/backup/manifest.ts, the same JSON): the typed
 *  view the shared retention, schedule and verification decisions (agent/backup/) take. */
export const asCatalog = (m: VmBackupManifest): Manifest => m;

const ID = /^[a-z0-9][a-z0-9._-]{0,120}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** A manifest read from disk: the typed value, or what is wrong with it (naming the field). */
export function parseManifest(text: string, dirId?: string): { ok: true; m: VmBackupManifest } | { ok: false; error: string } {
  let j: unknown;
  try { j = JSON.parse(text); } catch (e) { return { ok: false, error: `not JSON: ${(e as Error).message}` }; }
  if (!j || typeof j !== "object" || Array.isArray(j)) return { ok: false, error: "not an object" };
  const o = j as Record<string, unknown>;
  const str = (k: string, re?: RegExp) => typeof o[k] === "string" && (!re || re.test(o[k] as string));
  if (!str("id", ID)) return { ok: false, error: "id: expected a backup id" };
  if (dirId !== undefined && o.id !== dirId) return { ok: false, error: `id: ${JSON.stringify(o.id)} is not its directory's name ${dirId}` };
  if (o.kind !== "vm") return { ok: false, error: `kind: expected "vm", got ${JSON.stringify(o.kind)}` };
  for (const k of ["name", "node", "storedOn"]) if (!str(k) || !(o[k] as string).length) return { ok: false, error: `${k}: expected a name` };
  for (const k of ["startedAt", "finishedAt"]) if (!str(k, ISO)) return { ok: false, error: `${k}: expected an ISO time (UTC)` };
  if (typeof o.bytes !== "number" || !Number.isInteger(o.bytes) || o.bytes < 0) return { ok: false, error: "bytes: expected a whole number >= 0" };
  if (o.parent !== null && !str("parent", ID)) return { ok: false, error: "parent: expected a backup id or null" };
  if (!["complete", "verified", "bad"].includes(o.state as string)) return { ok: false, error: `state: expected complete, verified or bad, got ${JSON.stringify(o.state)}` };
  const d = o.detail as Record<string, unknown> | undefined;
  if (!d || typeof d !== "object") return { ok: false, error: "detail: expected an object" };
  if (d.consistency !== "guest-frozen" && d.consistency !== "crash-consistent") return { ok: false, error: "detail.consistency: expected guest-frozen or crash-consistent" };
  if (!Array.isArray(d.disks) || !d.disks.length) return { ok: false, error: "detail.disks: expected a list of disks" };
  for (const [i, x] of (d.disks as unknown[]).entries()) {
    const k = x as Record<string, unknown>;
    if (!k || typeof k.name !== "string" || typeof k.file !== "string" || k.file.includes("/") || typeof k.sizeMb !== "number" || typeof k.bytes !== "number") return { ok: false, error: `detail.disks[${i}]: expected {name, file (in the backup's directory), sizeMb, bytes}` };
  }
  return { ok: true, m: j as VmBackupManifest };
}

export type BackupPlan = { kind: "full"; why: string } | { kind: "incremental"; parent: string; why: string };

/** The bitmap that tracks writes since backup `id` (on each disk's file node). */
export const backupBitmap = (id: string) => `bollard-bk.${id}`;

/**
 * Full or incremental: incremental only on top of the VM's latest good backup, when the running
 * QEMU has that backup's bitmap on every disk (it started with that backup and has recorded every
 * write since), and the disks are the same.
 */
export function planBackup(o: {
  wantFull: boolean; latest: VmBackupManifest | null; disks: readonly { name: string; sizeMb: number; bitmaps: readonly string[] }[];
  /** vms.backup.full_every: incrementals between two full backups (absent: no limit) */
  fullEvery?: number;
  /** the target's manifests: the latest's chain is checked (every link there and good) and counted */
  all?: readonly VmBackupManifest[];
}): BackupPlan {
  if (o.wantFull) return { kind: "full", why: "asked for (--full)" };
  const l = o.latest;
  if (!l) return { kind: "full", why: "no earlier backup of this VM in the target" };
  if (l.state === "bad") return { kind: "full", why: `its latest backup ${l.id} is bad` };
  if (o.fullEvery !== undefined && o.fullEvery <= 0) return { kind: "full", why: "every backup full (vms.backup.full_every: 0)" };
  if (o.all) {
    const ch = restoreChain(o.all, l.id);
    if (!ch.ok) return { kind: "full", why: `its latest backup cannot be built on: ${ch.error}` };
    const depth = ch.chain.length - 1;
    if (o.fullEvery !== undefined && depth >= o.fullEvery) return { kind: "full", why: `${l.id} ends a chain of ${depth} incremental(s) (vms.backup.full_every: ${o.fullEvery})` };
  }
  const same = l.detail.disks.length === o.disks.length && o.disks.every((d) => l.detail.disks.some((x) => x.name === d.name && x.sizeMb === d.sizeMb));
  if (!same) return { kind: "full", why: `its disks changed since ${l.id}` };
  const missing = o.disks.find((d) => !d.bitmaps.includes(backupBitmap(l.id)));
  if (missing) return { kind: "full", why: `no dirty bitmap on ${missing.name} since ${l.id} (its QEMU started after it, or that backup was taken elsewhere)` };
  return { kind: "incremental", parent: l.id, why: `the blocks written since ${l.id}` };
}

/** The VM's latest backup by start time (bad ones included: planBackup judges). */
export function latestOf(ms: readonly VmBackupManifest[], vm: string): VmBackupManifest | null {
  const mine = ms.filter((m) => m.name === vm).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  return mine.at(-1) ?? null;
}

/**
 * The chain a restore of `id` reads, full backup first: every link present, not bad, of the same
 * VM. An error names the link that breaks it.
 */
export function restoreChain(ms: readonly VmBackupManifest[], id: string): { ok: true; chain: VmBackupManifest[] } | { ok: false; error: string } {
  const by = new Map(ms.map((m) => [m.id, m]));
  const chain: VmBackupManifest[] = [];
  const vm = by.get(id)?.name;
  let cur: string | null = id;
  while (cur !== null) {
    const m = by.get(cur);
    if (!m) return { ok: false, error: cur === id ? `no backup ${id} (known: ${[...by.keys()].sort().join(", ") || "none"})` : `backup ${id} needs ${cur}, which is not there: the chain is broken` };
    if (m.state === "bad") return { ok: false, error: `backup ${m.id}${m.id === id ? "" : ` (in the chain of ${id})`} is marked bad` };
    if (m.name !== vm) return { ok: false, error: `backup ${m.id} is of ${m.name}, not of ${vm}` };
    if (chain.some((x) => x.id === m.id)) return { ok: false, error: `backup ${id}'s chain loops at ${m.id}` };
    chain.unshift(m);
    cur = m.parent;
  }
  return { ok: true, chain };
}

/** A backup id: the VM's name and the UTC start time, to the millisecond (sorts by time). */
export function backupId(vm: string, at: Date): string {
  return `${vm}-${at.toISOString().replace(/[-:]/g, "").replace(".", "")}`.toLowerCase();
}
