// `make image-upgrade-test` (image/upgrade-test.sh; docs/upgrade.md "Image upgrade"): one node
// under QEMU (UEFI, OVMF) through two A/B image upgrades, as an operator does them at its shell:
//   v1 (the built image) flashed and booted from root A;
//   `bollard upgrade v2.img`: root B written, the node reboots into it once (bootctl
//      set-oneshot), the health gate passes, the entry is blessed and becomes the default;
//   `bollard upgrade v3.img`, a deliberately broken image (its agent never starts): root A
//      written, booted once, the gate fails by its deadline, the entry is marked bad, and the
//      node comes back on root B (v2) by itself.
// v2 and v3 are made from v1 here: its root partition altered with debugfs (release version; v3
// also a drop-in that makes the agent exit at once), the image's ESP entry and checksums
// rewritten to match. They reach the VM on a second, read-only disk (an ext4 file system with
// the two image files, no partition table: no second set of the layout's PARTUUIDs).
// Under TCG where KVM cannot boot the image (this machine: kvm_pvm); a long test, not in make test.
// Under TCG the upgrade's commands run with OPENSSL_ia32cap masking AVX, AVX2, SSSE3 and SHA-NI:
// OpenSSL's SHA-256 then takes its plain integer code, which emulation runs several times faster
// than the emulated AVX2 code (the read-back hashed at 4.8 MB/s with it). Natively it changes nothing.
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readGpt } from "../../agent/provision/gpt.ts";
import { LAYOUT } from "../../agent/upgrade/image-plan.ts";
import { ROOT, Vm, flashDisk, imagePath, kvmUsable, qemuMissing, type Accel } from "./vm.ts";

const image = imagePath();
const bundle = process.env.BOLLARD_BUNDLE ?? join(ROOT, "dist/bollard.js");
const dir = mkdtempSync(join(process.env.IMAGE_TEST_DIR ?? "/var/tmp", "bollard-imgup-"));
const PASSWORD = "upgrade-test-pw";
const V1 = JSON.parse(spawnSync("cat", [join(ROOT, "package.json")], { encoding: "utf8" }).stdout).version as string;
const V2 = `${V1}-v2`, V3 = `${V1}-v3broken`;

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, env: { ...process.env, MTOOLS_SKIP_CHECK: "1" }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.status} ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** v1 with another version in its release file and ESP entry; `broken`: its agent exits at once. */
function derive(src: string, dst: string, version: string, broken: boolean): void {
  run("cp", ["--sparse=always", src, dst]);
  const fd = openSync(dst, "r");
  const gpt = readGpt((pos, len) => { const b = Buffer.alloc(len); readSync(fd, b, 0, len, pos); return b; });
  closeSync(fd);
  const root = gpt.partitions.find((p) => p.name === "bollard-root-a")!, esp = gpt.partitions.find((p) => p.name === "bollard-esp")!;
  const rootMiB = (root.firstLba * 512) / 2 ** 20, espOff = esp.firstLba * 512;
  const part = join(dir, "root.part"), w = join(dir, "w");
  mkdirSync(w, { recursive: true });
  run("dd", [`if=${dst}`, `of=${part}`, "bs=1M", `skip=${rootMiB}`, `count=${LAYOUT.rootMib}`, "conv=sparse", "status=none"]);
  const rel = run("debugfs", ["-R", "cat /usr/lib/bollard/release", part]).replace(/^VERSION=.*$/m, `VERSION=${version}`);
  writeFileSync(join(w, "release"), rel);
  const cmds = ["rm /usr/lib/bollard/release", `write ${join(w, "release")} /usr/lib/bollard/release`, "sif /usr/lib/bollard/release mode 0100644"];
  if (broken) {
    writeFileSync(join(w, "broken.conf"), `# test image ${version}: an agent that never starts (test/image/upgrade.test.ts)\n[Service]\nExecStart=\nExecStart=/bin/sh -c 'echo "test image: this agent never starts" >&2; exit 1'\n`);
    cmds.push("mkdir /etc/systemd/system/bollard-agent.service.d", `write ${join(w, "broken.conf")} /etc/systemd/system/bollard-agent.service.d/broken.conf`,
      "sif /etc/systemd/system/bollard-agent.service.d/broken.conf mode 0100644");
  }
  run("debugfs", ["-w", "-f", "-", part], cmds.join("\n") + "\n");
  const sha = run("sha256sum", [part]).split(" ")[0]!;
  run("dd", [`if=${part}`, `of=${dst}`, "bs=1M", `seek=${rootMiB}`, "conv=notrunc,sparse", "status=none"]);
  rmSync(part);
  const entry = run("mtype", ["-i", `${dst}@@${espOff}`, "::/loader/entries/bollard-a.conf"]).replace(/^version .*$/m, `version ${version}`);
  const sums = run("mtype", ["-i", `${dst}@@${espOff}`, "::/bollard/a/SHA256SUMS"]).replace(/^[0-9a-f]{64}  root\.part$/m, `${sha}  root.part`);
  writeFileSync(join(w, "entry"), entry);
  writeFileSync(join(w, "sums"), sums);
  run("mcopy", ["-o", "-i", `${dst}@@${espOff}`, join(w, "entry"), "::/loader/entries/bollard-a.conf"]);
  run("mcopy", ["-o", "-i", `${dst}@@${espOff}`, join(w, "sums"), "::/bollard/a/SHA256SUMS"]);
}

