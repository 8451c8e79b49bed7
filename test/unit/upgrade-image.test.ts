// The A/B image upgrade's checks of what it is given (agent/upgrade/image-plan.ts, image.ts):
// the layout constants against image/layout.conf; an image file refused with a clear reason
// (not a bollard image, wrong size, bad checksum); the root partition written and read back;
// the loader's files; the outcome of a trial at the next boot. The I/O tests build a small
// image of the same layout (4 MiB root slots) with sfdisk, mkfs.vfat and mtools.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ImageRefusal, inspectImage, writeRoot } from "../../agent/upgrade/image.ts";
import { LAYOUT, checkImage, efiString, entryVersion, loaderDefault, parseSums, trialOutcome, withDefault, type ImagePart, type ImageTrial } from "../../agent/upgrade/image-plan.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const conf = Object.fromEntries([...readFileSync(join(ROOT, "image/layout.conf"), "utf8").matchAll(/^([A-Z_0-9]+)=(\S+)/gm)].map((m) => [m[1], m[2]]));

const P = suite("image upgrade: the pure checks");

P("LAYOUT is image/layout.conf", () => {
  assert.is(LAYOUT.partuuid.a, conf.PARTUUID_ROOT_A);
  assert.is(LAYOUT.partuuid.b, conf.PARTUUID_ROOT_B);
  assert.is(LAYOUT.partuuid.esp, conf.PARTUUID_ESP);
  assert.is(LAYOUT.rootMib, Number(conf.ROOT_MIB));
  assert.is(LAYOUT.espMib, Number(conf.ESP_MIB));
  assert.is(LAYOUT.typeRoot, conf.TYPE_ROOT);
  assert.is(LAYOUT.parts[1], conf.PARTLABEL_SEED);
});

const MiB = 2048; // sectors
const parts = (rootMib = LAYOUT.rootMib, names = LAYOUT.parts, rootUuid = LAYOUT.partuuid.a): ImagePart[] => {
  let at = MiB;
  const sizes = [LAYOUT.espMib, 16, rootMib, rootMib, 256];
  return names.map((name, i) => {
    const p = { index: i + 1, name, uuid: i === 2 ? rootUuid.toUpperCase() : "00000000-0000-0000-0000-00000000000" + i, type: i === 2 ? LAYOUT.typeRoot : "X", firstLba: at, lastLba: at + sizes[i]! * MiB - 1 };
    at += sizes[i]! * MiB;
    return p;
  });
};
const last = (ps: ImagePart[]) => ps[ps.length - 1]!.lastLba + MiB - 34; // the build's: 1 MiB after data, less the backup GPT

P("checkImage: a bollard image's root and ESP; refusals say why", () => {
  const ps = parts();
  const size = (last(ps) + 34) * 512;
  const ok = checkImage(ps, last(ps), size);
  assert.ok(ok.ok);
  assert.equal((ok as { root: unknown }).root, { offset: ps[2]!.firstLba * 512, bytes: LAYOUT.rootMib * 2 ** 20 });
  assert.match((checkImage(parts(undefined, ["EFI", "Linux"]), 1000, size) as { error: string }).error, /^not a bollard node image: its partitions are "EFI", "Linux", expected bollard-esp/);
  assert.match((checkImage([], 1000, size) as { error: string }).error, /its partitions are none/);
  assert.match((checkImage(parts(undefined, undefined, "11111111-2222-3333-4444-555555555555"), last(ps), size) as { error: string }).error, /its root A partition is 11111111-/);
  const small = parts(1024);
  assert.match((checkImage(small, last(small), (last(small) + 34) * 512) as { error: string }).error, /root partition is 1024 MiB, this layout's root slots are 2560 MiB/);
  assert.match((checkImage(ps, last(ps), size - 4096) as { error: string }).error, /^wrong size: the file is \d+ bytes, its partition table says \d+ \(truncated/);
  assert.match((checkImage(ps, last(ps), size + 512) as { error: string }).error, /^wrong size/);
});

P("SHA256SUMS: parsed; a bad line or a missing name refused", () => {
  const h = "ab".repeat(32);
  const r = parseSums(`${h}  vmlinuz\n${h}  initrd.img\n${h} *root.part\n`);
  assert.ok(r.ok);
  assert.is((r as { sums: Map<string, string> }).sums.get("root.part"), h);
  assert.match((parseSums(`${h}  vmlinuz\nnonsense\n`) as { error: string }).error, /line 2: expected "SHA256  NAME", got "nonsense"/);
  assert.match((parseSums(`${h}  vmlinuz\n`) as { error: string }).error, /no checksum of root\.part, initrd\.img/);
});

P("loader files: entry version, loader.conf default, EFI strings", () => {
  assert.is(entryVersion("title   bollard 0.2.0 (slot A)\nversion 0.2.0\nlinux /x\n"), "0.2.0");
  assert.is(entryVersion("title x\n"), null);
  const lc = "default bollard-a.conf\ntimeout 0\n";
  assert.is(loaderDefault(lc), "bollard-a.conf");
  assert.is(withDefault(lc, "bollard-b.conf"), "default bollard-b.conf\ntimeout 0\n");
  assert.is(withDefault("timeout 0\n", "bollard-b.conf"), "default bollard-b.conf\ntimeout 0\n");
  assert.is(efiString(Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from("bollard-b.conf\0", "utf16le")])), "bollard-b.conf");
  assert.is(efiString(Buffer.from([6, 0, 0, 0])), null);
});

