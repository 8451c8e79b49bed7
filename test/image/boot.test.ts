// Boot test of the node image (issue 7 item 5; docs/image.md "Boot tests"). The built image
// is flashed with its seed (a one-node cluster) onto a sparse 8 GiB disk, booted headless
// under QEMU with UEFI, and the serial console (ttyS0, a unix socket) is read like an
// operator's terminal: the bollard console's status screen must come up, then L gives a login
// prompt, and at the shell the agent service is active and `bollard status` answers.
//
// Runs when KVM runs a standard guest here (kvmUsable) and the image exists; IMAGE_TEST=1
// (make test sets it) builds a missing image (image/build.sh, root) unless KVM is already
// known not to run it (kvmPrecheck). Otherwise each test is skipped and the
// reason printed. IMAGE_TEST_ACCEL=tcg boots under software emulation instead of skipping
// (slow: minutes; the timings are then not the KVM figures); IMAGE_TEST_FALLBACK_TCG=1 does
// so only when KVM is not usable.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROOT, Vm, flashDisk, imagePath, kvmPrecheck, kvmUsable, plain, qemuMissing, type Accel } from "./vm.ts";

const image = imagePath();
const bundle = process.env.BOLLARD_BUNDLE ?? join(ROOT, "dist/bollard.js");
const dir = mkdtempSync(join(process.env.IMAGE_TEST_DIR ?? "/var/tmp", "bollard-boot-"));
const PASSWORD = "console-test-pw";

/** Why the boot test cannot run here (null: it runs), and under which accelerator. */
async function plan(): Promise<{ skip: string | null; accel: Accel }> {
  const want = process.env.IMAGE_TEST_ACCEL ?? "auto";
  const missing = qemuMissing();
  if (missing) return { skip: missing, accel: "kvm" };
  const tcgAllowed = want === "tcg" || process.env.IMAGE_TEST_FALLBACK_TCG === "1";
  if (!existsSync(image) && process.env.IMAGE_TEST === "1") {
    // no image yet: do not build one (minutes, a download) when KVM cannot boot it anyway
    const pre = kvmPrecheck();
    if (!pre.ok && !tcgAllowed) return { skip: `KVM is not usable: ${pre.why} (IMAGE_TEST_ACCEL=tcg boots under emulation instead)`, accel: "kvm" };
    console.log(`  building the image (IMAGE_TEST=1): image/build.sh`);
    const r = spawnSync(join(ROOT, "image/build.sh"), ["--no-compress"], { stdio: "inherit" });
    if (r.status !== 0) return { skip: `image/build.sh failed (${r.status})`, accel: "kvm" };
  }
  if (!existsSync(image)) return { skip: `${image} does not exist (make image, or IMAGE_TEST=1 to build it)`, accel: "kvm" };
  const help = spawnSync(process.execPath, [bundle, "--help"], { encoding: "utf8" }).stdout ?? "";
  if (!/^ {2}flash /m.test(help) || !/^ {2}seed /m.test(help)) return { skip: `${bundle} has no flash and seed commands (agent/cli/commands.ts)`, accel: "kvm" };
  if (want === "tcg") return { skip: null, accel: "tcg" };
  const kvm = await kvmUsable(image, dir);
  if (kvm.ok) return { skip: null, accel: "kvm" };
  if (process.env.IMAGE_TEST_FALLBACK_TCG === "1") {
    console.log(`  KVM is not usable: ${kvm.why}\n  booting under TCG (software emulation) instead: slow, and its timings are not KVM's`);
    return { skip: null, accel: "tcg" };
  }
  return { skip: `KVM is not usable: ${kvm.why} (IMAGE_TEST_ACCEL=tcg boots under emulation instead)`, accel: "kvm" };
}

const { skip, accel } = await plan();
const slow = accel === "tcg" ? 12 : 1;
const Boot = suite<{ vm: Vm }>("image boot", { vm: null as unknown as Vm });

Boot.before(async (ctx) => {
  if (skip) return;
  const seeds = join(dir, "seeds");
  writeFileSync(join(dir, "pw"), `${PASSWORD}\n`);
  const g = spawnSync(process.execPath, [bundle, "seed", "--cluster", "boot", "--nodes", "node1", "--out", seeds,
    "--data-nics", "enp0s3,enp0s4", "--mgmt-nic", "enp0s5", "--login-password-file", join(dir, "pw"),
    // emulation runs 10-20 times slower: the agent's timings and watchdog are scaled to match
    ...(accel === "tcg" ? ["--timing-scale", "10"] : [])], { encoding: "utf8" });
  assert.is(g.status, 0, g.stderr);
  const disk = join(dir, "node1.img");
  flashDisk(bundle, image, disk, join(seeds, "node1.seed.yaml"), 8);
  // three NICs on hubs of their own: link up, no traffic, nothing reaches the host's network
  ctx.vm = new Vm({ name: "node1", dir, disk, accel, netdevs: ["hubport,hubid=1", "hubport,hubid=2", "hubport,hubid=3"] });
  console.log(`  booting ${image} under ${accel} (serial: ${ctx.vm.serialPath})`);
  await ctx.vm.start();
});

