// hw/host: the bonding, chrony and timedatectl parsers on captured output, readHost with
// fakes (a failing source is an error value), and one real reading of this machine.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import {
  bondAlarmInputs, cpuLoadSource, hostAlarmInput, hostSource, parseBonding, parseChronyTracking,
  parseTimedatectl, readHost, readTimeSync, type Exec, type HostSource,
} from "../../agent/hw/host.ts";

// /proc/net/bonding/bond0, Linux 6.1 (Debian 12), active-backup, eth1's cable pulled
const ACTIVE_BACKUP = `Ethernet Channel Bonding Driver: v6.1.0-18-amd64

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: eth0 (primary_reselect always)
Currently Active Slave: eth0
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 0
Down Delay (ms): 0
Peer Notification Delay (ms): 0

Slave Interface: eth0
MII Status: up
Speed: 10000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: 3c:ec:ef:10:20:30
Slave queue ID: 0

Slave Interface: eth1
MII Status: down
Speed: Unknown
Duplex: Unknown
Link Failure Count: 3
Permanent HW addr: 3c:ec:ef:10:20:31
Slave queue ID: 0
`;

// 802.3ad: per-slave "details actor lacp pdu:" blocks are indented and repeat keys
const LACP = `Ethernet Channel Bonding Driver: v5.15.0-91-generic

Bonding Mode: IEEE 802.3ad Dynamic link aggregation
Transmit Hash Policy: layer3+4 (1)
MII Status: up
MII Polling Interval (ms): 100
Up Delay (ms): 0
Down Delay (ms): 0

802.3ad info
LACP active: on
LACP rate: fast
Aggregator selection policy (ad_select): stable

Slave Interface: ens1f0
MII Status: up
Speed: 25000 Mbps
Duplex: full
Link Failure Count: 1
Permanent HW addr: b8:59:9f:00:00:01
Slave queue ID: 0
Aggregator ID: 1
details actor lacp pdu:
    system priority: 65535
    port state: 63

Slave Interface: ens1f1
MII Status: up
Speed: 25000 Mbps
Duplex: full
Link Failure Count: 0
Permanent HW addr: b8:59:9f:00:00:02
Slave queue ID: 0
Aggregator ID: 1
`;

// test/lab/bondd's emulation of the same file
const BONDD = `Bonding Mode: fault-tolerance (active-backup) [lab emulation: test/lab/bondd]
Primary Slave: None
Currently Active Slave: None
MII Status: down
MII Polling Interval (ms): 100

Slave Interface: eth0
MII Status: down
Link Failure Count: 2

Slave Interface: eth1
MII Status: down
Link Failure Count: 1
`;

const B = suite("parseBonding");

B("active-backup: mode, primary, active slave, each slave's MII status and failures", () => {
  const r = parseBonding(ACTIVE_BACKUP);
  assert.ok(r.ok);
  assert.equal(r.ok && { ...r.value, slaves: undefined }, { modeText: "fault-tolerance (active-backup)", mode: "active-backup", primary: "eth0", activeSlave: "eth0", mii: "up", miimonMs: 100, slaves: undefined });
  assert.equal(r.ok && r.value.slaves, [
    { name: "eth0", mii: "up", speedMbps: 10000, duplex: "full", linkFailures: 0, permanentMac: "3c:ec:ef:10:20:30" },
    { name: "eth1", mii: "down", speedMbps: null, duplex: null, linkFailures: 3, permanentMac: "3c:ec:ef:10:20:31" },
  ]);
});

B("802.3ad with its indented details; bondd's emulation", () => {
  const l = parseBonding(LACP);
  assert.equal(l.ok && [l.value.mode, l.value.activeSlave, l.value.slaves.map((s) => [s.name, s.mii, s.linkFailures, s.speedMbps])], ["802.3ad", null, [["ens1f0", "up", 1, 25000], ["ens1f1", "up", 0, 25000]]]);
  const b = parseBonding(BONDD);
  assert.equal(b.ok && [b.value.mode, b.value.activeSlave, b.value.mii, b.value.slaves.map((s) => s.linkFailures)], ["active-backup", null, "down", [2, 1]]);
});

B("anything else is an error value", () => {
  for (const bad of ["", "garbage\n", "Bonding Mode: x\nSlave Interface: eth0\nSpeed: 1 Mbps\n"]) {
    const r = parseBonding(bad);
    assert.ok(!r.ok, bad);
  }
});

const T = suite("time sync");