P("trialOutcome: on trial, blessed or rejected by the gate, given up by the loader", () => {
  const trial: ImageTrial = { version: "0.2.0", from: "a", to: "b", entryId: "bollard-b.conf", deadlineMs: 600_000, baseline: [], at: 1000 };
  assert.is(trialOutcome(null, null, "a", 5000), null);
  assert.equal(trialOutcome(trial, null, "b", 5000), { step: "trial", version: "0.2.0", slot: "b", why: "booted, the health gate runs", at: 5000 });
  const gate = { step: "rolled-back" as const, version: "0.2.0", slot: "b" as const, why: "health gate failed: no quorum", at: 3000 };
  assert.equal(trialOutcome(trial, gate, "a", 5000), gate);
  const loader = trialOutcome(trial, null, "a", 5000)!;
  assert.is(loader.step, "rolled-back");
  assert.match(loader.why, /given up by the boot loader/);
  // a result older than the trial belongs to an earlier upgrade
  assert.is(trialOutcome(trial, { ...gate, at: 500 }, "a", 5000)!.why, loader.why);
});

P("trialOutcome: the boot that wrote the trial judges nothing (the old root runs because the reboot has not happened yet)", () => {
  // the image test's v2 rollback: the old root's agent re-read its image state 200 ms after the
  // trial was written, before the reboot, and wrote "given up by the boot loader"
  const trial: ImageTrial = { version: "0.2.0", from: "a", to: "b", entryId: "bollard-b.conf", deadlineMs: 600_000, baseline: [], at: 1000, bootId: "boot-1" };
  const pending = trialOutcome(trial, null, "a", 1200, "boot-1")!;
  assert.equal([pending.step, pending.slot, pending.at], ["trial", "b", 1000]);
  assert.match(pending.why, /boots, on trial, at the next reboot/);
  // after a reboot (another boot ID) the same facts are judged
  assert.is(trialOutcome(trial, null, "b", 9000, "boot-2")!.why, "booted, the health gate runs");
  assert.match(trialOutcome(trial, null, "a", 9000, "boot-2")!.why, /given up by the boot loader/);
  // a boot ID that cannot be read is not "the same boot"
  assert.is(trialOutcome(trial, null, "a", 9000, null)!.step, "rolled-back");
});

P.run();

