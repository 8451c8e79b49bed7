// Real QEMU on loopback (issue 14): the lab's tiny guest (test/lab/guest) under TCG, driven by
// the agent's drivers (agent/resources/vm.ts, vm-storage.ts, vm-mirror.ts, kvm-probe.ts):
// start, pause, continue, stop with a deadline, kill, found again by a new driver; its disk
// mirrored to a qemu-storage-daemon on 127.0.0.1 with blockdev-mirror write-blocking, kill -9
// of the QEMU and the replica holds every acknowledged counter value, and a restart on the
// replica's copy goes on from there; a hung target stops the guest's writes until the mirror is
// yanked; a target that comes back is reconnected; a live migration to the replica's copy.
// Every process is stopped by its PID; the temporary directory is removed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { kvmPrecheck, probeKvm } from "../../agent/resources/kvm-probe.ts";
import { attachMirror, detachMirror, incomingDone, listenIncoming, migrateOut, mirrorFacts, waitReady } from "../../agent/resources/vm-mirror.ts";
import { StorageDaemon } from "../../agent/resources/vm-storage.ts";
import { VmProcess, alive, readPid } from "../../agent/resources/vm.ts";
import { diskCounter, lastAck, readSerial } from "../lab/guest/guest.ts";
import { Pids, ackCount as acks, freePort, quiet, sleep, until, vmDef, vmProc, guestUnlessSkipped } from "./vm-harness.ts";

const { skip, guest } = guestUnlessSkipped();
const root = mkdtempSync(join(tmpdir(), "bollard-vm-qemu-"));
const pids = new Pids();
const track = (p: number | null) => pids.track(p);
const def = (name: string, gapUs = 20_000) => vmDef(guest, name, { gapUs });
const proc = (d: ReturnType<typeof def>, node: string) => vmProc(root, d, node);

function cleanup(): void {
  pids.killAll();
  rmSync(root, { recursive: true, force: true });
}

const P = suite("QEMU process (resources/vm.ts)");

if (skip) {
  console.log(`vm-qemu: skipped: ${skip}`);
  P.skip("real QEMU", () => {});
} else {
  P("KVM only when a probe guest boots; here the reason it is not used is said", async () => {
    const r = await probeKvm({ qemu: "qemu-system-x86_64", probe: null });
    console.log(`  accel ${r.accel}: ${r.why}`);
    if (kvmPrecheck()) assert.is(r.accel, "tcg");
    assert.ok(r.why.length > 10);
  });

  P("start (TCG), the guest boots and acknowledges writes; pause stops them, cont resumes them", async () => {
    const vm = proc(def("p1"), "n1");
    const t0 = Date.now();
    await vm.start({ accel: "tcg" });
    track(vm.pid);
    assert.is(await vm.status(), "running");
    await until(() => acks(vm) >= 5, 60_000, "the guest's first acknowledged writes");
    console.log(`  boot to the 5th acknowledged write: ${Date.now() - t0} ms`);
    await vm.pause();
    assert.is(await vm.status(), "paused");
    await sleep(200);
    const n = acks(vm);
    await sleep(600);
    assert.is(acks(vm), n, "no write while paused");
    await vm.cont();
    await until(() => acks(vm) > n, 5000, "writes after cont");
    // a new driver (an agent restart: QMP takes one client at a time) finds the running QEMU by its pid file
    vm.qmp!.close();
    const again = proc(def("p1"), "n1");
    assert.ok(await again.adopt(), "adopted");
    assert.is(again.inst, vm.inst);
    assert.is(await again.status(), "running");
    again.qmp!.close();
    assert.ok(await vm.adopt());
    // the busybox guest has no ACPI daemon: system_powerdown goes unheard, the deadline kills it
    const pid = vm.pid!;
    const how = await vm.stop(800);
    assert.match(how, /did not power off within 800 ms: killed QEMU pid \d+; gone/);
    assert.not.ok(vm.running());
    assert.not.ok(alive(pid), "the process is gone");
    // started again: it goes on from what its disk holds
    const before = lastAck(readSerial(vm.paths.serialLog));
    await vm.start({ accel: "tcg" });
    track(vm.pid);
    await until(() => readSerial(vm.paths.serialLog).found.length >= 2, 60_000, "the second boot's found line");
    const found = readSerial(vm.paths.serialLog).found;
    assert.ok(found[1]! >= before, `found ${found[1]} >= last ack ${before}`);
    assert.match(await vm.kill(), /killed QEMU pid \d+; gone/);
  });

}
P.run();

const M = suite("mirror to qemu-storage-daemon on loopback (resources/vm-mirror.ts, vm-storage.ts)");