async function plan(): Promise<{ skip: string | null; accel: Accel }> {
  const missing = qemuMissing();
  if (missing) return { skip: missing, accel: "tcg" };
  if (process.env.IMAGE_TEST_ACCEL === "tcg") return { skip: null, accel: "tcg" };
  const kvm = await kvmUsable(image, dir);
  if (!kvm.ok) console.log(`  KVM is not usable: ${kvm.why}\n  booting under TCG (software emulation): slow, and its timings are not KVM's`);
  return { skip: null, accel: kvm.ok ? "kvm" : "tcg" };
}

const { skip, accel } = await plan();
const slow = accel === "tcg" ? 12 : 1;
const U = suite<{ vm: Vm; figures: string[] }>("image upgrade A/B", { vm: null as unknown as Vm, figures: [] });

U.before(async (ctx) => {
  if (skip) return;
  const t0 = Date.now();
  const seeds = join(dir, "seeds");
  writeFileSync(join(dir, "pw"), `${PASSWORD}\n`);
  run(process.execPath, [bundle, "seed", "--cluster", "imgup", "--nodes", "node1", "--out", seeds, "--data-nics", "enp0s3,enp0s4", "--mgmt-nic", "enp0s5",
    "--login-password-file", join(dir, "pw"), ...(accel === "tcg" ? ["--timing-scale", "10"] : [])]);
  const imgs = join(dir, "images");
  mkdirSync(imgs);
  derive(image, join(imgs, "v2.img"), V2, false);
  derive(image, join(imgs, "v3.img"), V3, true);
  // the images' disk: ext4 of the two (sparse) files, read-only in the guest
  run("mkfs.ext4", ["-q", "-F", "-L", "images", "-d", imgs, join(dir, "images.ext4"), "14G"]);
  rmSync(imgs, { recursive: true });
  const disk = join(dir, "node1.img");
  flashDisk(bundle, image, disk, join(seeds, "node1.seed.yaml"), 8);
  console.log(`  v2 and v3 derived, disks ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; booting ${image} (${V1}) under ${accel} (serial log: ${dir}/node1.serial.log)`);
  ctx.vm = new Vm({ name: "node1", dir, disk, accel, netdevs: ["hubport,hubid=1", "hubport,hubid=2", "hubport,hubid=3"], extraDisks: [join(dir, "images.ext4")] });
  await ctx.vm.start();
});

