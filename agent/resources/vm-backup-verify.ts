// A VM backup's verification (issue 23 item 6, as Proxmox Backup Server's verify jobs): the
// backup's chain read back whole, off the VM's path (it needs no QEMU, only the files):
//   1. the chain (resources/vm-backup-manifest.ts restoreChain): every link there, none bad;
//   2. each link's checksums (SHA256SUMS, written when it was taken: backup/sums.ts checkSums),
//      where it has them (backups taken before they were recorded say so and go on);
//   3. `qemu-img check` of each link's image of each disk (qcow2 metadata: refcounts, L1/L2
//      tables; leaked clusters are harmless and only noted, corruptions fail it);
//   4. the chain restored to a scratch raw file per disk (`qemu-img convert`, which reads the
//      backing chain, as `bollard vm restore` does), whose size must be the disk's.
// The verdict goes into the manifest (backup/manifest.ts setState: "verified", or "bad" with why,
// which `bollard backup list` shows and `vm restore` and the next incremental backup refuse). A
// link found bad is marked bad itself, and so is the backup verified through it. Runs with async
// child processes: the agent's loop goes on meanwhile.
import { execFile } from "node:child_process";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { setState } from "../backup/manifest.ts";
import { checkSums } from "../backup/sums.ts";
import { restoreChain, type VmBackupManifest } from "./vm-backup-manifest.ts";

const run = promisify(execFile);

export interface VerifyResult {
  id: string;
  ok: boolean;
  error: string | null;
  /** what was checked, in order */
  steps: string[];
  /** other links marked bad (a parent whose files changed) */
  alsoBad: string[];
  ms: number;
}

async function qemuImg(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run("qemu-img", args, { maxBuffer: 4 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    // not started at all (no qemu-img: ENOENT): no word on the backup, the caller is told
    if (typeof x.code !== "number") throw new Error(`qemu-img ${args[0]}: ${x.message}`);
    return { code: x.code, out: x.stdout ?? "", err: (x.stderr || x.message).trim() };
  }
}

/** Verifies backup `id` under `root` (vms.backup.dir) and writes the verdict into its manifest
 *  (and into a bad link's). `scratch`: a directory of this node's for the restored raw files. */
export async function verifyVmBackup(root: string, manifests: readonly VmBackupManifest[], id: string, scratch: string, now: () => number = Date.now): Promise<VerifyResult> {
  const t0 = performance.now();
  const steps: string[] = [];
  const alsoBad: string[] = [];
  const dirOf = (m: VmBackupManifest) => join(root, "vm", m.id);
  const check = async (): Promise<string | null> => {
    const ch = restoreChain(manifests, id);
    if (!ch.ok) return ch.error;
    steps.push(`chain: ${ch.chain.map((m) => m.id).join(" <- ")}`);
    for (const m of ch.chain) {
      if (!m.detail.sums) { steps.push(`${m.id}: no checksums recorded (taken before they were)`); continue; }
      const bad = await checkSums(dirOf(m));
      if (bad) { if (m.id !== id) alsoBad.push(m.id); return `${m.id}: ${bad}`; }
      steps.push(`${m.id}: checksums of ${m.detail.disks.length} image(s) match`);
    }
    for (const m of ch.chain) {
      for (const d of m.detail.disks) {
        const r = await qemuImg(["check", "-q", "-f", "qcow2", "--output=json", join(dirOf(m), d.file)]);
        // qemu-img(1): 0 consistent, 1 check not completed, 2 corrupted, 3 leaked clusters only
        if (r.code !== 0 && r.code !== 3) { if (m.id !== id) alsoBad.push(m.id); return `${m.id}/${d.file}: qemu-img check exit ${r.code}: ${(r.err || r.out).replace(/\s+/g, " ").slice(0, 200)}`; }
        steps.push(`${m.id}/${d.file}: qemu-img check ${r.code === 3 ? "leaked clusters only (harmless)" : "clean"}`);
      }
    }
    const top = ch.chain.at(-1)!;
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch, { recursive: true, mode: 0o700 });
    try {
      for (const d of top.detail.disks) {
        const out = join(scratch, `${d.name}.raw`);
        const r = await qemuImg(["convert", "-q", "-f", "qcow2", "-O", "raw", join(dirOf(top), d.file), out]);
        if (r.code !== 0) return `restoring ${d.name} (qemu-img convert): ${r.err.slice(0, 200)}`;
        const size = (await stat(out)).size;
        if (size !== d.sizeMb * 1024 * 1024) return `restored ${d.name} is ${size} bytes, not its ${d.sizeMb} MB`;
        steps.push(`${d.name}: restored through the chain to ${size} bytes`);
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    return null;
  };
  let error: string | null;
  let judged = true;
  try {
    error = await check();
  } catch (e) {
    // this node could not look (a file system error, no qemu-img): no verdict on the backup
    error = `verification could not run: ${(e as Error).message}`;
    judged = false;
  }
  const ms = Math.round(performance.now() - t0);
  const at = new Date(now()).toISOString();
  const me = manifests.find((m) => m.id === id);
  if (!judged) return { id, ok: false, error, steps, alsoBad: [], ms };
  if (me) await setState(dirOf(me), error ? "bad" : "verified", { verify: { at, ok: !error, error, ms, steps } });
  for (const p of alsoBad) {
    const m = manifests.find((x) => x.id === p)!;
    await setState(dirOf(m), "bad", { verify: { at, ok: false, error: `found bad verifying ${id}: ${error}`, ms, steps } });
  }
  return { id, ok: !error, error, steps, alsoBad, ms };
}
