// `bollard flash IMAGE DEVICE --seed FILE`: writes the node image onto a disk, verifies it by
// reading it back against IMAGE.sha256, then writes the node's seed onto the disk's
// BOLLARD-SEED partition, found in the GPT just written, with mtools (no mount).
// It refuses, each with its reason: a device that is mounted or in use (itself or any of its
// partitions or holders), the disk under the running root file system, a partition instead of
// a disk, a disk smaller than the image or with 4096-byte sectors, a missing or invalid seed.
// A file as DEVICE only with --allow-file (tests, or preparing a VM disk).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync, writeSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import type { CommandContext, SubCommand } from "../cli/types.ts";
import { Progress } from "./flash-progress.ts";
import { findPartition, readGpt } from "./gpt.ts";
import { SEED_FILE_NAME, describeSeed, readSeed, seedErrors } from "./seed.ts";

export const SEED_PARTLABEL = "BOLLARD-SEED";
const CHUNK = 4 << 20;

/** What the checks need to know about the machine: /proc and /sys, behind one port. */
export interface SysView {
  mounts(): string;
  swaps(): string;
  /** kernel name (sda, nvme0n1p2, dm-0) of a block device node, null if `path` is not one */
  blockName(path: string): string | null;
  /** partition kernel names of a disk */
  partitions(disk: string): string[];
  /** the disk of a partition, null for a whole disk */
  parentDisk(name: string): string | null;
  /** devices built on top of this one (device-mapper, md), by kernel name */
  holders(name: string): string[];
  /** devices this one is built on (dm/md slaves), by kernel name */
  slaves(name: string): string[];
  sizeBytes(name: string): number;
  logicalSectorSize(name: string): number;
  /** kernel name of the device holding "/" (through stat(2)'s st_dev), null if not a block device */
  rootDevice(): string | null;
}

export class Refusal extends Error {}

/** The whole disks under a device (a partition's disk; a dm/md device's disks, recursively). */
export function disksUnder(sys: SysView, name: string, seen = new Set<string>()): string[] {
  if (seen.has(name)) return [];
  seen.add(name);
  const parent = sys.parentDisk(name);
  if (parent) return disksUnder(sys, parent, seen);
  const slaves = sys.slaves(name);
  if (slaves.length) return [...new Set(slaves.flatMap((s) => disksUnder(sys, s, seen)))];
  return [name];
}

/** Refuses a block device that is mounted, swap, in use by dm/md, or the running root's disk. */
export function checkDevice(sys: SysView, device: string, imageBytes: number): { name: string; size: number } {
  const name = sys.blockName(device);
  if (!name) throw new Refusal(`${device} is not a block device (give the whole disk, e.g. /dev/sdb)`);
  const parent = sys.parentDisk(name);
  if (parent) throw new Refusal(`${device} is a partition of /dev/${parent}: give the whole disk (/dev/${parent}), the image holds its own partition table`);
  const family = new Set([name, ...sys.partitions(name)]);
  const inUse: string[] = [];
  for (const line of sys.mounts().split("\n")) {
    const [src, target] = line.split(" ");
    if (!src?.startsWith("/dev/")) continue;
    const n = sys.blockName(src);
    if (n && family.has(n)) inUse.push(`${src} is mounted on ${target!.replace(/\\040/g, " ")}`);
  }
  for (const line of sys.swaps().split("\n").slice(1)) {
    const src = line.split(/\s+/)[0];
    const n = src ? sys.blockName(src) : null;
    if (n && family.has(n)) inUse.push(`${src} is in use as swap`);
  }
  for (const m of family) for (const h of sys.holders(m)) inUse.push(`/dev/${m} is in use by /dev/${h} (device-mapper, RAID or LVM)`);
  const root = sys.rootDevice();
  if (root && disksUnder(sys, root).includes(name)) {
    throw new Refusal(`${device} holds the running system's root file system (/dev/${root}): refusing to overwrite it`);
  }
  if (inUse.length) throw new Refusal(`${device} is in use: ${inUse.join("; ")}. Unmount it first (umount), then run flash again`);
  const sector = sys.logicalSectorSize(name);
  if (sector !== 512) throw new Refusal(`${device} has ${sector}-byte logical sectors: the image's partition table is laid out for 512-byte sectors`);
  const size = sys.sizeBytes(name);
  if (size < imageBytes) throw new Refusal(`${device} is smaller than the image: ${gib(size)} < ${gib(imageBytes)}`);
  return { name, size };
}