U.after(async (ctx) => {
  await ctx.vm?.stop();
  if (ctx.figures.length) console.log(ctx.figures.map((f) => `  figure: ${f}`).join("\n"));
  if (!process.env.IMAGE_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  else console.log(`  kept ${dir}`);
});

const t = (name: string, fn: (ctx: { vm: Vm; figures: string[] }) => Promise<void>) => (skip ? U.skip(name, fn) : U(name, fn));
const sh = (vm: Vm, c: string, s = 120) => vm.sh(c, s * 1000 * slow);
const HASH_ENV = accel === "tcg" ? "OPENSSL_ia32cap=~0x1000020000000000:~0x20000020 " : "";

/** The console after `boots` firmware starts (counted from the last mark), then a shell on it. */
async function consoleUp(vm: Vm, boots = 1): Promise<void> {
  await vm.waitFor(new RegExp(Array(boots).fill("BdsDxe: starting").join("[\\s\\S]*")), 1800_000, `${boots} firmware start(s)`);
  vm.term.feed("\x1b[2J"); // what the screen showed before the reboot is gone
  await vm.waitScreen(/^bollard console {2}|^ ?(OK|DEGRADED|CRITICAL)\b/m, 300_000 * slow, "console screen");
  await vm.login(PASSWORD, 60_000 * slow);
}

/** Seconds until `cmd`'s output matches `re`, polled at the shell. */
async function until(vm: Vm, cmd: string, re: RegExp, timeoutS: number): Promise<string> {
  const end = Date.now() + timeoutS * 1000;
  for (;;) {
    const r = await sh(vm, cmd);
    if (re.test(r.out)) return r.out;
    if (Date.now() > end) throw new Error(`"${cmd}" did not match ${re} within ${timeoutS} s; last:\n${r.out}`);
    await new Promise((res) => setTimeout(res, 5000));
  }
}

t("v1 boots from root A; upgrade status shows the slot and version", async ({ vm, figures }) => {
  await consoleUp(vm);
  figures.push(`v1 first boot to a shell: ${vm.elapsed.toFixed(0)} s (${accel})`);
  assert.match((await sh(vm, "cat /proc/cmdline")).out, new RegExp(`root=PARTUUID=${LAYOUT.partuuid.a}`));
  const st = await until(vm, "bollard upgrade status", /^node1\*?\s+yes\s+A \S+/m, 300);
  assert.match(st, new RegExp(`^node1\\*?\\s+yes\\s+A ${V1.replace(/\./g, "\\.")}\\s`, "m"), st);
  assert.is((await sh(vm, "mkdir -p /mnt/images && mount -o ro /dev/vdb /mnt/images && ls /mnt/images")).out.split(/\s+/).sort().join(","), "lost+found,v2.img,v3.img");
});

t("upgrade to v2: root B written and verified, booted, gate passed, blessed and made the default", async ({ vm, figures }) => {
  const t0 = Date.now();
  vm.markNow();
  vm.send(`${HASH_ENV}bollard upgrade /mnt/images/v2.img --this-node\r`);
  const wrote = await vm.waitFor(/written in ([\d.]+) s[\s\S]*read back in ([\d.]+) s[\s\S]*prepared in ([\d.]+) s/, 1800_000, "the root written and read back");
  figures.push(`v2: root slot B written in ${wrote[1]} s, read back and checked in ${wrote[2]} s, prepared in ${wrote[3]} s`);
  await vm.waitFor(/rebooting/, 60_000, "reboot");
  await consoleUp(vm, 1);
  assert.match((await sh(vm, "cat /proc/cmdline")).out, new RegExp(`root=PARTUUID=${LAYOUT.partuuid.b}`));
  const res = await until(vm, "cat /var/lib/bollard/image-result.json; echo; ls -1 /boot/efi/loader/entries", /"step":"blessed"[\s\S]*bollard-b\.conf/, 900);
  const tBlessed = (Date.now() - t0) / 1000;
  assert.not.match(res, /bollard-b\+/, "the entry still carries a boot counter");
  await until(vm, "systemctl is-active systemd-bless-boot.service", /^active$/, 120);
  assert.match((await sh(vm, "cat /boot/efi/loader/loader.conf")).out, /^default bollard-b\*\.conf$/m);
  assert.match((await sh(vm, "cat /usr/lib/bollard/release")).out, new RegExp(`VERSION=${V2}`));
  const st = (await sh(vm, "bollard upgrade status")).out;
  assert.match(st, new RegExp(`^node1\\*?\\s+yes\\s+B ${V2.replace(/\./g, "\\.")}\\s`, "m"), st);
  assert.match(st, /image \S+ -> slot B: blessed: health gate passed/, st);
  console.log(st.split("\n").map((l) => `    | ${l}`).join("\n"));
  figures.push(`v2: 'bollard upgrade' to blessed: ${tBlessed.toFixed(0)} s (${accel})`);
});

t("upgrade to a broken v3: root A booted once, gate fails, marked bad, back on root B (v2) by itself", async ({ vm, figures }) => {
  await sh(vm, "mkdir -p /mnt/images; mountpoint -q /mnt/images || mount -o ro /dev/vdb /mnt/images");
  const t0 = Date.now();
  vm.markNow();
  // a short gate deadline: the broken agent never answers, the gate fails by it
  vm.send(`${HASH_ENV}bollard upgrade /mnt/images/v3.img --this-node --deadline 120\r`);
  await vm.waitFor(/rebooting/, 1800_000, "v3 written and the reboot");
  // v3 boots, its gate fails, the node reboots into v2: two firmware starts
  await consoleUp(vm, 2);
  const back = (Date.now() - t0) / 1000;
  assert.match((await sh(vm, "cat /proc/cmdline")).out, new RegExp(`root=PARTUUID=${LAYOUT.partuuid.b}`));
  assert.match((await sh(vm, "cat /usr/lib/bollard/release")).out, new RegExp(`VERSION=${V2}`));
  // the ESP is mounted only by an upgrade or a trial's gate (fstab noauto): not on this boot
  const ents = (await sh(vm, "mountpoint -q /boot/efi || mount /boot/efi; ls -1 /boot/efi/loader/entries")).out;
  assert.match(ents, /bollard-a\+0-\d+\.conf/, `the v3 entry is not marked bad: ${ents}`);
  assert.match(ents, /^bollard-b\.conf$/m);
  const res = (await sh(vm, "cat /var/lib/bollard/image-result.json")).out;
  assert.match(res, /"step":"rolled-back"/, res);
  assert.match(res, /health gate failed/, res);
  const st = await until(vm, "bollard upgrade status", /^node1\*?\s+yes\s+B /m, 300);
  assert.match(st, new RegExp(`image ${V3} -> slot A: rolled-back`), st);
  console.log(st.split("\n").map((l) => `    | ${l}`).join("\n"));
  figures.push(`v3 (broken): 'bollard upgrade' to back on root B with a shell: ${back.toFixed(0)} s (gate deadline 120 s; ${accel})`);
});

if (skip) console.log(`  skipped: ${skip}`);
U.run();
