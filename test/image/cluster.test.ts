// Three nodes from one image form a cluster by themselves (issue 7 item 6; run by
// `make image-cluster-test`, image/cluster-test.sh). Three seeds from `bollard seed`, three
// disks from `bollard flash`, three QEMUs. Their NICs are multicast sockets on the loopback of
// a network namespace made for the test, with nothing else in it: data A, data B (the two
// switches; each node's bond0 has one NIC on each) and management. Nothing leaves the machine.
// Success: every node's serial console shows quorum with the same leader, and at a shell the
// committed config lists the three members and every peer is alive.
//
// Only with IMAGE_CLUSTER_TEST=1 (it boots three VMs); accelerator as boot.test.ts: KVM when
// it runs a standard guest, else IMAGE_TEST_ACCEL=tcg (which cluster-test.sh sets then).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROOT, Vm, flashDisk, imagePath, kvmUsable, qemuMissing, sleep, type Accel } from "./vm.ts";

const image = imagePath();
const bundle = process.env.BOLLARD_BUNDLE ?? join(ROOT, "dist/bollard.js");
const dir = mkdtempSync(join(process.env.IMAGE_TEST_DIR ?? "/var/tmp", "bollard-cluster-"));
const NETNS = `bollard-vmnet-${process.pid}`;
const NODES = ["node1", "node2", "node3"];
const PASSWORD = "cluster-test-pw";

async function plan(): Promise<{ skip: string | null; accel: Accel }> {
  if (process.env.IMAGE_CLUSTER_TEST !== "1") return { skip: "IMAGE_CLUSTER_TEST=1 not set (make image-cluster-test)", accel: "kvm" };
  if (process.getuid?.() !== 0) return { skip: "needs root (a network namespace for the VMs' links)", accel: "kvm" };
  const missing = qemuMissing();
  if (missing) return { skip: missing, accel: "kvm" };
  if (!existsSync(image)) return { skip: `${image} does not exist (make image)`, accel: "kvm" };
  if (process.env.IMAGE_TEST_ACCEL === "tcg") return { skip: null, accel: "tcg" };
  const kvm = await kvmUsable(image, dir);
  if (kvm.ok) return { skip: null, accel: "kvm" };
  if (process.env.IMAGE_TEST_FALLBACK_TCG === "1") {
    console.log(`  KVM is not usable: ${kvm.why}\n  booting under TCG (software emulation) instead: slow, and its timings are not KVM's`);
    return { skip: null, accel: "tcg" };
  }
  return { skip: `KVM is not usable: ${kvm.why} (IMAGE_TEST_ACCEL=tcg boots under emulation)`, accel: "kvm" };
}

const { skip, accel } = await plan();
const slow = accel === "tcg" ? 15 : 1;
const ip = (...a: string[]) => {
  const r = spawnSync("ip", a, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${a.join(" ")}: ${r.stderr.trim()}`);
};

interface Ctx {
  vms: Vm[];
  formedS: number;
}
const Cluster = suite<Ctx>("image cluster", { vms: [], formedS: 0 });

Cluster.before(async (ctx) => {
  if (skip) return;
  // a namespace with only its loopback, multicast on: the three segments live there
  ip("netns", "add", NETNS);
  ip("-n", NETNS, "link", "set", "lo", "up");
  ip("-n", NETNS, "link", "set", "lo", "multicast", "on");
  ip("-n", NETNS, "route", "add", "224.0.0.0/4", "dev", "lo");
  writeFileSync(join(dir, "pw"), `${PASSWORD}\n`);
  const seeds = join(dir, "seeds");
  // Under emulation a node runs 10-20 times slower: the cluster's timings are scaled to match
  // (a heartbeat of 200 ms and a peer dead after 1.2 s assume a real CPU).
  const g = spawnSync(process.execPath, [bundle, "seed", "--cluster", "lab", "--out", seeds, "--data-nics", "enp0s3,enp0s4", "--mgmt-nic", "enp0s5",
    "--login-password-file", join(dir, "pw"), ...(accel === "tcg" ? ["--timing-scale", "10"] : [])], { encoding: "utf8" });
  assert.is(g.status, 0, g.stderr);
  const t0 = Date.now();
  for (const n of NODES) flashDisk(bundle, image, join(dir, `${n}.img`), join(seeds, `${n}.seed.yaml`), 8);
  console.log(`  three disks flashed with their seeds in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const seg = (port: number) => `socket,mcast=230.0.0.1:${port},localaddr=127.0.0.1`;
  ctx.vms = NODES.map((n, i) => new Vm({
    name: n, id: i + 1, dir, disk: join(dir, `${n}.img`), accel, netns: NETNS, smp: accel === "tcg" ? 1 : 2, memMb: 1536,
    netdevs: [seg(24101), seg(24102), seg(24103)], // data A, data B, mgmt
  }));
  for (const vm of ctx.vms) await vm.start();
  console.log(`  booting 3 nodes under ${accel} in network namespace ${NETNS} (serial logs in ${dir})`);
});