export const gib = (n: number) => (n < 2 ** 30 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 2 ** 30).toFixed(2)} GiB`);

/** The real machine. */
export function realSys(): SysView {
  const sys = (p: string) => readFileSync(`/sys/class/block/${p}`, "utf8").trim();
  const list = (p: string) => {
    try {
      return readdirSync(`/sys/class/block/${p}`);
    } catch {
      return [];
    }
  };
  const byDev = (dev: number) => {
    try {
      return basename(realpathSync(`/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`));
    } catch {
      return null;
    }
  };
  return {
    mounts: () => readFileSync("/proc/mounts", "utf8"),
    swaps: () => (existsSync("/proc/swaps") ? readFileSync("/proc/swaps", "utf8") : ""),
    blockName(path) {
      try {
        const st = statSync(path);
        return st.isBlockDevice() ? byDev(st.rdev) : null;
      } catch {
        return null;
      }
    },
    partitions: (disk) => list(disk).filter((e) => existsSync(`/sys/class/block/${disk}/${e}/partition`)),
    parentDisk: (name) => (existsSync(`/sys/class/block/${name}/partition`) ? basename(realpathSync(`/sys/class/block/${name}/..`)) : null),
    holders: (name) => list(`${name}/holders`),
    slaves: (name) => list(`${name}/slaves`),
    sizeBytes: (name) => Number(sys(`${name}/size`)) * 512,
    logicalSectorSize: (name) => Number(sys(`${name}/queue/logical_block_size`) || 512),
    rootDevice: () => byDev(statSync("/").dev),
  };
}

interface Sha256File {
  hex: string;
  file: string;
}

/** `<hex>  <name>` as sha256sum writes it, beside the image. */
export function readSha256(image: string): Sha256File {
  const file = `${image}.sha256`;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Refusal(`${file} is missing: without it the written disk cannot be verified (it is written beside the image by make image)`);
  }
  const m = /^([0-9a-f]{64})\s+\*?(.+)$/m.exec(text);
  if (!m) throw new Refusal(`${file}: expected "<sha256>  <file name>", got ${JSON.stringify(text.slice(0, 80))}`);
  if (basename(m[2]!.trim()) !== basename(image)) throw new Refusal(`${file} is the checksum of ${m[2]!.trim()}, not of ${basename(image)}`);
  return { hex: m[1]!, file };
}

export interface FlashOptions {
  image: string;
  device: string;
  seed: string | null;
  allowFile: boolean;
  sys: SysView;
  progress: Progress;
  log: (line: string) => void;
  /** for tests: the mtools binary directory */
  mcopy?: string;
}

const ZERO = Buffer.alloc(CHUNK);
const isZero = (b: Buffer, n: number) => b.subarray(0, n).equals(ZERO.subarray(0, n));

/** Copies IMAGE onto DEVICE; returns the sha256 of what was read from IMAGE. */
function writeImage(o: FlashOptions, imageBytes: number, deviceBytes: number): string {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(CHUNK);
  const src = openSync(o.image, "r");
  const isFile = statSync(o.device).isFile();
  // O_EXCL on a block device: EBUSY if anyone has it open exclusively (mounted, dm, md).
  // A file (--allow-file) is emptied first, so that runs of zeros can stay holes.
  const dst = openSync(o.device, isFile ? constants.O_WRONLY | constants.O_TRUNC : constants.O_WRONLY | constants.O_EXCL);
  try {
    o.progress.start("writing", imageBytes);
    for (let at = 0; at < imageBytes; ) {
      const n = readSync(src, buf, 0, Math.min(CHUNK, imageBytes - at), at);
      if (n <= 0) throw new Error(`${o.image}: short read at ${at}`);
      h.update(buf.subarray(0, n));
      if (!(isFile && isZero(buf, n))) for (let w = 0; w < n; ) w += writeSync(dst, buf, w, n - w, at + w);
      at += n;
      o.progress.update(at);
    }
    if (isFile) ftruncateSync(dst, Math.max(imageBytes, deviceBytes));
    o.progress.note("flushing to the disk");
    fsyncSync(dst);
    o.progress.done();
  } finally {
    closeSync(src);
    closeSync(dst);
  }
  return h.digest("hex");
}

/** sha256 of the first `bytes` of the device, read back from the disk (not the page cache). */
function readBack(o: FlashOptions, bytes: number): string {
  if (!statSync(o.device).isFile()) spawnSync("blockdev", ["--flushbufs", o.device], { stdio: "ignore" });
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(CHUNK);
  const fd = openSync(o.device, "r");
  try {
    o.progress.start("verifying", bytes);
    for (let at = 0; at < bytes; ) {
      const n = readSync(fd, buf, 0, Math.min(CHUNK, bytes - at), at);
      if (n <= 0) throw new Error(`${o.device}: short read at ${at}`);
      h.update(buf.subarray(0, n));
      at += n;
      o.progress.update(at);
    }
    o.progress.done();
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** Writes the seed as ::/seed.yaml on the BOLLARD-SEED FAT, then reads it back. */
export function writeSeed(device: string, seedFile: string, mtoolsDir = ""): { offset: number; partition: number } {
  const fd = openSync(device, "r");
  let table;
  try {
    table = readGpt((pos, len) => {
      const b = Buffer.alloc(len);
      readSync(fd, b, 0, len, pos);
      return b;
    });
  } finally {
    closeSync(fd);
  }
  const p = findPartition(table, SEED_PARTLABEL);
  if (!p) throw new Refusal(`no ${SEED_PARTLABEL} partition in the partition table on ${device}: not a bollard node image?`);
  const offset = p.firstLba * 512;
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1", MTOOLS_NO_VFAT: "" };
  const target = `${device}@@${offset}`;
  const run = (cmd: string, args: string[]) => spawnSync(`${mtoolsDir}${cmd}`, args, { env, encoding: "buffer" });
  const w = run("mcopy", ["-o", "-i", target, seedFile, `::/${SEED_FILE_NAME}`]);
  if (w.error || w.status !== 0) throw new Error(`mcopy onto ${device} at ${offset}: ${w.error?.message ?? w.stderr.toString().trim()}`);
  const r = run("mtype", ["-i", target, `::/${SEED_FILE_NAME}`]);
  if (r.error || r.status !== 0 || !r.stdout.equals(readFileSync(seedFile))) throw new Error(`the seed read back from ${device} differs from ${seedFile}`);
  if (!statSync(device).isFile()) spawnSync("blockdev", ["--flushbufs", device], { stdio: "ignore" });
  return { offset, partition: p.index };
}

/** The whole procedure, step by step; throws a Refusal (nothing written) or an Error. */
export async function flash(o: FlashOptions): Promise<void> {
  const t0 = performance.now();
  // 1 image
  let st;
  try {
    st = statSync(o.image);
  } catch (e) {
    throw new Refusal(`cannot read the image ${o.image}: ${(e as Error).message}`);
  }
  if (!st.isFile() || st.size === 0 || st.size % 512) throw new Refusal(`${o.image} is not a disk image (a non-empty file of whole 512-byte sectors)`);
  const sum = readSha256(o.image);
  // 2 seed
  if (o.seed !== null) {
    if (!existsSync(o.seed)) throw new Refusal(`the seed ${o.seed} does not exist (write the seeds with: bollard seed --cluster NAME --out DIR)`);
    const r = await readSeed(o.seed);
    if (!r.ok) throw new Refusal(seedErrors(o.seed, r.errors));
    o.log(`seed: ${describeSeed(r.seed)}`);
    if (spawnSync(`${o.mcopy ?? ""}mcopy`, ["-V"], { stdio: "ignore" }).error) {
      throw new Refusal("mcopy is not installed: the seed is written with mtools, without mounting (apt-get install mtools)");
    }
  }
  // 3 device
  let dev: { name: string; size: number };
  if (o.allowFile && existsSync(o.device) && statSync(o.device).isFile()) {
    const fst = statSync(o.device);
    if (fst.ino === st.ino && fst.dev === st.dev) throw new Refusal(`${o.device} is the image itself`);
    if (fst.size < st.size) throw new Refusal(`${o.device} is smaller than the image: ${gib(fst.size)} < ${gib(st.size)}`);
    dev = { name: o.device, size: fst.size };
  } else {
    if (existsSync(o.device) && statSync(o.device).isFile()) throw new Refusal(`${o.device} is a regular file, not a disk (--allow-file writes onto a file: tests and VM disks only)`);
    if (!existsSync(o.device)) throw new Refusal(`${o.device} does not exist`);
    dev = checkDevice(o.sys, o.device, st.size);
  }
  o.log(`writing ${o.image} (${gib(st.size)}) onto ${o.device} (${gib(dev.size)})`);
  // 4 write, 5 verify
  const wrote = writeImage(o, st.size, dev.size);
  if (wrote !== sum.hex) throw new Error(`${o.image} does not match ${sum.file} (it hashed to ${wrote} while being written): a corrupt image; the disk holds it anyway, do not boot it`);
  const back = readBack(o, st.size);
  if (back !== sum.hex) throw new Error(`verification failed: ${o.device} reads back as ${back}, not ${sum.hex} (${sum.file}): a bad disk or cable?`);
  o.log(`verified: ${o.device} holds the image (sha256 ${sum.hex.slice(0, 16)}...)`);
  // 6 seed
  if (o.seed !== null) {
    const w = writeSeed(o.device, o.seed, o.mcopy);
    o.log(`seed written: ${SEED_FILE_NAME} on partition ${w.partition} (${SEED_PARTLABEL}) at byte ${w.offset}`);
  } else {
    o.log(`no seed written (--no-seed): the node will wait for one on its ${SEED_PARTLABEL} partition`);
  }
  o.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

export const FLASH_USAGE = `usage: bollard flash IMAGE DEVICE --seed FILE [--yes]
       bollard flash IMAGE DEVICE --no-seed [--yes]

