// Incremental rebuild of a lost mirror (issue 14 §2) against real QEMU and qemu-storage-daemon on
// loopback (agent/resources/vm-rebuild.ts, vm-mirror.ts): a 128 MB disk of random data mirrored
// write-blocking to a replica; the replica's daemon is killed (its node lost), the mirror yanked,
// the guest's device written on; the daemon comes back with the same file and the mirror is
// rebuilt from the dirty bitmap, with writes during the rebuild: the replica equals the source
// byte for byte, and only the dirty blocks were sent. A replica file made anew gets a full copy,
// said so. Then the lab guest writing its fsync'd counter through a loss and an incremental
// rebuild: after kill -9 the replica holds every acknowledged value. Prints full vs incremental
// time and bytes.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { VmDef } from "../../agent/ha/vm-types.ts";
import { attachMirror, detachMirror, jobs, mirrorFacts, waitReady } from "../../agent/resources/vm-mirror.ts";
import { diskBitmaps, markInSync } from "../../agent/resources/vm-rebuild.ts";
import { takeBackup } from "../../agent/resources/vm-backup.ts";
import { StorageDaemon } from "../../agent/resources/vm-storage.ts";
import { readPid, type VmProcess } from "../../agent/resources/vm.ts";
import { diskCounter, lastAck, readSerial } from "../lab/guest/guest.ts";
import { Pids, ackCount, deviceWrite, freePort, quiet, sleep, until, vmDef, vmProc, guestUnlessSkipped } from "./vm-harness.ts";

const { skip, guest } = guestUnlessSkipped();
const root = mkdtempSync(join(tmpdir(), "bollard-vm-rebuild-"));
const pids = new Pids();
const figures: string[] = [];
const s = suite("mirror rebuilt incrementally from a dirty bitmap (real QEMU)");

