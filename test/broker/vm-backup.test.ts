// VM disk backups against real QEMU (issue 23 §5; agent/resources/vm-backup.ts): the lab guest
// writing its fsync'd counter on a 128 MB disk of random data; a full backup and an incremental
// one through the VM's second QMP monitor (the agent keeps the first), each one QMP transaction
// with its dirty bitmap; more writes; the chain restored with qemu-img: the disk holds the
// counter as of the incremental backup and the rest of the data byte for byte. The busybox guest
// has no guest agent: the manifest says crash-consistent. Prints the backups' time and size and
// the guest's write rate during the full backup against without it.
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { restoreChain } from "../../agent/resources/vm-backup-manifest.ts";
import { readBackups, restoreDisks, takeBackup } from "../../agent/resources/vm-backup.ts";
import { Qmp } from "../../agent/resources/qmp.ts";
import { diskCounter, lastAck, readSerial } from "../lab/guest/guest.ts";
import { Pids, ackCount, sleep, until, vmDef, vmProc, guestUnlessSkipped } from "./vm-harness.ts";

const { skip, guest } = guestUnlessSkipped();
const root = mkdtempSync(join(tmpdir(), "bollard-vm-backup-"));
const pids = new Pids();
const figures: string[] = [];
const s = suite("VM backups with dirty bitmaps (real QEMU)");

/** bytes of a file from `from` on */
function tail(file: string, from: number, len: number): Buffer {
  const fd = openSync(file, "r");
  try { const b = Buffer.alloc(len); readSync(fd, b, 0, len, from); return b; } finally { closeSync(fd); }
}

