// `bollard flash`: the refusals (on a fake /proc and /sys), the GPT reader, the progress bar,
// and whole runs onto regular files standing in for disks (--allow-file): a small GPT image
// with a BOLLARD-SEED FAT partition, made with sfdisk and mkfs.vfat; the seed is written and
// read back with mtools. Those need fdisk, dosfstools and mtools; without them they are
// skipped, and say why.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { CommandContext } from "../../agent/cli/types.ts";
import { Progress, bar } from "../../agent/provision/flash-progress.ts";
import { Refusal, checkDevice, flash, flashCommand, readSha256, type SysView } from "../../agent/provision/flash.ts";
import { GptError, crc32, findPartition, readGpt } from "../../agent/provision/gpt.ts";
import { genOptions, makeSeeds } from "../../agent/provision/seed-gen.ts";
import { renderSeed } from "../../agent/provision/seed.ts";

const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------
// a fake machine: sda (the system disk: sda1 /, sda2 swap), sdb (empty), sdc (a partition
// mounted), sdd under an LVM volume (dm-0), nvme0n1 with 4096-byte sectors, sde small

interface Disk {
  size: number;
  parts?: string[];
  holders?: string[];
  sector?: number;
}

function fakeSys(over: { mounts?: string; swaps?: string; root?: string; disks?: Record<string, Disk>; slaves?: Record<string, string[]> } = {}): SysView {
  const disks: Record<string, Disk> = over.disks ?? {
    sda: { size: 64 * 2 ** 30, parts: ["sda1", "sda2"] },
    sdb: { size: 16 * 2 ** 30, parts: [] },
    sdc: { size: 16 * 2 ** 30, parts: ["sdc1"] },
    sdd: { size: 16 * 2 ** 30, parts: [], holders: ["dm-0"] },
    nvme0n1: { size: 512 * 2 ** 30, parts: [], sector: 4096 },
    sde: { size: 2 * 2 ** 30, parts: [] },
    "dm-0": { size: 16 * 2 ** 30, parts: [] },
  };
  const slaves = over.slaves ?? { "dm-0": ["sdd"] };
  const parentOf = (n: string) => Object.keys(disks).find((d) => disks[d]!.parts?.includes(n)) ?? null;
  return {
    mounts: () => over.mounts ?? "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sdc1 /media/usb\\040stick vfat rw 0 0\n",
    swaps: () => over.swaps ?? "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1000 0 -2\n",
    blockName: (p) => {
      const n = p.replace(/^\/dev\//, "").replace(/^mapper\/vg-lv$/, "dm-0");
      return disks[n] || parentOf(n) ? n : null;
    },
    partitions: (d) => disks[d]?.parts ?? [],
    parentDisk: parentOf,
    holders: (n) => disks[n]?.holders ?? [],
    slaves: (n) => slaves[n] ?? [],
    sizeBytes: (n) => disks[n]!.size,
    logicalSectorSize: (n) => disks[n]?.sector ?? 512,
    rootDevice: () => over.root ?? "sda1",
  };
}

const IMG = 4 * 2 ** 30;
const Refuse = suite("flash: refusals");

Refuse("an unused disk big enough is accepted", () => {
  assert.equal(checkDevice(fakeSys(), "/dev/sdb", IMG), { name: "sdb", size: 16 * 2 ** 30 });
});

Refuse("the disk holding the running root file system", () => {
  assert.throws(() => checkDevice(fakeSys(), "/dev/sda", IMG), /\/dev\/sda holds the running system's root file system \(\/dev\/sda1\): refusing/);
  // root on LVM over sdd: the disk under it is refused too
  assert.throws(() => checkDevice(fakeSys({ root: "dm-0", mounts: "/dev/mapper/vg-lv / ext4 rw 0 0\n", swaps: "" }), "/dev/sdd", IMG), /holds the running system's root file system \(\/dev\/dm-0\)/);
});

Refuse("a mounted device: its partition is mounted", () => {
  assert.throws(() => checkDevice(fakeSys(), "/dev/sdc", IMG), /\/dev\/sdc is in use: \/dev\/sdc1 is mounted on \/media\/usb stick\. Unmount it first/);
  assert.throws(() => checkDevice(fakeSys({ mounts: "/dev/sdb /mnt ext4 rw 0 0\n" }), "/dev/sdb", IMG), /\/dev\/sdb is mounted on \/mnt/);
});

Refuse("in use as swap, or under device-mapper", () => {
  assert.throws(() => checkDevice(fakeSys({ root: "sdb", mounts: "", swaps: "Filename\n/dev/sdc1 partition 1 0 -2\n" }), "/dev/sdc", IMG), /\/dev\/sdc1 is in use as swap/);
  assert.throws(() => checkDevice(fakeSys(), "/dev/sdd", IMG), /\/dev\/sdd is in use by \/dev\/dm-0 \(device-mapper, RAID or LVM\)/);
});

Refuse("a partition instead of a disk; not a block device", () => {
  assert.throws(() => checkDevice(fakeSys(), "/dev/sdc1", IMG), /\/dev\/sdc1 is a partition of \/dev\/sdc: give the whole disk \(\/dev\/sdc\)/);
  assert.throws(() => checkDevice(fakeSys(), "/dev/nothing", IMG), /\/dev\/nothing is not a block device/);
});

Refuse("a disk smaller than the image; 4096-byte sectors", () => {
  assert.throws(() => checkDevice(fakeSys(), "/dev/sde", IMG), /\/dev\/sde is smaller than the image: 2\.00 GiB < 4\.00 GiB/);
  assert.throws(() => checkDevice(fakeSys(), "/dev/nvme0n1", IMG), /4096-byte logical sectors/);
});

Refuse.run();

// ---------------------------------------------------------------------------------------
const Gpt = suite("flash: GPT");

Gpt("crc32 is IEEE 802.3's", () => {
  assert.is(crc32(Buffer.from("123456789")), 0xcbf43926);
});

const tools = ["sfdisk", "mkfs.vfat", "mcopy", "mtype"].filter((t) => spawnSync("sh", ["-c", `command -v ${t} || test -x /sbin/${t} || test -x /usr/sbin/${t}`]).status !== 0);
const noTools = tools.length ? `${tools.join(", ")} not installed (apt-get install fdisk dosfstools mtools)` : null;
const withTools = (s: ReturnType<typeof suite>, name: string, fn: () => unknown) => (noTools ? s.skip(name, fn as never) : s(name, fn as never));

/** A 24 MiB GPT disk image: 1 bollard-esp (4 MiB), 2 BOLLARD-SEED (FAT, 8 MiB), 3 root-a. */
function makeImage(dir: string): string {
  const img = join(dir, "bollard-node-test.img");
  spawnSync("truncate", ["-s", "24M", img]);
  const r = spawnSync("sfdisk", ["--quiet", img], {
    input: "label: gpt\nfirst-lba: 2048\nstart=2048, size=8192, type=U, name=bollard-esp\nstart=10240, size=16384, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=BOLLARD-SEED\nstart=26624, size=20480, type=L, name=bollard-root-a\n",
  });
  assert.is(r.status, 0, String(r.stderr));
  const fat = join(dir, "seed.fat");
  spawnSync("rm", ["-f", fat]);
  assert.is(spawnSync("mkfs.vfat", ["-C", "-n", "BOLLARDSEED", fat, String(8 * 1024)]).status, 0);
  spawnSync("dd", [`if=${fat}`, `of=${img}`, "bs=1M", "seek=5", "conv=notrunc", "status=none"]);
  writeFileSync(join(dir, "root.bin"), Buffer.alloc(MiB, 0x5a));
  spawnSync("dd", [`if=${join(dir, "root.bin")}`, `of=${img}`, "bs=1M", "seek=13", "conv=notrunc", "status=none"]);
  const hex = createHash("sha256").update(readFileSync(img)).digest("hex");
  writeFileSync(`${img}.sha256`, `${hex}  bollard-node-test.img\n`);
  return img;
}

withTools(Gpt, "reads the partitions sfdisk wrote; a damaged header is an error", () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-flash-"));
  const img = makeImage(dir);
  const b = readFileSync(img);
  const t = readGpt((pos, len) => b.subarray(pos, pos + len));
  assert.equal(t.partitions.map((p) => [p.index, p.name, p.firstLba, p.lastLba]), [[1, "bollard-esp", 2048, 10239], [2, "BOLLARD-SEED", 10240, 26623], [3, "bollard-root-a", 26624, 47103]]);
  assert.is(findPartition(t, "BOLLARD-SEED")!.type, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
  const bad = Buffer.from(b);
  bad[512 + 40] ^= 1;
  assert.throws(() => readGpt((pos, len) => bad.subarray(pos, pos + len)), (e: Error) => e instanceof GptError && /CRC32/.test(e.message));
  assert.throws(() => readGpt(() => Buffer.alloc(512)), /no GPT/);
  rmSync(dir, { recursive: true });
});

if (noTools) console.log(`  skipped: ${noTools}`);
Gpt.run();

// ---------------------------------------------------------------------------------------
const Bar = suite("flash: progress");

Bar("a bar fits 79 columns, ASCII only", () => {
  for (const [d, t, s] of [[0, 5.5 * 2 ** 30, 0], [2.8 * 2 ** 30, 5.5 * 2 ** 30, 13], [5.5 * 2 ** 30, 5.5 * 2 ** 30, 25], [9e12, 9e12, 1]]) {
    const line = bar("verifying", d!, t!, s!);
    assert.ok(line.length <= 79, line);
    assert.match(line, /^[\x20-\x7e]+$/);
  }
  assert.is(bar("writing", 2.75 * 2 ** 30, 5.5 * 2 ** 30, 10), "writing    [############------------]  50%  2.8/5.5 GiB  282 MiB/s  0:10 left");
});

Bar("not a terminal: one line per 10 %; a terminal: redrawn in place with CR", () => {
  let out = "";
  let t = 0;
  const p = new Progress({ write: (s) => (out += s), isTTY: false }, { TERM: "xterm" }, () => t);
  p.start("writing", 1000);
  for (let i = 1; i <= 1000; i++, t += 10) p.update(i);
  p.done();
  assert.is(out.split("\n").filter(Boolean).length, 11);
  assert.not.match(out, /\r/);
  out = "";
  const q = new Progress({ write: (s) => (out += s), isTTY: true }, { TERM: "dumb" }, () => t);
  q.start("writing", 1000);
  for (let i = 1; i <= 1000; i++, t += 10) q.update(i);
  q.done();
  assert.match(out, /^\r/);
  assert.is(out.split("\n").length, 2, "one newline, at the end");
  assert.ok(out.split("\r").length < 50, "redrawn at most 4 times a second");
});

Bar.run();

// ---------------------------------------------------------------------------------------
const Run = suite<{ dir: string; img: string; seed: string }>("flash: onto a file", { dir: "", img: "", seed: "" });

Run.before((ctx) => {
  if (noTools) return;
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-flash-"));
  ctx.img = makeImage(ctx.dir);
  ctx.seed = join(ctx.dir, "node2.seed.yaml");
  writeFileSync(ctx.seed, renderSeed(makeSeeds(genOptions(["--cluster", "port-fms", "--out", ctx.dir]).o)[1]!, "test"));
});
Run.after((ctx) => void (ctx.dir && rmSync(ctx.dir, { recursive: true })));

const quiet = { write: () => true, isTTY: false };
const opts = (ctx: { img: string; seed: string }, device: string, over: Partial<Parameters<typeof flash>[0]> = {}) => ({
  image: ctx.img, device, seed: ctx.seed, allowFile: true, sys: fakeSys(), progress: new Progress(quiet), log: () => {}, ...over,
});

type RunCtx = { dir: string; img: string; seed: string };
/** uvu's assert.throws is for sync code: the same for a promise. */
async function rejects(p: Promise<unknown>, test: RegExp | ((e: Error) => boolean)): Promise<void> {
  try {
    await p;
  } catch (e) {
    const ok = test instanceof RegExp ? test.test((e as Error).message) : test(e as Error);
    assert.ok(ok, `unexpected error: ${(e as Error).message}`);
    return;
  }
  assert.unreachable("expected a rejection");
}
const runT = (name: string, fn: (ctx: RunCtx) => Promise<void>) => (noTools ? Run.skip(name, fn) : Run(name, fn));
const disk = (ctx: RunCtx, name: string, mib: number) => {
  const f = join(ctx.dir, name);
  rmSync(f, { force: true });
  spawnSync("truncate", ["-s", `${mib}M`, f]);
  return f;
};
const SEED_AT = 10240 * 512;
const mtype = (f: string) => spawnSync("mtype", ["-i", `${f}@@${SEED_AT}`, "::/seed.yaml"], { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } }).stdout;

runT("writes the image, verifies it, then the seed onto BOLLARD-SEED", async (ctx) => {
  const d = disk(ctx, "disk1", 32);
  const lines: string[] = [];
  await flash(opts(ctx, d, { log: (l) => void lines.push(l) }));
  const got = readFileSync(d);
  const img = readFileSync(ctx.img);
  assert.is(got.length, 32 * MiB, "the device keeps its size");
  assert.ok(got.subarray(0, 5 * MiB).equals(img.subarray(0, 5 * MiB)), "the partition table and ESP");
  assert.ok(got.subarray(13 * MiB).subarray(0, 11 * MiB).equals(img.subarray(13 * MiB)), "root A");
  assert.ok(mtype(d).equals(readFileSync(ctx.seed)), "seed.yaml on the seed partition");
  assert.match(lines.join("\n"), /seed: node node2 of cluster port-fms/);
  assert.match(lines.join("\n"), /verified: .*disk1 holds the image/);
  assert.match(lines.join("\n"), new RegExp(`seed written: seed\\.yaml on partition 2 \\(BOLLARD-SEED\\) at byte ${SEED_AT}`));
});

runT("a missing or invalid seed is refused before anything is written", async (ctx) => {
  const d = disk(ctx, "disk2", 32);
  await rejects(flash(opts(ctx, d, { seed: join(ctx.dir, "nope.yaml") })), (e: Error) => e instanceof Refusal && /the seed .*nope\.yaml does not exist/.test(e.message));
  const bad = join(ctx.dir, "bad.yaml");
  writeFileSync(bad, readFileSync(ctx.seed, "utf8").replace(/address: "198\.18\.0\.12\/24"/, 'address: "198.18.0.12"'));
  await rejects(flash(opts(ctx, d, { seed: bad })), (e: Error) => e instanceof Refusal && /bad\.yaml: not a valid seed: 1 error:\n {2}network\.data\.address: expected/.test(e.message));
  assert.ok(readFileSync(d).equals(Buffer.alloc(32 * MiB)), "the device is untouched");
});

runT("a device smaller than the image, a file without --allow-file, the image itself", async (ctx) => {
  const small = disk(ctx, "small", 16);
  await rejects(flash(opts(ctx, small)), (e: Error) => e instanceof Refusal && /small is smaller than the image: 16\.0 MiB < 24\.0 MiB/.test(e.message));
  await rejects(flash(opts(ctx, disk(ctx, "disk3", 32), { allowFile: false })), (e: Error) => e instanceof Refusal && /is a regular file, not a disk \(--allow-file/.test(e.message));
  await rejects(flash(opts(ctx, ctx.img)), (e: Error) => e instanceof Refusal && /is the image itself/.test(e.message));
  await rejects(flash(opts(ctx, join(ctx.dir, "absent"), { allowFile: false })), /absent does not exist/);
});

runT("a corrupt image does not pass for its .sha256", async (ctx) => {
  const bad = join(ctx.dir, "bollard-node-bad.img");
  const b = readFileSync(ctx.img);
  writeFileSync(`${bad}.sha256`, readFileSync(`${ctx.img}.sha256`, "utf8").replace("bollard-node-test.img", "bollard-node-bad.img"));
  b[20 * MiB] ^= 0xff;
  writeFileSync(bad, b);
  await rejects(flash(opts(ctx, disk(ctx, "disk4", 32), { image: bad })), /bollard-node-bad\.img does not match .*sha256.*a corrupt image/);
});

runT("the command: exit 0, progress and steps on stderr", async (ctx) => {
  const d = disk(ctx, "disk5", 32);
  let err = "";
  const c: CommandContext = { configPath: "", configGiven: false, build: { version: "0", rev: "t" }, io: { out: () => {}, err: (t) => void (err += t + "\n") } };
  const write = process.stderr.write;
  let bars = "";
  process.stderr.write = ((s: string) => ((bars += s), true)) as typeof process.stderr.write;
  try {
    assert.is(await flashCommand.run([ctx.img, d, "--seed", ctx.seed, "--allow-file", "--yes"], c), 0, err);
  } finally {
    process.stderr.write = write;
  }
  assert.match(bars, /writing {4}\[#{24}\] 100%/);
  assert.match(bars, /verifying  \[#{24}\] 100%/);
  assert.match(err, /done in [0-9.]+ s/);
  const r = cli();
  assert.is(await flashCommand.run([ctx.img, d, "--seed", join(ctx.dir, "nope.yaml"), "--allow-file", "--yes"], r), 2);
  assert.match(r.errText(), /bollard flash: refused: the seed .* does not exist/);
});

Run.run();

// ---------------------------------------------------------------------------------------
const Cli = suite("flash: command line");

function cli(): CommandContext & { errText: () => string } {
  let err = "";
  return {
    configPath: "", configGiven: false, build: { version: "0", rev: "t" },
    io: { out: () => {}, err: (t) => void (err += t + "\n") },
    errText: () => err,
  };
}

Cli("no seed: refused unless --no-seed says so; usage errors exit 2", async () => {
  const c = cli();
  assert.is(await flashCommand.run(["a.img", "/dev/sdx"], c), 2);
  assert.match(c.errText(), /refused: no seed given: a node without a seed cannot join its cluster/);
  const u = cli();
  assert.is(await flashCommand.run(["a.img"], u), 2);
  assert.match(u.errText(), /expected IMAGE DEVICE/);
  const both = cli();
  assert.is(await flashCommand.run(["a.img", "/dev/sdx", "--seed", "s", "--no-seed"], both), 2);
});

Cli("without --yes and no terminal to ask on, nothing is written", async () => {
  const c = cli();
  const isTTY = process.stdin.isTTY;
  process.stdin.isTTY = false;
  try {
    assert.is(await flashCommand.run(["a.img", "/dev/sdx", "--no-seed"], c), 1);
  } finally {
    process.stdin.isTTY = isTTY;
  }
  assert.match(c.errText(), /everything on \/dev\/sdx is overwritten; confirm with --yes/);
});

Cli(".sha256 beside the image: missing, malformed, of another file", () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-flash-"));
  const img = join(dir, "x.img");
  writeFileSync(img, Buffer.alloc(1024));
  assert.throws(() => readSha256(img), /x\.img\.sha256 is missing: without it the written disk cannot be verified/);
  writeFileSync(`${img}.sha256`, "nonsense\n");
  assert.throws(() => readSha256(img), /expected "<sha256>  <file name>"/);
  writeFileSync(`${img}.sha256`, `${"a".repeat(64)}  y.img\n`);
  assert.throws(() => readSha256(img), /is the checksum of y\.img, not of x\.img/);
  writeFileSync(`${img}.sha256`, `${"a".repeat(64)}  x.img\n`);
  assert.is(readSha256(img).hex, "a".repeat(64));
  rmSync(dir, { recursive: true });
});

Cli.run();