T("chrony tracking CSV and timedatectl", () => {
  const synced = parseChronyTracking("A29FC87B,162.159.200.123,3,1732190000.123456789,-0.000012345,0.000004,0.000020,-12.345,0.001,0.010,0.012,0.001,64.5,Normal\n");
  assert.equal(synced.ok && [synced.value.state, synced.value.offsetSeconds], ["synced", -0.000012345]);
  const lost = parseChronyTracking("00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000,1.000,0.0,Not synchronised\n");
  assert.equal(lost.ok && lost.value.state, "unsynced");
  assert.ok(!parseChronyTracking("506 Cannot talk to daemon").ok);
  assert.equal(parseTimedatectl("yes\n").ok && parseTimedatectl("yes\n"), { ok: true, value: { state: "synced", source: "timedatectl", offsetSeconds: null, detail: "NTPSynchronized=yes" } });
  assert.equal(parseTimedatectl("Timezone=UTC\nNTPSynchronized=no\n").ok, true);
  assert.ok(!parseTimedatectl("Failed to connect to bus").ok);
});

T("chrony missing, timedatectl failing: unknown, with why", async () => {
  const exec: Exec = async (file) => (file === "chronyc" ? { code: 1, stdout: "", stderr: "", missing: true } : { code: 1, stdout: "", stderr: "Failed to connect to bus: Host is down", missing: false });
  const t = await readTimeSync(exec, 100);
  assert.equal([t.state, t.source], ["unknown", null]);
  assert.match(t.detail, "timedatectl: exit 1: Failed to connect to bus");
});

// Linux 6.1, 2 CPUs (proc(5): user nice system idle iowait irq softirq steal guest guest_nice)
const K = suite("the host source (systeminformation, filesystems throttled)");

/** A fake systeminformation that counts its calls. */
function counting(fail = { fs: false }) {
  const calls = { load: 0, mem: 0, fs: 0 };
  const base: HostSource = {
    currentLoad: async () => (calls.load++, { currentLoad: 10 * calls.load, cpus: [1, 2] }),
    mem: async () => (calls.mem++, { total: 100, available: 40 }),
    fsSize: async () => {
      calls.fs++;
      if (fail.fs) throw new Error("df: timed out");
      return [{ fs: "/dev/sda2", type: "ext4", size: 1000, used: 100 * calls.fs, mount: "/" }];
    },
  };
  return { calls, base };
}

K("cpu and memory every reading; filesystems at most every fsEveryMs, the last answer in between", async () => {
  const { calls, base } = counting();
  let t = 0;
  const src = hostSource({ base, now: () => t, fsEveryMs: 60_000 });
  assert.equal((await src.fsSize())[0]!.used, 100);
  t = 59_999;
  assert.equal((await src.fsSize())[0]!.used, 100, "within the period: the last answer");
  assert.is((await src.currentLoad()).currentLoad, 10);
  assert.is((await src.currentLoad()).currentLoad, 20, "cpu: asked every time");
  t = 60_000;
  assert.equal((await src.fsSize())[0]!.used, 200, "the period is over: asked again");
  assert.equal(calls, { load: 2, mem: 0, fs: 2 });
});

K("a failed filesystem answer is not kept: readHost reports the error, the next reading asks again", async () => {
  const fail = { fs: true };
  const { calls, base } = counting(fail);
  const src = hostSource({ base, now: () => 0 });
  const exec: Exec = async () => ({ code: 0, stdout: "yes\n", stderr: "", missing: false });
  const h = await readHost({ source: src, exec, listDir: () => [], readFile: () => "" });
  assert.equal(h.filesystems, { ok: false, error: "filesystems: df: timed out" });
  fail.fs = false;
  const h2 = await readHost({ source: src, exec, listDir: () => [], readFile: () => "" });
  assert.ok(h2.filesystems.ok, "asked again at once, although the period is not over");
  assert.is(calls.fs, 2);
  assert.equal(h2.memory, { ok: true, value: { totalBytes: 100, usedBytes: 60, availableBytes: 40, usedRatio: 0.6 } });
});

K("readHost with a time sync reading to report again runs neither chronyc nor timedatectl", async () => {
  let runs = 0;
  const exec: Exec = async () => (runs++, { code: 0, stdout: "no\n", stderr: "", missing: false });
  const source = hostSource({ base: counting().base });
  const fresh = await readHost({ source, exec, listDir: () => [], readFile: () => "" });
  assert.is(runs, 2, "chronyc (an answer it cannot read), then timedatectl");
  const again = await readHost({ source, exec, listDir: () => [], readFile: () => "", timeSync: fresh.timeSync });
  assert.is(runs, 2);
  assert.equal(again.timeSync, fresh.timeSync);
});

K("this machine: the root filesystem's size and use as df says (1K blocks)", async () => {
  const fs = await hostSource().fsSize();
  const root = fs.find((f) => f.mount === "/");
  assert.ok(root, `/ among ${fs.map((f) => f.mount).join(", ")}`);
  const [, size, used] = execFileSync("df", ["-kP", "/"], { encoding: "utf8" }).trim().split("\n")[1]!.split(/ +/);
  assert.is(Math.round(root!.size / 1024), Number(size));
  assert.ok(Math.abs(root!.used / 1024 - Number(used)) < 64 * 1024, `used ${root!.used / 1024} kB vs df ${used} kB (a busy disk moves a little)`);
});


const R = suite("readHost");