if (skip) {
  console.log(`vm-backup: skipped: ${skip}`);
  s.skip("real QEMU", () => {});
} else {
  s("full, then incremental, of a running guest; restored: the counter as of the backup, the data byte for byte", async () => {
    const MB = 128;
    const img = join(root, "img.raw");
    writeFileSync(img, randomBytes(MB * 1024 * 1024));
    const d = vmDef(guest, "b1", { sizeMb: MB, image: img, gapUs: 0 });
    const vm = vmProc(root, d, "n1");
    await vm.start({ accel: "tcg" });
    pids.track(vm.pid);
    await until(() => ackCount(vm) >= 20, 60_000, "20 acknowledged writes");
    const ctl = await Qmp.connect(vm.paths.ctl, { timeoutMs: 5000 });
    const target = join(root, "n2-backups");
    const req = { def: d, paths: vm.paths, root: target, node: "n1", storedOn: "n2", qemuVersion: ctl.version };
    // the guest's write rate without a backup, then during the full one
    let n0 = ackCount(vm);
    let t = performance.now();
    await sleep(3000);
    const idleRate = (ackCount(vm) - n0) / ((performance.now() - t) / 1000);
    // three full backups back to back: a window long enough to count the guest's writes in
    n0 = ackCount(vm);
    t = performance.now();
    const first = await takeBackup(ctl, { ...req, full: false, agentMs: 300 });
    await takeBackup(ctl, { ...req, full: true, agentMs: 300 });
    const full = await takeBackup(ctl, { ...req, full: true, agentMs: 300 });
    const busyMs = performance.now() - t;
    const busyRate = (ackCount(vm) - n0) / (busyMs / 1000);
    assert.is(first.plan.kind, "full");
    assert.match(first.plan.why, /no earlier backup/);
    assert.match(full.plan.why, /--full/);
    assert.is(full.plan.kind, "full");
    assert.is(full.manifest.parent, null);
    assert.is(full.manifest.detail.consistency, "crash-consistent");
    assert.match(full.manifest.detail.consistencyWhy, /no guest agent/);
    assert.ok(full.manifest.bytes >= MB * 1024 * 1024 * 0.99, `the full backup copied ${full.manifest.bytes} bytes`);
    await until(() => ackCount(vm) >= n0 + 40, 20_000, "writes after the full backup");
    const before = lastAck(readSerial(vm.paths.serialLog));
    const inc = await takeBackup(ctl, { ...req, full: false, agentMs: 300 });
    const after = lastAck(readSerial(vm.paths.serialLog));
    assert.is(inc.plan.kind, "incremental", inc.plan.why);
    assert.is(inc.manifest.parent, full.manifest.id);
    assert.ok(inc.manifest.bytes > 0 && inc.manifest.bytes <= 1024 * 1024, `the incremental backup copied ${inc.manifest.bytes} bytes (the counter's sectors)`);
    figures.push(`${MB} MB disk: full backup ${full.ms} ms, ${full.manifest.bytes} bytes; incremental ${inc.ms} ms, ${inc.manifest.bytes} bytes`);
    figures.push(`guest writes (fsync'd, back to back): ${idleRate.toFixed(0)}/s without a backup, ${busyRate.toFixed(0)}/s during three full backups back to back (${Math.round(busyMs)} ms): latency ratio ${(idleRate / Math.max(busyRate, 0.1)).toFixed(2)}`);
    // more writes after the backup: the restore must not have them
    const m = ackCount(vm);
    await until(() => ackCount(vm) >= m + 40, 20_000, "writes after the incremental backup");
    // the list: both, good; a directory with a bad manifest is listed as bad, never as good
    mkdirSync(join(target, "vm", "b1-bogus"), { recursive: true });
    writeFileSync(join(target, "vm", "b1-bogus", "manifest.json"), JSON.stringify({ ...inc.manifest, id: "b1-bogus", state: "done" }));
    const listed = readBackups(target);
    assert.equal(listed.manifests.map((x) => x.id).sort(), [first.manifest.id, ...listed.manifests.filter((x) => x.parent === null && x.id !== first.manifest.id).map((x) => x.id), inc.manifest.id].sort());
    assert.is(listed.manifests.length, 4);
    assert.equal(listed.bad, [{ id: "b1-bogus", error: 'state: expected complete, verified or bad, got "done"' }]);
    // a third one with the bogus directory in the way: still incremental on top of inc (its bitmap)
    const third = await takeBackup(ctl, { ...req, full: false, agentMs: 300 });
    assert.is(third.manifest.parent, inc.manifest.id);
    ctl.close();
    const last = lastAck(readSerial(vm.paths.serialLog));
    await vm.kill();
    // restore the incremental one (chain: full <- inc) into a new file
    const chain = restoreChain(listed.manifests, inc.manifest.id);
    assert.ok(chain.ok);
    if (!chain.ok) return;
    assert.equal(chain.chain.map((x) => x.id), [full.manifest.id, inc.manifest.id]);
    const out = join(root, "restored.raw");
    const r = restoreDisks(target, inc.manifest, () => out);
    figures.push(`restore of full + incremental (${MB} MB raw): ${r.ms} ms`);
    const c = diskCounter(out);
    assert.ok(c >= before && c <= after + 1, `restored counter ${c} is the one as of the backup (acknowledged ${before}..${after} around it)`);
    assert.ok(c < last, `not the later writes (${last})`);
    assert.ok(tail(out, 1024 * 1024, (MB - 1) * 1024 * 1024).equals(tail(img, 1024 * 1024, (MB - 1) * 1024 * 1024)), "the data beyond the counter is the image's, byte for byte");
    // the full one alone: an older counter
    restoreDisks(target, full.manifest, () => out);
    assert.ok(diskCounter(out) < before, "the full backup holds an older counter");
    void readFileSync;
  });

  s("a new QEMU (no bitmap since the last backup): the next one is full, and says why", async () => {
    const d = vmDef(guest, "b1", { sizeMb: 128, gapUs: 0 });
    const vm = vmProc(root, d, "n1");
    await vm.start({ accel: "tcg" });
    pids.track(vm.pid);
    const ctl = await Qmp.connect(vm.paths.ctl, { timeoutMs: 5000 });
    const b = await takeBackup(ctl, { def: d, paths: vm.paths, root: join(root, "n2-backups"), node: "n1", storedOn: "n2", full: false, agentMs: 300 });
    assert.is(b.plan.kind, "full");
    assert.match(b.plan.why, /no dirty bitmap on b1-d since b1-/);
    ctl.close();
    await vm.kill();
  });

  s.after(() => {
    pids.killAll();
    rmSync(root, { recursive: true, force: true });
    if (figures.length) console.log(`\nfigures:\n  ${figures.join("\n  ")}`);
  });
}
s.run();