Writes IMAGE (bollard-node-<version>.img) onto the disk DEVICE, verifies it by reading it
back against IMAGE.sha256, then writes the node's seed onto the disk's ${SEED_PARTLABEL}
partition. Progress goes to stderr. Asks to type the device name unless --yes.

  --seed FILE    the node's seed (bollard seed); checked before anything is written
  --no-seed      write no seed (the node waits for one at first boot)
  --yes          do not ask for confirmation
  --allow-file   DEVICE may be a regular file (tests, VM disks)`;

export const flashCommand: SubCommand = {
  name: "flash",
  usage: ["flash IMAGE DEVICE --seed FILE   write a node disk: image, verify, seed (flash --help)"],
  help: FLASH_USAGE,
  async run(args: string[], ctx: CommandContext): Promise<number> {
    let v: { seed?: string; "no-seed"?: boolean; yes?: boolean; "allow-file"?: boolean; help?: boolean };
    let pos: string[];
    try {
      ({ values: v, positionals: pos } = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: { seed: { type: "string" }, "no-seed": { type: "boolean" }, yes: { type: "boolean" }, "allow-file": { type: "boolean" }, help: { type: "boolean", short: "h" } },
      }));
    } catch (e) {
      ctx.io.err(`bollard flash: ${(e as Error).message}\n${FLASH_USAGE}`);
      return 2;
    }
    if (v.help) return ctx.io.out(FLASH_USAGE), 0;
    if (pos.length !== 2) return ctx.io.err(`bollard flash: expected IMAGE DEVICE\n${FLASH_USAGE}`), 2;
    if (!v.seed && !v["no-seed"]) return ctx.io.err("bollard flash: refused: no seed given: a node without a seed cannot join its cluster (--seed FILE, or --no-seed to write none)"), 2;
    if (v.seed && v["no-seed"]) return ctx.io.err("bollard flash: --seed and --no-seed exclude each other"), 2;
    const [image, device] = pos as [string, string];
    const o: FlashOptions = {
      image, device, seed: v.seed ?? null, allowFile: v["allow-file"] ?? false, sys: realSys(),
      progress: new Progress(process.stderr), log: (l) => ctx.io.err(l),
    };
    if (!v.yes && !(await confirm(device, ctx))) return 1;
    try {
      await flash(o);
      return 0;
    } catch (e) {
      ctx.io.err(`bollard flash: ${e instanceof Refusal ? "refused" : "failed"}: ${(e as Error).message}`);
      return e instanceof Refusal ? 2 : 1;
    }
  },
};

async function confirm(device: string, ctx: CommandContext): Promise<boolean> {
  if (!process.stdin.isTTY) {
    ctx.io.err(`bollard flash: refused: everything on ${device} is overwritten; confirm with --yes (stdin is not a terminal to ask)`);
    return false;
  }
  process.stderr.write(`Everything on ${device} will be overwritten. Type its name (${basename(device)}) to go on: `);
  const answer = await new Promise<string>((resolve) => process.stdin.once("data", (d) => resolve(String(d).trim())));
  process.stdin.pause();
  if (answer === basename(device) || answer === device) return true;
  ctx.io.err("bollard flash: not confirmed; nothing written");
  return false;
}
