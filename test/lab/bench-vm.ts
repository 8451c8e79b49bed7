// make bench-vm (RUNS_VM=N, default 5): the VM figures of issue 14 (docs/vm.md "Figures").
//  1. In the lab with LAB_VMS=1 (test/lab/gen-vm.sh): N power-offs of the node that runs db (it
//     depends on MySQL) and app (on db). For each: ms from the power-off to each guest's first
//     acknowledged write on its new node, the part the guest's own boot takes (its kernel start to
//     that write: QEMU under TCG, no KVM here), and the acknowledged writes lost (the last "ack"
//     on the dead node against the "found" of the new boot). The node is powered on between runs.
//  2. On loopback with the agent's drivers (no lab): the guest writing back to back (no pause
//     between writes), 10 s without a mirror and 10 s with its disk mirrored write-blocking to a
//     qemu-storage-daemon: writes per second and the mean write latency, and their ratio.
//  3. On loopback: live migration of a 256 MB guest (its disk mirrored, handed over at
//     pre-switchover, as the agent does): total time and the guest's pause (QEMU's downtime).
// Needs root and the lab's packages. Run under the lab's lock:
//   flock /run/lock/bollard-lab.lock bash -c 'make bench-vm; test/lab/lab down; test/lab/lab check-clean'
process.env.LAB_VMS = "1";
// one power-off after another: the anti-flapping period (10 min by default) would keep a VM
// restarted by the previous run where it is
process.env.LAB_VM_ANTI_FLAP_MS = "1000";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../agent/env/env.ts";
import type { VmDef } from "../../agent/ha/vm-types.ts";
import { attachMirror, listenIncoming, migrateOut, waitReady } from "../../agent/resources/vm-mirror.ts";
import { StorageDaemon } from "../../agent/resources/vm-storage.ts";
import { VmProcess, readPid } from "../../agent/resources/vm.ts";
import { buildGuest, guestAppend, lastAck, readSerial, type Guest } from "./guest/guest.ts";
import { NODES, ackLastFailover, bollard, faultAt, healthy, lab, status, until } from "./ha-lab.ts";
import { ensureBundle } from "./helpers.ts";
import { boots, firstAck, leaderView, rows, serialOf } from "./vm-lab.ts";

const RUNS = Number(process.env.RUNS ?? 5);
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN; };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const g = buildGuest();
if ("error" in g) throw new Error(g.error);
const guest: Guest = g;
ensureBundle();

// ---- 1. power-off to the first acknowledged write on the new node -------------------------------

async function settled(): Promise<Record<string, { node: string; replica: string }>> {
  for (const n of NODES) if (!(await status(n))) await lab("power", n, "on").catch(() => undefined);
  return until("db and app running with replicas in sync, no fence pending", 240_000, async () => {
    const l = await leaderView();
    if (!l || Object.keys(l.s.committed.flags).some((k) => k.startsWith("fenc"))) return null;
    for (const n of NODES) if (!(await status(n))) return null;
    // db depends on MySQL: the data path healthy again, and the last MySQL failover acknowledged
    // (its anti-flapping would hold the next one back, and db with it)
    const m = await healthy("mysql");
    const st = m ? await status(m.leader) : null;
    if (!m || !st || (await ackLastFailover(m.leader, st))) return null;
    const rs = await rows();
    const out: Record<string, { node: string; replica: string }> = {};
    for (const vm of ["db", "app"]) {
      const r = rs?.find((x) => x.name === vm);
      if (!r || r.state !== "running" || !r.node || !r.replica || !r.inSync) return null;
      out[vm] = { node: r.node, replica: r.replica };
    }
    return out;
  }, 500);
}

