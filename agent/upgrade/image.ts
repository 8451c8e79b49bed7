// `bollard upgrade IMAGE --this-node`: the A/B image upgrade of this node (docs/upgrade.md
// "Image upgrade"). The decisions are in image-plan.ts; here the I/O, in this order, each step
// logged with its time, and nothing the loader would boot touched before the last one:
//   check   the file is a bollard image of this layout, of the size its GPT says; its checksums
//           (ESP bollard/a/SHA256SUMS, written by image/build.sh) read
//   plan    the running slot (kernel command line), the ESP's entries and default
//   root    the image's root partition written into the other slot's partition, synced, the
//           buffers dropped, read back: its sha256 must be the image's
//   esp     the image's kernel and initrd (checked) to bollard/<slot>/, the slot's old entry
//           removed, the new one written with its boot counter (+3)
//   trial   image-trial.json in the state directory (the gate's deadline, the alarms before);
//           bootctl set-oneshot ENTRY; reboot
// Refusals exit 2 and write nothing; a failure after the root was written leaves the slot
// unbootable by nothing (no entry points at it) and exits 1.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Io } from "../cli/types.ts";
import { readGpt } from "../provision/gpt.ts";
import { controlRequest } from "../runtime/control.ts";
import { baselineIds } from "./gate.ts";
import { LAYOUT, LOADER_GUID, SLOTS, checkImage, efiString, entryVersion, loaderDefault, parseSums, planImage, type ImageTrial, type Layout } from "./image-plan.ts";

let bootIdRead: string | null | undefined;
/** The kernel's ID of this boot (a new one at every boot), or null where it cannot be read. Read
 *  once: it does not change while this process runs, and the image state asks every 5 s. */
export function bootId(): string | null {
  if (bootIdRead !== undefined) return bootIdRead;
  try {
    bootIdRead = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    bootIdRead = null;
  }
  return bootIdRead;
}

/** The ids of the alarms active or pending on the agent behind `socket` (none if it does not answer). */
export async function alarmBaseline(socket: string): Promise<string[]> {
  const r = await controlRequest(socket, "GET", "/alarms", undefined, 5000).catch(() => null);
  return baselineIds(r?.body);
}

export const ESP_DIR = "/boot/efi";
const CHUNK = 4 << 20;

export class ImageRefusal extends Error {}

const mtoolsEnv = { ...process.env, MTOOLS_SKIP_CHECK: "1" };

/** A file of the image's ESP (FAT at `offset` in the image), with mtools: no mount. */
function espFile(image: string, offset: number, path: string, to?: string): Buffer {
  const r = to
    ? spawnSync("mcopy", ["-n", "-o", "-i", `${image}@@${offset}`, `::/${path}`, to], { env: mtoolsEnv })
    : spawnSync("mtype", ["-i", `${image}@@${offset}`, `::/${path}`], { env: mtoolsEnv, maxBuffer: 1 << 20 });
  if (r.error) throw new ImageRefusal(`cannot read the image's ESP: ${r.error.message} (mtools)`);
  if (r.status !== 0) throw new ImageRefusal(`the image's ESP has no ${path}: ${String(r.stderr).trim().slice(0, 200)}`);
  return to ? readFileSync(to) : (r.stdout as Buffer);
}

export interface InspectedImage {
  version: string;
  /** the kernel command line of the image's own entry (its root is put right by the plan) */
  options: string;
  root: { offset: number; bytes: number };
  esp: { offset: number };
  sums: Map<string, string>;
}

/** Whether `path` is a bollard image this node can take; its version, partitions and checksums. */
export function inspectImage(path: string, l: Layout = LAYOUT): InspectedImage {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new ImageRefusal(`${path}: ${(e as Error).message}`);
  }
  try {
    const size = statSync(path).size;
    const read = (pos: number, len: number) => {
      const b = Buffer.alloc(len);
      const n = readSync(fd, b, 0, len, pos);
      return b.subarray(0, n);
    };
    let gpt;
    try {
      gpt = readGpt(read);
    } catch (e) {
      throw new ImageRefusal(`not a bollard node image: ${(e as Error).message}`);
    }
    const c = checkImage(gpt.partitions, gpt.lastUsableLba, size, l);
    if (!c.ok) throw new ImageRefusal(c.error);
    const sums = parseSums(espFile(path, c.esp.offset, "bollard/a/SHA256SUMS").toString("utf8"));
    if (!sums.ok) throw new ImageRefusal(`the image's ${sums.error} (built by an image/build.sh without checksums?)`);
    const entry = espFile(path, c.esp.offset, "loader/entries/bollard-a.conf").toString("utf8");
    const version = entryVersion(entry);
    const options = /^options\s+(.*\S)\s*$/m.exec(entry)?.[1];
    if (!version || !options) throw new ImageRefusal("the image's loader entry bollard-a.conf names no version or no options");
    return { version, options, root: c.root, esp: c.esp, sums: sums.sums };
  } finally {
    closeSync(fd);
  }
}