// ---- I/O: a small image of the same layout
const dir = mkdtempSync(join(tmpdir(), "bollard-imgtest-"));
const SMALL = { ...LAYOUT, rootMib: 4 };
const run = (cmd: string, args: string[], input?: string) => {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.error?.message}`);
};
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A 14 MiB image: ESP 2, seed 1, root A 4 (patterned), root B 4, data 1 MiB; SHA256SUMS as the build writes it. */
function makeImage(path: string, o: { badSum?: boolean; version?: string } = {}): Buffer {
  const root = Buffer.alloc(4 << 20);
  for (let i = 0; i < root.length; i += 4096) root.writeUInt32LE(i ^ 0x5a5a5a5a, i);
  const kernel = Buffer.from("kernel bytes"), initrd = Buffer.from("initrd bytes");
  const esp = join(dir, "esp.fat");
  rmSync(esp, { force: true });
  run("mkfs.vfat", ["-C", esp, "2048"]);
  writeFileSync(join(dir, "vmlinuz"), kernel);
  writeFileSync(join(dir, "initrd.img"), initrd);
  writeFileSync(join(dir, "SHA256SUMS"), `${sha(kernel)}  vmlinuz\n${sha(initrd)}  initrd.img\n${o.badSum ? "0".repeat(64) : sha(root)}  root.part\n`);
  writeFileSync(join(dir, "entry"), `title bollard\nversion ${o.version ?? "0.9.0"}\noptions root=PARTUUID=${LAYOUT.partuuid.a} ro\n`);
  run("mmd", ["-i", esp, "::/bollard", "::/bollard/a", "::/loader", "::/loader/entries"]);
  for (const f of ["vmlinuz", "initrd.img", "SHA256SUMS"]) run("mcopy", ["-i", esp, join(dir, f), `::/bollard/a/${f}`]);
  run("mcopy", ["-i", esp, join(dir, "entry"), "::/loader/entries/bollard-a.conf"]);
  writeFileSync(path, "");
  truncateSync(path, 14 << 20);
  const L = LAYOUT;
  run("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", path], `label: gpt\nunit: sectors\nfirst-lba: 2048\n` +
    `start=2048, size=4096, type=${"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}, uuid=${L.partuuid.esp}, name=bollard-esp\n` +
    `start=6144, size=2048, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=BOLLARD-SEED\n` +
    `start=8192, size=8192, type=${L.typeRoot}, uuid=${L.partuuid.a}, name=bollard-root-a\n` +
    `start=16384, size=8192, type=${L.typeRoot}, uuid=${L.partuuid.b}, name=bollard-root-b\n` +
    `start=24576, size=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=bollard-data\n`);
  const fd = openSync(path, "r+");
  writeSync(fd, readFileSync(esp), 0, 2 << 20, 1 << 20);
  writeSync(fd, root, 0, root.length, 4 << 20);
  closeSync(fd);
  return root;
}

const IO = suite("image upgrade: an image file checked, its root written and read back");

IO.after(() => rmSync(dir, { recursive: true, force: true }));

IO("a good image: its version, root and checksums; the root written to a slot and verified", () => {
  const img = join(dir, "good.img");
  const root = makeImage(img, { version: "0.9.1" });
  const i = inspectImage(img, SMALL);
  assert.is(i.version, "0.9.1");
  assert.equal(i.root, { offset: 4 << 20, bytes: 4 << 20 });
  assert.is(i.options, `root=PARTUUID=${LAYOUT.partuuid.a} ro`);
  const slot = join(dir, "slot-b");
  writeFileSync(slot, Buffer.alloc(4 << 20, 0xee));
  const lines: string[] = [];
  writeRoot(img, i, slot, (s) => lines.push(s));
  assert.ok(readFileSync(slot).equals(root), "the slot does not hold the image's root");
  assert.match(lines.join("\n"), /root: 4 MiB written in/);
});

IO("refused: bad checksum (the image's root is not what its SHA256SUMS says)", () => {
  const img = join(dir, "badsum.img");
  makeImage(img, { badSum: true });
  const i = inspectImage(img, SMALL);
  const slot = join(dir, "slot-x");
  writeFileSync(slot, Buffer.alloc(4 << 20));
  assert.throws(() => writeRoot(img, i, slot, () => {}), (e: Error) => e instanceof ImageRefusal && /^bad checksum: the image's root partition has sha256 [0-9a-f]{16}\.\.\., its SHA256SUMS says 0000/.test(e.message));
});

IO("refused: wrong size (a truncated copy), not a bollard image, no such file", () => {
  const img = join(dir, "short.img");
  makeImage(img);
  truncateSync(img, statSync(img).size - 65536);
  assert.throws(() => inspectImage(img, SMALL), (e: Error) => e instanceof ImageRefusal && /^wrong size: the file is \d+ bytes, its partition table says \d+ \(truncated/.test(e.message));
  const other = join(dir, "other.img");
  writeFileSync(other, Buffer.alloc(1 << 20, 7));
  assert.throws(() => inspectImage(other, SMALL), (e: Error) => e instanceof ImageRefusal && /^not a bollard node image: no GPT/.test(e.message));
  assert.throws(() => inspectImage(join(dir, "nope.img"), SMALL), (e: Error) => e instanceof ImageRefusal && /ENOENT/.test(e.message));
  // the real layout's 2560 MiB slots: this image's 4 MiB root is refused
  const good = join(dir, "good2.img");
  makeImage(good);
  assert.throws(() => inspectImage(good, LAYOUT), (e: Error) => e instanceof ImageRefusal && /root partition is 4 MiB, this layout's root slots are 2560 MiB/.test(e.message));
});

IO.run();
