// Scheduled VM backups against real QEMU (issue 23 items 5, 6; agent/runtime/vm-backup-jobs.ts):
// the lab guest writing its counter on a 32 MB disk (the lab's size), the runtime piece ticking
// with every_s 60 on a clock of its own moved on by a period at a time, full_every 2, over the QEMU's own QMP connection (the agent's):
//   - the schedule: full, incremental, incremental, then full again; each an event, each claimed
//     from the VM runtime and released;
//   - retention (7 daily: the newest of the day and its chain): the first chain pruned once the
//     second full one is there, the newest backup's chain (full <- inc <- inc) kept, restorable;
//   - verification: the newest verified (checksums, qemu-img check, the chain restored to 32 MB);
//     an operator's request (backup-now:vm:app) taken at once; a byte flipped in its image: the
//     verification marks it bad, `vm restore`'s chain check refuses it, the next backup is full,
//     and the backup-verify-failed alarm (subject vm:app) is raised.
// Prints the backups' time and size, the verification's time and the CPU a full backup costs.
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { VmBackupConfig } from "../../agent/config/vm-schema.ts";
import { isGood, listBackups } from "../../agent/backup/manifest.ts";
import { requestFlag } from "../../agent/backup/vm-schedule.ts";
import { restoreChain, type VmBackupManifest } from "../../agent/resources/vm-backup-manifest.ts";
import { readBackups } from "../../agent/resources/vm-backup.ts";
import { readVmJobs } from "../../agent/backup/vm-jobs-file.ts";
import { VmBackupJobs } from "../../agent/runtime/vm-backup-jobs.ts";
import { Pids, ackCount, guestUnlessSkipped, quiet, until, vmDef, vmProc } from "./vm-harness.ts";

const { skip, guest } = guestUnlessSkipped();
const root = mkdtempSync(join(tmpdir(), "bollard-vm-bksched-"));
const pids = new Pids();
const figures: string[] = [];
const s = suite("scheduled VM backups, retention, verification (real QEMU)");

/** CPU seconds a process has used (utime + stime, /proc/<pid>/stat) */
function cpuS(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const x = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(x[11]) + Number(x[12])) / 100;
}