const total: number[] = [], guestPart: number[] = [], ours: number[] = [];
let lost = 0, runsDone = 0;
await lab("down");
await lab("up");
try {
  console.log("run  node   vm   to     first_write_ms  guest_boot_ms  bollard_ms  acked  found  lost");
  for (let i = 1; i <= RUNS; i++) {
    const place = await settled();
    // db and app on one node (the bench's worst case: both restart at once, app after db)
    const h = place.db!.node;
    if (place.app!.node !== h) {
      await bollard("node1", `vm migrate app --to ${h}`, 300_000);
      await settled();
    }
    await until("db and app acknowledging writes", 30_000, async () => serialOf(h, "db").acks.length > 0 && serialOf(h, "app").acks.length > 0 || null, 200);
    const others = NODES.filter((n) => n !== h);
    const before = Object.fromEntries(NODES.map((n) => [n, boots(n, "db")]));
    const beforeApp = Object.fromEntries(NODES.map((n) => [n, boots(n, "app")]));
    const since = new Date(Date.now() - 50).toISOString();
    await lab("power", h, "off");
    const fault = faultAt(since, new RegExp(`${h} power off`));
    if (!fault) throw new Error(`no power-off of ${h} in the lab's fault log`);
    const [db, app] = await Promise.all([firstAck("db", others, before, 180_000), firstAck("app", others, beforeApp, 180_000)]);
    for (const [vm, w] of [["db", db], ["app", app]] as const) {
      if (!w) throw new Error(`${vm} did not write again on ${others.join(" or ")} within 180 s`);
      const acked = lastAck(serialOf(h, vm));
      const found = serialOf(w.node, vm).found.at(-1) ?? -1;
      const l = Math.max(0, acked - found);
      lost += l;
      const t = w.ackAt - fault.start, b = w.ackAt - w.bootAt;
      total.push(t); guestPart.push(b); ours.push(t - b);
      console.log(`${String(i).padEnd(5)}${h.padEnd(7)}${vm.padEnd(5)}${w.node.padEnd(7)}${String(t).padEnd(16)}${String(b).padEnd(15)}${String(t - b).padEnd(12)}${String(acked).padEnd(7)}${String(found).padEnd(7)}${l}`);
    }
    await lab("power", h, "on");
    runsDone++;
  }
} finally {
  await lab("down").catch(() => undefined);
}