if (!skip) {
  let port = 0;
  let sd: StorageDaemon;
  const spid = () => readPid(join(root, "n2", "storage.pid"))!;
  const newDaemon = () => new StorageDaemon({ vmsDir: join(root, "n2"), bin: "qemu-storage-daemon", address: "127.0.0.1", port, log: quiet });

  M.before(async () => {
    port = await freePort();
    sd = newDaemon();
  });

  M("kill -9 of a QEMU mirrored write-blocking: the replica holds every acknowledged value; a restart there goes on from it", async () => {
    const d = def("m1");
    await sd.ensure();
    track(spid());
    await sd.export(d);
    assert.equal(await sd.exported([d]), ["m1"]);
    const vm = proc(d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    track(vm.pid);
    assert.is(await vm.status(), "prelaunch");
    await attachMirror(vm.need(), d, "127.0.0.1", port);
    await waitReady(vm.need(), d, "n2", 20_000);
    assert.equal(await mirrorFacts(vm.need(), d, "n2"), { to: "n2", state: "ready", done: 1 });
    await vm.cont();
    await until(() => acks(vm) >= 40, 60_000, "40 acknowledged writes");
    process.kill(vm.pid!, "SIGKILL");
    await sleep(300);
    const acked = lastAck(readSerial(vm.paths.serialLog));
    const replica = diskCounter(join(root, "n2", "m1", "m1-d.raw"));
    console.log(`  kill -9 after ${acked} acknowledged writes: the replica holds ${replica}`);
    assert.ok(replica >= acked, `replica ${replica} >= acknowledged ${acked}`);
    // the replica's node runs it now: it stops serving the disk, then boots from it
    await sd.unexport(d);
    assert.equal(await sd.exported([d]), []);
    const there = proc(d, "n2");
    await there.start({ accel: "tcg" });
    track(there.pid);
    await until(() => readSerial(there.paths.serialLog).found.length >= 1, 60_000, "the boot on the replica");
    const found = readSerial(there.paths.serialLog).found[0]!;
    assert.ok(found >= acked, `found ${found} >= acknowledged ${acked}`);
    await there.kill();
  });

  M("a hung target holds the guest's writes (none acknowledged) until the mirror is yanked", async () => {
    const d = def("m2");
    await sd.export(d);
    const vm = proc(d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    track(vm.pid);
    await attachMirror(vm.need(), d, "127.0.0.1", port);
    await waitReady(vm.need(), d, "n2", 20_000);
    await vm.cont();
    await until(() => acks(vm) >= 10, 60_000, "10 acknowledged writes");
    process.kill(spid(), "SIGSTOP");
    try {
      await sleep(300);
      const n = acks(vm);
      await sleep(1500);
      assert.is(acks(vm), n, "no write acknowledged while the target hangs");
      const t0 = Date.now();
      await detachMirror(vm.need(), d, { yank: true });
      console.log(`  yank and the end of the mirror: ${Date.now() - t0} ms`);
      assert.is(await mirrorFacts(vm.need(), d, "n2"), null);
      await until(() => acks(vm) > n + 5, 5000, "writes after the yank");
    } finally {
      process.kill(spid(), "SIGCONT");
    }
    await vm.kill();
    await sd.unexport(d);
  });

  M("a target whose daemon dies and comes back: writes wait, then resume on the reconnected mirror", async () => {
    const d = def("m3");
    await sd.export(d);
    const vm = proc(d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    track(vm.pid);
    await attachMirror(vm.need(), d, "127.0.0.1", port);
    await waitReady(vm.need(), d, "n2", 20_000);
    await vm.cont();
    await until(() => acks(vm) >= 10, 60_000, "10 acknowledged writes");
    process.kill(spid(), "SIGKILL");
    sd.close();
    await sleep(300);
    const n = acks(vm);
    await sleep(1000);
    assert.is(acks(vm), n, "no write acknowledged while the target is gone");
    sd = newDaemon();
    await sd.ensure();
    track(spid());
    await sd.export(d);
    const t0 = Date.now();
    await until(() => acks(vm) > n + 3, 20_000, "writes after the target came back");
    console.log(`  writes resumed ${Date.now() - t0} ms after the target was back`);
    assert.is((await mirrorFacts(vm.need(), d, "n2"))?.state, "ready");
    process.kill(vm.pid!, "SIGKILL");
    await sleep(300);
    assert.ok(diskCounter(join(root, "n2", "m3", "m3-d.raw")) >= lastAck(readSerial(vm.paths.serialLog)));
    await sd.unexport(d);
  });

  M("live migration to the replica's copy: switchover after the mirror's end; the target goes on from the source's last write", async () => {
    const d = def("m4");
    await sd.export(d);
    const vm = proc(d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    track(vm.pid);
    await attachMirror(vm.need(), d, "127.0.0.1", port);
    await waitReady(vm.need(), d, "n2", 20_000);
    await vm.cont();
    await until(() => acks(vm) >= 20, 60_000, "20 acknowledged writes");
    const tgt = proc(d, "n2");
    await tgt.start({ accel: "tcg", incoming: true });
    track(tgt.pid);
    assert.is(await tgt.status(), "inmigrate");
    const mport = await freePort();
    await listenIncoming(tgt.need(), "127.0.0.1", mport);
    const r = await migrateOut(vm.need(), d, "127.0.0.1", mport);
    console.log(`  migration of a 128 MB guest: ${r.ms} ms, downtime ${r.downtimeMs} ms (switchover ${r.switchoverMs} ms)`);
    assert.is(await vm.status(), "postmigrate");
    // the source says completed once it has sent everything; the target finishes loading a moment
    // later (the agent polls it twice a second): asked once at once, it raced (make test, loaded)
    let done = false;
    for (const end = Date.now() + 5000; !done && Date.now() < end; await sleep(50)) done = await incomingDone(tgt.need());
    assert.ok(done, "the target's incoming migration completed");
    const last = lastAck(readSerial(vm.paths.serialLog));
    await sd.unexport(d);
    await tgt.cont();
    await until(() => readSerial(tgt.paths.serialLog).acks.length >= 5, 10_000, "the target's writes");
    assert.is(readSerial(tgt.paths.serialLog).acks[0], last + 1, "the guest goes on where it was");
    await vm.quit();
    process.kill(tgt.pid!, "SIGKILL");
    await sleep(300);
    assert.ok(diskCounter(join(root, "n2", "m4", "m4-d.raw")) >= lastAck(readSerial(tgt.paths.serialLog)));
  });

  M.after(() => {
    sd?.close();
    cleanup();
  });
} else {
  M.after(() => cleanup());
}
M.run();