Boot.after(async (ctx) => {
  await ctx.vm?.stop();
  if (!process.env.IMAGE_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
});

const t = (name: string, fn: (ctx: { vm: Vm }) => Promise<void>) => (skip ? Boot.skip(name, fn) : Boot(name, fn));

t("ttyS0 shows the bollard console's status screen", async ({ vm }) => {
  // console-tty's own screen (header), or `bollard console`'s top line (docs/console.md)
  await vm.waitScreen(/^bollard console {2}|^ ?(OK|DEGRADED|CRITICAL)\b/m, 300_000 * slow, "console screen");
  const screen = vm.elapsed;
  // with the agent's answer on it: `bollard status`'s role row, or the top line's leader
  await vm.waitScreen(/^role\s+leader$|^ ?(OK|DEGRADED)\b.*\b(leader|ldr) node1\b/m, 300_000 * slow, "status screen with the agent's answer");
  console.log(`  figure: boot to the console screen ${screen.toFixed(1)} s, to its status with the agent answering ${vm.elapsed.toFixed(1)} s (${accel})`);
  assert.not.match(plain(vm.text), /FIRST BOOT FAILED/);
});

t("L gives a login prompt; the agent is active and `bollard status` answers", async ({ vm }) => {
  await vm.login(PASSWORD, 60_000 * slow);
  const active = await vm.sh("systemctl is-active bollard-agent", 30_000 * slow);
  assert.is(active.out, "active");
  const st = await vm.sh("bollard status", 60_000 * slow);
  assert.is(st.code, 0, st.out);
  assert.match(st.out, /^cluster\s+boot$/m);
  assert.match(st.out, /^role\s+leader$/m);
  console.log(st.out.split("\n").map((l) => `    | ${l}`).join("\n"));
});

t("first boot named the node, set up bond0, grew the data partition, started the services", async ({ vm }) => {
  const sh = (c: string) => vm.sh(c, 60_000 * slow);
  assert.is((await sh("hostname")).out, "node1");
  assert.is((await sh("test -e /var/lib/bollard/.firstboot-done")).code, 0);
  assert.match((await sh("ip -4 -o addr show bond0")).out, /198\.18\.0\.11\/24/);
  const bond = (await sh("cat /proc/net/bonding/bond0")).out;
  assert.match(bond, /Bonding Mode: fault-tolerance \(active-backup\)/, bond);
  assert.match(bond, /Slave Interface: enp0s3/, bond);
  assert.match(bond, /Slave Interface: enp0s4/, bond);
  assert.match((await sh("ip -4 -o addr show enp0s5")).out, /198\.18\.1\.11\/24/);
  const gib = Number((await sh("df -B1 --output=size /var/lib | tail -1")).out) / 2 ** 30;
  assert.ok(gib > 2, `the data file system is ${gib.toFixed(2)} GiB: not grown to the end of the 8 GiB disk`);
  console.log(`    data partition /var/lib: ${gib.toFixed(2)} GiB on an 8 GiB disk`);
  for (const u of ["mosquitto", "mariadb", "redis-server", "chrony", "systemd-networkd"]) {
    assert.is((await sh(`systemctl is-active ${u}`)).out, "active", `${u} is not active`);
  }
  assert.is((await sh("test -d /var/lib/mysql/mysql")).code, 0, "no MariaDB datadir");
  const failed = (await sh("systemctl --failed --no-legend --plain | awk '{print $1}'")).out;
  assert.is(failed, "", `failed units: ${failed}`);
});

t("kernel messages stay off the console; the watchdogs are armed", async ({ vm }) => {
  const sh = (c: string) => vm.sh(c, 30_000 * slow);
  assert.match((await sh("cat /proc/sys/kernel/printk")).out, /^3\s/);
  assert.match((await sh("cat /proc/cmdline")).out, /console=tty1 console=ttyS0,115200 loglevel=3/);
  assert.is((await sh("systemctl show -p RuntimeWatchdogUSec --value")).out, "30s");
  assert.is((await sh("systemctl show bollard-agent -p WatchdogUSec --value")).out, accel === "tcg" ? "50s" : "5s");
  console.log(`    the agent restarted ${(await sh("systemctl show bollard-agent -p NRestarts --value")).out} times since boot`);
  assert.is((await sh("test -c /dev/watchdog0")).code, 0, "no hardware watchdog device (i6300esb)");
});

if (skip) console.log(`  skipped: ${skip}`);
Boot.run();