/** sha256 of `bytes` of `fd` from `offset`, in 4 MiB reads; `each` sees every piece. */
export function hashRange(fd: number, offset: number, bytes: number, each?: (b: Buffer, at: number) => void): string {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let done = 0; done < bytes;) {
    const n = readSync(fd, buf, 0, Math.min(CHUNK, bytes - done), offset + done);
    if (n <= 0) throw new Error(`short read at ${offset + done}`);
    const piece = buf.subarray(0, n);
    h.update(piece);
    each?.(piece, done);
    done += n;
  }
  return h.digest("hex");
}

/**
 * The image's root partition onto `device`, then read back: the sha256 read back must be the
 * image's (SHA256SUMS). On a mismatch the image's own bytes are hashed too, to say which side
 * is wrong. `device` opened O_EXCL: the kernel refuses one that is mounted.
 */
export function writeRoot(image: string, img: InspectedImage, device: string, say: (s: string) => void): { writeMs: number; verifyMs: number } {
  const want = img.sums.get("root.part")!;
  const src = openSync(image, "r");
  const isFile = existsSync(device) && statSync(device).isFile();
  const dst = openSync(device, isFile ? constants.O_WRONLY : constants.O_WRONLY | constants.O_EXCL);
  const t0 = Date.now();
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let done = 0; done < img.root.bytes;) {
      const n = readSync(src, buf, 0, Math.min(CHUNK, img.root.bytes - done), img.root.offset + done);
      if (n <= 0) throw new Error(`${image}: short read at ${img.root.offset + done}`);
      for (let w = 0; w < n;) w += writeSync(dst, buf, w, n - w, done + w);
      done += n;
    }
    fsyncSync(dst);
  } finally {
    closeSync(dst);
  }
  const writeMs = Date.now() - t0;
  say(`root: ${img.root.bytes / 2 ** 20} MiB written in ${(writeMs / 1000).toFixed(1)} s; reading back`);
  if (!isFile) spawnSync("blockdev", ["--flushbufs", device], { stdio: "ignore" });
  const t1 = Date.now();
  const back = openSync(device, "r");
  let got: string;
  try {
    got = hashRange(back, 0, img.root.bytes);
  } finally {
    closeSync(back);
  }
  if (got !== want) {
    const source = hashRange(src, img.root.offset, img.root.bytes);
    closeSync(src);
    throw new ImageRefusal(source === want
      ? `the root slot ${device} read back with sha256 ${got.slice(0, 16)}..., not what was written (${want.slice(0, 16)}...): a bad disk?`
      : `bad checksum: the image's root partition has sha256 ${source.slice(0, 16)}..., its SHA256SUMS says ${want.slice(0, 16)}... (a damaged or altered image)`);
  }
  closeSync(src);
  return { writeMs, verifyMs: Date.now() - t1 };
}

/** Mounts the ESP (its fstab line, noauto) unless mounted. */
export function mountEsp(): void {
  if (existsSync(join(ESP_DIR, "loader"))) return;
  if (!existsSync(ESP_DIR)) mkdirSync(ESP_DIR, { recursive: true }); // an image built before /boot/efi was in it
  const r = spawnSync("mount", [ESP_DIR], { encoding: "utf8" });
  if (r.status !== 0 || !existsSync(join(ESP_DIR, "loader"))) throw new Error(`cannot mount the ESP on ${ESP_DIR}: ${(r.stderr ?? "").trim()}`);
}

/** The loader's default entry: LoaderEntryDefault (bootctl set-default) over loader.conf. */
export function currentDefault(): string | null {
  try {
    const v = efiString(readFileSync(`/sys/firmware/efi/efivars/LoaderEntryDefault-${LOADER_GUID}`));
    if (v) return v;
  } catch { /* not set */ }
  try {
    return loaderDefault(readFileSync(join(ESP_DIR, "loader/loader.conf"), "utf8"));
  } catch {
    return null;
  }
}