if (skip) {
  console.log(`vm-backup-schedule: skipped: ${skip}`);
  s.skip("real QEMU", () => {});
} else {
  s("the schedule, retention over the chain, verification good and bad", async () => {
    const MB = 32;
    // random data on the disk (beyond the guest's counter): a full backup is 32 MB on the target
    const image = join(root, "img.raw");
    writeFileSync(image, randomBytes(MB * 1024 * 1024));
    const d = vmDef(guest, "app", { sizeMb: MB, gapUs: 0, image });
    const vm = vmProc(root, d, "n1");
    await vm.start({ accel: "tcg" });
    pids.track(vm.pid);
    await until(() => ackCount(vm) >= 10, 60_000, "10 acknowledged writes");
    const dir = join(root, "n2-backups");
    const backup: VmBackupConfig = { dir, node: "n2", everyS: 60, fullEvery: 2, retention: { daily: 7, weekly: 4 }, verifyEveryS: 0 };
    const events: string[] = [];
    const claims: string[] = [];
    const flags: Record<string, string> = {};
    let offset = 0;
    const jobs = new VmBackupJobs({
      backup, self: "n1", log: quiet, event: (detail) => events.push(detail),
      vms: () => [{ name: "app", def: d, paths: vm.paths, qmp: vm.qmp, state: vm.running() ? "running" : null, placedHere: true, busy: null, migration: null }],
      flags: () => flags,
      claim: (v) => { claims.push(`claim ${v}`); return true; },
      release: (v) => { claims.push(`release ${v}`); },
      scratch: join(root, "scratch"), now: () => Date.now() + offset, agentMs: 300,
    });
    const list = () => readBackups(dir).manifests.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    /** the jobs' clock a period on, then one tick */
    const later = async () => { offset += 61_000; await jobs.tick(); };

    // the schedule: every 60 s (the jobs' clock moved on), a full one every 2 incrementals
    const vmCpu0 = cpuS(vm.pid!), me0 = process.cpuUsage();
    let t = performance.now();
    await jobs.tick();
    const fullMs = performance.now() - t;
    const vmCpu = cpuS(vm.pid!) - vmCpu0, meCpu = process.cpuUsage(me0);
    assert.is(list().length, 1, "the first tick takes the first backup (none yet)");
    await jobs.tick();
    assert.is(list().length, 1, "not due again within every_s");
    await later();
    await later();
    const [f1, i1, i2] = list() as [VmBackupManifest, VmBackupManifest, VmBackupManifest];
    assert.equal([f1.parent, i1.parent, i2.parent], [null, f1.id, i1.id], "full, inc, inc: the newest's parents kept by retention");
    assert.ok(f1.bytes >= MB * 1024 * 1024 * 0.99, `the full one copied ${f1.bytes} bytes`);
    assert.ok(i1.bytes > 0 && i1.bytes < MB * 1024 * 1024 / 4, `the incremental one copied ${i1.bytes} bytes`);
    assert.equal(f1.detail.sums, "SHA256SUMS");
    assert.match(readFileSync(join(dir, "vm", f1.id, "SHA256SUMS"), "utf8"), /^[0-9a-f]{64} {2}app-d\.qcow2\n$/);
    assert.equal(claims.slice(0, 2), ["claim app", "release app"]);
    assert.match(events.find((e) => e.includes(`backup ${i2.id}`))!, new RegExp(`incremental on ${i1.id}`));
    assert.equal((await readVmJobs(dir, "n1")).map((j) => [j.kind, j.subject, j.ok]), [["vm", "vm:app", true]]);
    // full_every 2: a new full one; retention (newest of the day, and its chain): the old chain goes
    await later();
    const f2 = list().at(-1)!;
    assert.is(f2.parent, null, "full (full_every 2)");
    assert.equal(list().map((m) => m.id), [f2.id], "the older chain of the same day pruned");
    for (const id of [f1.id, i1.id, i2.id]) assert.ok(events.some((e) => e.startsWith(`vm backup ${id} of app pruned:`)), `${id} pruned, as an event`);
    await later();
    await later();
    const [, i3, i4] = list() as [VmBackupManifest, VmBackupManifest, VmBackupManifest];
    assert.equal(list().map((m) => m.parent), [null, f2.id, i3.id], "the chain of the newest kept whole, prune after prune");
    assert.is(events.filter((e) => / complete on n2 /.test(e)).length, 6, events.join("\n"));
    const ch = restoreChain(list(), i4.id);
    assert.ok(ch.ok && ch.chain.length === 3);
    figures.push(`scheduled backups of a ${MB} MB disk (TCG guest writing): full ${Math.round(fullMs)} ms / ${f1.bytes} bytes (first), ${Date.parse(f2.finishedAt) - Date.parse(f2.startedAt)} ms (second); incremental ${Date.parse(i1.finishedAt) - Date.parse(i1.startedAt)} ms / ${i1.bytes} bytes, ${Date.parse(i3.finishedAt) - Date.parse(i3.startedAt)} ms / ${i3.bytes} bytes`);
    const onDisk = (m: VmBackupManifest) => `${(statSync(join(dir, "vm", m.id, "app-d.qcow2")).blocks * 512 / 1e6).toFixed(2)} MB`;
    figures.push(`on the target (qcow2, allocated): full ${onDisk(f2)}, incremental ${onDisk(i3)}`);
    figures.push(`CPU during the first full backup (${Math.round(fullMs)} ms): QEMU ${(vmCpu * 1000).toFixed(0)} ms, the agent's process ${((meCpu.user + meCpu.system) / 1000).toFixed(0)} ms (sha256 of the image included)`);

    // verification: the newest, good
    backup.verifyEveryS = 3600;
    backup.everyS = 0;
    t = performance.now();
    await jobs.tick();
    const verifyMs = performance.now() - t;
    const v = list().find((m) => m.id === i4.id)!;
    assert.is(list().length, 3);
    assert.is(v.state, "verified", JSON.stringify(v.detail.verify));
    assert.equal(v.detail.verify!.steps.filter((x) => /qemu-img check/.test(x)).length, 3, "each link's image checked");
    assert.ok(v.detail.verify!.steps.some((x) => x === `app-d: restored through the chain to ${MB * 1024 * 1024} bytes`));
    figures.push(`verification of a 3-link chain of a ${MB} MB disk (checksums, qemu-img check x3, convert): ${Math.round(verifyMs)} ms (${v.detail.verify!.ms} ms in the manifest)`);
    await jobs.tick();
    assert.equal(list().map((m) => m.state), ["complete", "complete", "verified"], "nothing due: every_s 0, the newest verified");
    // what the status body, the console and the metrics show of it (the VM runs here)
    const st = jobs.status().find((x) => x.vm === "app")!;
    assert.equal([st.lastGood, st.verified, st.good, st.bad, st.lastBackupJob?.ok, st.lastVerifyJob?.ok], [i4.id, true, 3, 0, true, true]);

    // an operator's request, at once; a byte flipped in it: bad, refused, the next full, alarmed
    flags[requestFlag("app")] = String(Date.now() + offset);
    await jobs.tick();
    const f3 = list().at(-1)!;
    assert.is(f3.parent, null, "full: the chain is at full_every");
    assert.ok(events.some((e) => e.includes(f3.id) && /requested by an operator/.test(e)));
    const img = join(dir, "vm", f3.id, "app-d.qcow2");
    const fd = openSync(img, "r+");
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 1_000_000);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, 1_000_000);
    closeSync(fd);
    await jobs.tick();
    const bad = list().find((m) => m.id === f3.id)!;
    assert.is(bad.state, "bad");
    assert.match(bad.detail.verify!.error!, /checksums: app-d\.qcow2 changed/);
    const refused = restoreChain(list(), f3.id);
    assert.not.ok(refused.ok);
    if (!refused.ok) assert.match(refused.error, /is marked bad/);
    const cat = await listBackups(dir);
    assert.not.ok(isGood(cat.backups.find((x) => x.manifest.id === f3.id)!.manifest), "backup list: not good");
    assert.ok(events.some((e) => e.startsWith(`vm backup ${f3.id} of app found BAD`)));
    const alarm = jobs.alarmInput().problems.find((p) => p.rule === "backup-verify-failed");
    assert.is(alarm?.subject, "vm:app");
    const st2 = jobs.status().find((x) => x.vm === "app")!;
    // retention kept only f3's chain when it was taken (the day's newest), so no good one is left
    assert.equal([list().length, st2.lastGood, st2.good, st2.bad, st2.lastVerifyJob?.ok, st2.lastVerifyJob?.id], [1, null, 0, 1, false, f3.id], "the bad one is not a last good; its verification failed");
    flags[requestFlag("app")] = String(Date.now() + offset + 1);
    await jobs.tick();
    const f4 = list().at(-1)!;
    assert.is(f4.parent, null, "after a bad one: full");
    assert.match(events.find((e) => e.includes(f4.id))!, /is bad/);
    await vm.kill();
  });

  s.after(() => {
    pids.killAll();
    rmSync(root, { recursive: true, force: true });
    if (figures.length) console.log(`\nfigures:\n  ${figures.join("\n  ")}`);
  });
}
s.run();