Cluster.after(async (ctx) => {
  for (const vm of ctx.vms) await vm.stop();
  if (!skip) spawnSync("ip", ["netns", "delete", NETNS]);
  if (!process.env.IMAGE_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
});

const t = (name: string, fn: (ctx: Ctx) => Promise<void>) => (skip ? Cluster.skip(name, fn) : Cluster(name, fn));

/**
 * The leader a node's console shows, or null: console-tty's own screen (the rows of `bollard
 * status`: quorum yes and a leader), or `bollard console`'s (docs/console.md): the top line's
 * leader, unless the screen gives no quorum or no leader as a reason. The state itself may
 * be DEGRADED (alarms from the boot) or, under emulation, CRITICAL "agent down" for a moment
 * when the agent answers the console's 500 ms poll late; the last known leader is then shown.
 */
function consoleLeader(vm: Vm): string | null {
  const screen = vm.term.text();
  const top = /^ ?(?:OK|DEGRADED|CRITICAL)\b.*\b(?:leader|ldr) ([a-z][a-z0-9-]*)/m.exec(screen)?.[1];
  if (top) return top !== "none" && !/no quorum|no leader|self-fenced/i.test(screen) ? top : null;
  const q = /^quorum\s+(yes|NO)$/m.exec(screen)?.[1];
  const l = /^leader\s+(\S+)$/m.exec(screen)?.[1];
  return q === "yes" && l && l !== "none" ? l : null;
}

t("three fresh nodes form a cluster by themselves: quorum and one leader on every console", async (ctx) => {
  const end = Date.now() + 600_000 * slow;
  let leaders: (string | null)[] = [];
  for (;;) {
    leaders = ctx.vms.map(consoleLeader);
    if (leaders.every((l) => l !== null && l === leaders[0])) break;
    if (Date.now() > end) assert.unreachable(`no common leader on the consoles after ${600 * slow} s: ${JSON.stringify(leaders)}`);
    await sleep(1000);
  }
  ctx.formedS = ctx.vms[0]!.elapsed;
  console.log(`  figure: three nodes booted to a formed cluster (leader ${leaders[0]}, on all three consoles) in ${ctx.formedS.toFixed(1)} s (${accel})`);
});

t("at a shell: the committed config holds the three members, every peer alive, bond0 up", async (ctx) => {
  const vm = ctx.vms[2]!;
  await vm.login(PASSWORD, 120_000 * slow);
  const st = await vm.sh("bollard status --json", 120_000 * slow);
  assert.is(st.code, 0, st.out);
  const j = JSON.parse(st.out.slice(st.out.indexOf("{"))) as { live: boolean; status: { view: { quorum: boolean; leader: string; committed: { epoch: number; members: { name: string }[] }; peers: { name: string; alive: boolean }[] } } };
  const v = j.status.view;
  assert.ok(j.live && v.quorum);
  assert.equal(v.committed.members.map((m) => m.name).sort(), NODES);
  assert.equal(v.peers.map((p) => [p.name, p.alive]), [["node1", true], ["node2", true]]);
  console.log(`    node3: leader ${v.leader}, committed epoch ${v.committed.epoch}, peers ${v.peers.map((p) => `${p.name}=${p.alive ? "up" : "DOWN"}`).join(" ")}`);
  const users = await vm.sh("cut -d: -f1 /var/lib/bollard/mosquitto/passwd | sort | tr '\\n' ' '", 60_000 * slow);
  assert.is(users.out, "join node1 node2 node3", "the agent wrote its broker's users");
  const bond = await vm.sh("grep -E '^(Bonding Mode|Currently Active Slave|MII Status)' /proc/net/bonding/bond0 | head -3", 60_000 * slow);
  // enp0s3 is the primary (seed-apply.ts): the active one while both links are up
  assert.match(bond.out, /active-backup[\s\S]*Currently Active Slave: enp0s3[\s\S]*MII Status: up/, `bond0: ${bond.out}`);
  const restarts = await vm.sh("systemctl show bollard-agent -p NRestarts --value", 60_000 * slow);
  console.log(`    node3: the agent restarted ${restarts.out} times since boot`);
  const ping = await vm.sh("ping -c1 -W2 198.18.0.11 >/dev/null && ping -c1 -W2 198.18.1.12 >/dev/null && echo reach", 60_000 * slow);
  assert.is(ping.out, "reach", "node3 reaches node1 on the data network and node2 on the management network");
});

if (skip) console.log(`  skipped: ${skip}`);
Cluster.run();