/** Writes a file on the ESP (FAT): a temporary name, fsync, rename. */
function espWrite(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export interface ImageUpgradeOptions {
  deadlineMs: number;
  reboot: boolean;
  tries?: number;
  socket?: string;
  /** the root sha256 the rollout offered: this node's copy of the image must be that one */
  sha?: string;
  /** the rollout drained this node: its gate takes maintenance off once it passes */
  undrain?: boolean;
}

export async function imageUpgrade(path: string, o: ImageUpgradeOptions, stateDir: string, io: Io): Promise<number> {
  const t0 = Date.now();
  const say = (s: string) => io.out(`${new Date().toISOString().slice(11, 23)} ${s}`);
  let img: InspectedImage;
  try {
    img = inspectImage(path);
  } catch (e) {
    if (!(e instanceof ImageRefusal)) throw e;
    io.err(`bollard: refused: ${path}: ${e.message}`);
    return 2;
  }
  if (o.sha && img.sums.get("root.part") !== o.sha) {
    io.err(`bollard: refused: ${path} is not the image offered: its root is ${img.sums.get("root.part")!.slice(0, 12)}, the rollout's ${o.sha.slice(0, 12)}`);
    return 2;
  }
  say(`image ${img.version}: a bollard node image; root ${img.root.bytes / 2 ** 20} MiB, sha256 ${img.sums.get("root.part")!.slice(0, 12)}`);
  let plan;
  try {
    mountEsp();
    const entries = readdirSync(join(ESP_DIR, "loader/entries"));
    const p = planImage({ cmdline: readFileSync("/proc/cmdline", "utf8"), slots: SLOTS, entries, defaultId: currentDefault(), version: img.version, tries: o.tries ?? 3, options: img.options });
    if (!p.ok) {
      io.err(`bollard: refused: ${p.error}`);
      return 2;
    }
    plan = p.plan;
  } catch (e) {
    io.err(`bollard: refused: ${(e as Error).message}`);
    return 2;
  }
  const device = `/dev/disk/by-partuuid/${SLOTS[plan.to]}`;
  say(`running root slot ${plan.from.toUpperCase()}: writing slot ${plan.to.toUpperCase()} (${device})`);
  try {
    const w = writeRoot(path, img, device, say);
    say(`root: read back in ${(w.verifyMs / 1000).toFixed(1)} s, sha256 as the image's`);
    // the kernel and initrd, checked against the image's checksums before they go on the ESP
    const dir = join(ESP_DIR, plan.espDir);
    mkdirSync(dir, { recursive: true });
    for (const f of ["vmlinuz", "initrd.img"]) {
      const tmp = join(stateDir, `.image-${f}`);
      const data = espFile(path, img.esp.offset, `bollard/a/${f}`, tmp);
      rmSync(tmp, { force: true });
      const sha = createHash("sha256").update(data).digest("hex");
      if (sha !== img.sums.get(f)) throw new ImageRefusal(`bad checksum: the image's ${f} has sha256 ${sha.slice(0, 16)}..., its SHA256SUMS says ${img.sums.get(f)!.slice(0, 16)}...`);
      espWrite(join(dir, f), data);
    }
    for (const f of plan.remove) rmSync(join(ESP_DIR, "loader/entries", f), { force: true });
    espWrite(join(ESP_DIR, "loader/entries", plan.entryFile), plan.entryText);
    say(`esp: kernel and initrd in /${plan.espDir}, entry ${plan.entryFile} (${o.tries ?? 3} tries)`);
    // the alarms active or pending (raise_after) now, just before the reboot: the gate in the new
    // root counts only others. Read at the start instead (before the minutes of writing the root),
    // an alarm raised meanwhile, such as a lone node's not-ready, came back with the new root's
    // agent (restored from history) as "new" and failed a good image's gate (image test v2).
    const baseline = o.socket ? await alarmBaseline(o.socket) : [];
    const boot = bootId();
    const trial: ImageTrial = { version: img.version, from: plan.from, to: plan.to, entryId: plan.entryId, deadlineMs: o.deadlineMs, baseline, at: Date.now(), ...(o.undrain ? { undrain: true } : {}), ...(boot ? { bootId: boot } : {}) };
    writeFileSync(join(stateDir, "image-trial.json.tmp"), `${JSON.stringify(trial)}\n`);
    renameSync(join(stateDir, "image-trial.json.tmp"), join(stateDir, "image-trial.json"));
    // a rolled-out bundle belongs to the root it was installed on (agent-exec): the new root runs its own
    writeFileSync(join(stateDir, "bundles-root"), `${SLOTS[plan.from]}\n`);
    const bc = spawnSync("bootctl", ["set-oneshot", plan.entryGlob], { encoding: "utf8" });
    if (bc.status !== 0) throw new Error(`bootctl set-oneshot ${plan.entryGlob}: ${(bc.stderr ?? bc.error?.message ?? "").trim()}`);
    spawnSync("sync");
  } catch (e) {
    io.err(`bollard: ${e instanceof ImageRefusal ? "refused" : "failed"}: ${(e as Error).message}; slot ${plan.to.toUpperCase()} is not booted (no entry set for it)`);
    rmSync(join(ESP_DIR, "loader/entries", plan.entryFile), { force: true });
    return e instanceof ImageRefusal ? 2 : 1;
  }
  say(`image ${img.version} in slot ${plan.to.toUpperCase()}, booted once next (bootctl set-oneshot ${plan.entryGlob}); prepared in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (!o.reboot) {
    say("not rebooting (--no-reboot): 'systemctl reboot' boots it; the health gate there decides");
    return 0;
  }
  say("rebooting: the health gate in the new root blesses it, or the old root comes back");
  spawnSync("systemctl", ["reboot"], { stdio: "inherit" });
  return 0;
}