R("a failing source is an error value; the others still read; alarm inputs from it", async () => {
  const source: HostSource = {
    currentLoad: async () => ({ currentLoad: 42, cpus: [1, 2, 3, 4] }),
    mem: async () => {
      throw new Error("ENOENT /proc/meminfo");
    },
    fsSize: async () => [
      { fs: "/dev/sda1", type: "ext4", size: 100, used: 91, mount: "/var/lib/mysql" },
      { fs: "tmpfs", type: "tmpfs", size: 100, used: 100, mount: "/run" },
    ],
  };
  const files: Record<string, string> = {
    "/sys/class/net/eth0/operstate": "up\n",
    "/sys/class/net/eth0/carrier": "1\n",
    "/sys/class/net/eth0/speed": "10000\n",
    "/sys/class/net/eth1/operstate": "down\n",
    "/lab/node1/bond0.status": BONDD,
  };
  const read = (p: string) => {
    if (p in files) return files[p]!;
    throw new Error(`ENOENT: ${p}`);
  };
  const exec: Exec = async () => ({ code: 0, stdout: "no\n", stderr: "", missing: false });
  const h = await readHost({ source, readFile: read, listDir: () => ["eth0", "eth1", "lo"], exec, bonds: [{ name: "bond0", file: "/lab/node1/bond0.status" }, { name: "bond1" }] });
  assert.equal(h.cpu, { ok: true, value: { usedRatio: 0.42, cores: 4 } });
  assert.equal(h.memory, { ok: false, error: "memory: ENOENT /proc/meminfo" });
  assert.equal(h.filesystems.ok && h.filesystems.value.map((f) => [f.mount, f.usedRatio]), [["/var/lib/mysql", 0.91]]);
  assert.equal(h.nics, { ok: true, value: [{ name: "eth0", operstate: "up", carrier: true, speedMbps: 10000 }, { name: "eth1", operstate: "down", carrier: null, speedMbps: null }] });
  assert.ok(h.bonds[0]!.state.ok);
  assert.equal(h.bonds[1]!.state, { ok: false, error: "/proc/net/bonding/bond1: ENOENT: /proc/net/bonding/bond1" });
  assert.equal(h.timeSync.state, "unsynced");
  assert.equal(hostAlarmInput("node1", h), { node: "node1", filesystems: [{ mount: "/var/lib/mysql", usedRatio: 0.91 }], memUsedRatio: null, timeSync: "unsynced" });
  assert.equal(bondAlarmInputs("node1", h), [{ node: "node1", bond: "bond0", mode: "active-backup", activeSlave: null, slaves: [{ name: "eth0", mii: "down", linkFailures: 2 }, { name: "eth1", mii: "down", linkFailures: 1 }] }]);
});

R("this machine, for real (figures)", async () => {
  const t0 = performance.now();
  const first = await readHost();
  const t1 = performance.now();
  const h = await readHost();
  const t2 = performance.now();
  assert.ok(h.memory.ok && h.memory.value.totalBytes > 0);
  assert.ok(h.filesystems.ok);
  assert.ok(h.nics.ok);
  console.log(
    `host: first read ${(t1 - t0).toFixed(0)} ms, next ${(t2 - t1).toFixed(0)} ms; cpu ${h.cpu.ok ? (h.cpu.value.usedRatio * 100).toFixed(0) + " %" : h.cpu.error}, ` +
      `mem ${h.memory.ok ? (h.memory.value.usedRatio * 100).toFixed(0) : "?"} %, ${h.filesystems.ok ? h.filesystems.value.length : 0} fs, ` +
      `${h.nics.ok ? h.nics.value.map((n) => `${n.name}:${n.operstate}`).join(" ") : "?"}, bonds ${h.bonds.length}, time ${h.timeSync.state} (${h.timeSync.detail.slice(0, 60)})`,
  );
  assert.ok(first.load.avg1 >= 0);
});
K("cpu load from os.cpus() counters: the busy share between two samples, never a process", async () => {
  const cpu = (user: number, sys: number, idle: number) => ({ model: "x", speed: 1, times: { user, nice: 0, sys, idle, irq: 0 } });
  const samples = [
    [cpu(100, 100, 800), cpu(100, 100, 800)], // since boot: 20 % busy
    [cpu(150, 100, 850), cpu(200, 100, 800)], // +50 busy +50 idle, +100 busy: 150 of 200
    [cpu(150, 100, 850), cpu(200, 100, 800)], // no ticks in between: the last figure again
    [cpu(150, 100, 950), cpu(200, 100, 900)], // all idle
  ];
  let i = 0;
  const load = cpuLoadSource(() => samples[i++]!);
  assert.is((await load()).currentLoad, 20);
  assert.is((await load()).currentLoad, 75);
  assert.is((await load()).currentLoad, 75);
  const last = await load();
  assert.is(last.currentLoad, 0);
  assert.is(last.cpus.length, 2);
});

B.run();
T.run();
R.run();
K.run();