// ---- 2 and 3: on loopback, the drivers alone ------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}
async function waitFor<T>(f: () => T | null | false | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

const root = mkdtempSync(join(tmpdir(), "bollard-bench-vm-"));
const pids = new Set<number>();
const def = (name: string, memoryMb: number, gapUs: number): VmDef => ({
  name, vcpus: 1, memoryMb, disks: [{ name: `${name}-d`, sizeMb: 16, image: null }], nics: [], group: null, priority: 0, dependsOn: [], autostart: true,
  kernel: { path: guest.kernel, initrd: guest.initrd, append: guestAppend(gapUs) },
});
const proc = (d: VmDef, node: string) => new VmProcess(d, { vmsDir: join(root, node), qemu: "qemu-system-x86_64", machine: "q35", log: quiet });
const acks = (vm: VmProcess) => readSerial(vm.paths.serialLog).acks.length;
let sd: StorageDaemon | null = null;
const rate: Record<string, number> = {};
let mig: { ms: number; downtimeMs: number; switchoverMs: number } | null = null;
let gapOk = false;
try {
  const port = await freePort();
  sd = new StorageDaemon({ vmsDir: join(root, "n2"), bin: "qemu-storage-daemon", address: "127.0.0.1", port, log: quiet });
  await sd.ensure();
  pids.add(readPid(join(root, "n2", "storage.pid"))!);
  /** acknowledged writes per second over 10 s, after the guest's first 20 */
  const measure = async (vm: VmProcess) => {
    await waitFor(() => acks(vm) >= 20, 90_000, "20 acknowledged writes");
    const n0 = acks(vm), t0 = Date.now();
    await sleep(10_000);
    return ((acks(vm) - n0) * 1000) / (Date.now() - t0);
  };
  for (const mirrored of [false, true]) {
    const d = def(mirrored ? "lat-m" : "lat-p", 128, 0);
    const vm = proc(d, "n1");
    if (mirrored) await sd.export(d);
    await vm.start({ accel: "tcg", paused: true });
    pids.add(vm.pid!);
    if (mirrored) { await attachMirror(vm.need(), d, "127.0.0.1", port); await waitReady(vm.need(), d, "n2", 30_000); }
    await vm.cont();
    rate[mirrored ? "mirror" : "plain"] = await measure(vm);
    await vm.kill();
    if (mirrored) await sd.unexport(d);
  }
  // 3. a 256 MB guest's live migration, its disk mirrored to the target's copy
  const d = def("mig256", 256, 20_000);
  await sd.export(d);
  const src = proc(d, "n1");
  await src.start({ accel: "tcg", paused: true });
  pids.add(src.pid!);
  await attachMirror(src.need(), d, "127.0.0.1", port);
  await waitReady(src.need(), d, "n2", 30_000);
  await src.cont();
  await waitFor(() => acks(src) >= 20, 90_000, "20 acknowledged writes");
  const tgt = proc(d, "n2");
  await tgt.start({ accel: "tcg", incoming: true });
  pids.add(tgt.pid!);
  const mport = await freePort();
  await listenIncoming(tgt.need(), "127.0.0.1", mport);
  mig = await migrateOut(src.need(), d, "127.0.0.1", mport);
  const last = lastAck(readSerial(src.paths.serialLog));
  await sd.unexport(d);
  await tgt.cont();
  await waitFor(() => readSerial(tgt.paths.serialLog).acks.length >= 5, 20_000, "the migrated guest's writes");
  gapOk = readSerial(tgt.paths.serialLog).acks[0] === last + 1;
  await src.quit().catch(() => undefined);
  await tgt.kill();
} finally {
  sd?.close();
  for (const p of pids) { try { process.kill(p, "SIGKILL"); } catch { /* gone */ } }
  rmSync(root, { recursive: true, force: true });
}

const r = (x: number) => Math.round(x);
const lat = (w: number) => (w > 0 ? (1000 / w).toFixed(2) : "n/a");
console.log("");
console.log(`power-off -> first acknowledged guest write on the new node, ${runsDone} runs x 2 VMs (db, app after db), ms:`);
console.log(`  total   p50 ${r(pct(total, 50))}  p99 ${r(pct(total, 99))}`);
console.log(`  guest boot (TCG, kernel start to first write)   p50 ${r(pct(guestPart, 50))}  p99 ${r(pct(guestPart, 99))}`);
console.log(`  bollard (detection, fence proof, MySQL first for db, QEMU start)   p50 ${r(pct(ours, 50))}  p99 ${r(pct(ours, 99))}`);
console.log(`acknowledged guest writes lost: ${lost}`);
console.log(`guest writes back to back (TCG): without a mirror ${rate.plain?.toFixed(1)}/s (${lat(rate.plain ?? 0)} ms each), mirrored write-blocking ${rate.mirror?.toFixed(1)}/s (${lat(rate.mirror ?? 0)} ms each): latency ratio ${rate.plain && rate.mirror ? (rate.plain / rate.mirror).toFixed(2) : "n/a"}`);
console.log(`live migration of a 256 MB guest (disk mirrored, loopback): ${mig?.ms} ms, pause (downtime) ${mig?.downtimeMs} ms, disk handover ${mig?.switchoverMs} ms; counter went on without a gap: ${gapOk}`);
console.log(`vm: runs=${runsDone} first_write_p50=${r(pct(total, 50))} first_write_p99=${r(pct(total, 99))} guest_boot_p50=${r(pct(guestPart, 50))} bollard_p50=${r(pct(ours, 50))} bollard_p99=${r(pct(ours, 99))} lost_acked_writes=${lost} mirror_latency_ratio=${rate.plain && rate.mirror ? (rate.plain / rate.mirror).toFixed(2) : "n/a"} migrate256_ms=${mig?.ms} migrate256_pause_ms=${mig?.downtimeMs}`);
process.exit(lost === 0 && gapOk ? 0 : 1);