if (skip) {
  console.log(`vm-rebuild: skipped: ${skip}`);
  s.skip("real QEMU", () => {});
} else {
  let port = 0;
  let sd: StorageDaemon;
  const newDaemon = () => new StorageDaemon({ vmsDir: join(root, "n2"), bin: "qemu-storage-daemon", address: "127.0.0.1", port, log: quiet });
  const up = async (d: VmDef) => { sd = newDaemon(); await sd.ensure(); pids.track(readPid(join(root, "n2", "storage.pid"))); await sd.export(d); };
  const lose = async (vm: VmProcess, d: VmDef) => {
    process.kill(readPid(join(root, "n2", "storage.pid"))!, "SIGKILL");
    sd.close();
    await sleep(200);
    await detachMirror(vm.need(), d, { yank: true });
  };
  const copyOf = (d: VmDef) => sd.copies([d], [d.name])[d.name] ?? null;
  const same = (d: VmDef) => spawnSync("cmp", ["-s", join(root, "n1", d.name, `${d.name}-d.raw`), join(root, "n2", d.name, `${d.name}-d.raw`)]).status === 0;

  s.before(async () => { port = await freePort(); });

  s("lost, written, back: only the dirty blocks are copied; the replica equals the source; a file made anew: a full copy, said so", async () => {
    const MB = 128;
    const img = join(root, "img.raw");
    writeFileSync(img, randomBytes(MB * 1024 * 1024));
    const d = vmDef(guest, "r1", { sizeMb: MB, image: img });
    await up(d);
    const vm = vmProc(root, d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    pids.track(vm.pid);
    const disk = d.disks[0]!.name;
    // the first copy: full (no bitmap yet)
    let t0 = performance.now();
    const first = await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: copyOf(d) });
    assert.is(first.mode, "full");
    assert.match(first.why, /no dirty bitmap covers/);
    await waitReady(vm.need(), d, "n2", 60_000);
    const fullMs = performance.now() - t0;
    const fullBytes = (await jobs(vm.need()))[0]!.len;
    assert.ok(same(d), "in sync after the first copy");
    // not marked in sync yet: a loss now would need a full copy
    await markInSync(vm.need(), d, "n2", copyOf(d)!);
    await deviceWrite(vm, disk, "write -P 0x11 1M 64k");
    await lose(vm, d);
    // the guest writes on without its replica: 3 areas, 320 KiB at 64 KiB granularity
    await deviceWrite(vm, disk, "write -P 0x22 5M 128k");
    await deviceWrite(vm, disk, "write -P 0x33 20M 4k");
    assert.not.ok(same(d), "the replica is behind");
    await up(d);
    t0 = performance.now();
    const inc = await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: copyOf(d) });
    assert.is(inc.mode, "incremental", inc.why);
    // writes while the rebuild runs: old block first (copy-before-write), then the mirror's new one
    await deviceWrite(vm, disk, "write -P 0x44 5M 4k");
    await deviceWrite(vm, disk, "write -P 0x55 30M 4k");
    await waitReady(vm.need(), d, "n2", 60_000);
    const incMs = performance.now() - t0;
    assert.is(inc.dirtyBytes, 64 * 1024 * 4, "the bitmap lists the 64 KiB areas written since the mirror began (1M, 5M x2, 20M)");
    await deviceWrite(vm, disk, "write -P 0x66 9M 4k");
    assert.ok(same(d), "the replica equals the source after the incremental rebuild");
    figures.push(`${MB} MB disk of random data: full copy ${Math.round(fullMs)} ms, ${fullBytes} bytes; incremental rebuild ${Math.round(incMs)} ms, ${inc.dirtyBytes} bytes`);
    // a VM backup beside the mirror and the concluded rebuild job (both on the disk's file node)
    const bk = await takeBackup(vm.need(), { def: d, paths: vm.paths, root: join(root, "bk"), node: "n1", storedOn: "n3", full: false });
    assert.is(bk.manifest.bytes, MB * 1024 * 1024);
    assert.ok(same(d), "the mirror is untouched by the backup");
    // the bitmap now holds only what was written since the rebuild began (on-success)
    const bm = (await diskBitmaps(vm.need(), d))[0]!.bitmaps.find((b) => b.name.startsWith("bollard.n2."))!;
    assert.ok(bm.count > 0 && bm.count < inc.dirtyBytes!, `bitmap trimmed to ${bm.count} bytes`);
    // the replica's file made anew (its node lost its disk): not the copy the bitmap covers
    await lose(vm, d);
    rmSync(join(root, "n2", "r1", `${disk}.raw`));
    await up(d);
    t0 = performance.now();
    const full = await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: copyOf(d) });
    assert.is(full.mode, "full");
    assert.match(full.why, /not the one the dirty bitmap covers/);
    await waitReady(vm.need(), d, "n2", 60_000);
    figures.push(`full rebuild onto a new file: ${Math.round(performance.now() - t0)} ms`);
    assert.ok(same(d), "the replica equals the source after the full rebuild");
    // an unknown copy: full
    await detachMirror(vm.need(), d, { yank: false });
    assert.is((await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: null })).mode, "full");
    await waitReady(vm.need(), d, "n2", 60_000);
    await vm.kill();
    await sd.unexport(d);
    sd.close();
  });

  s("the guest's fsync'd counter through a loss and an incremental rebuild: kill -9, the replica holds every acknowledged value", async () => {
    const d = vmDef(guest, "r2", { gapUs: 20_000 });
    await up(d);
    const vm = vmProc(root, d, "n1");
    await vm.start({ accel: "tcg", paused: true });
    pids.track(vm.pid);
    await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: copyOf(d) });
    await waitReady(vm.need(), d, "n2", 20_000);
    await markInSync(vm.need(), d, "n2", copyOf(d)!);
    await vm.cont();
    await until(() => ackCount(vm) >= 20, 60_000, "20 acknowledged writes");
    await lose(vm, d);
    const n = ackCount(vm);
    await until(() => ackCount(vm) >= n + 20, 20_000, "writes without the replica");
    await up(d);
    const inc = await attachMirror(vm.need(), d, "127.0.0.1", port, { node: "n2", copy: copyOf(d) });
    assert.is(inc.mode, "incremental", inc.why);
    await waitReady(vm.need(), d, "n2", 20_000);
    assert.is((await mirrorFacts(vm.need(), d, "n2"))?.state, "ready");
    const m = ackCount(vm);
    await until(() => ackCount(vm) >= m + 20, 20_000, "writes after the rebuild");
    process.kill(vm.pid!, "SIGKILL");
    await sleep(300);
    const acked = lastAck(readSerial(vm.paths.serialLog));
    const replica = diskCounter(join(root, "n2", "r2", "r2-d.raw"));
    assert.ok(replica >= acked, `replica ${replica} >= acknowledged ${acked}`);
    await sd.unexport(d);
    sd.close();
  });

  s.after(() => {
    pids.killAll();
    rmSync(root, { recursive: true, force: true });
    if (figures.length) console.log(`\nfigures:\n  ${figures.join("\n  ")}`);
  });
}
s.run();
