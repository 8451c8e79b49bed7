// Scheduled VM backups' pure decisions (backup/vm-schedule.ts, on the shared schedule.ts and
// retention.ts): when a backup or a verification is due and which VM waits why, full after
// vms.backup.full_every incrementals, retention over a VM's chain (parents of kept incrementals
// kept, other VMs untouched), the alarms with subject vm:<name>; the vms.backup keys' defaults.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backupRules } from "../../agent/alarms/rules-backup.ts";
import { Collector } from "../../agent/alarms/collector.ts";
import { parseConfig } from "../../agent/config/load.ts";
import { backupBlocked, nextJob, pruneVm, requestFlag, vmBackupProblems, type VmHere } from "../../agent/backup/vm-schedule.ts";
import { backupBitmap, planBackup, type VmBackupManifest } from "../../agent/resources/vm-backup-manifest.ts";
import type { JobResult } from "../../agent/backup/schedule.ts";
import { vmBackupStatus, vmStatusLine } from "../../agent/backup/vm-status.ts";

const DAY = 86_400_000;
const NOW = Date.parse("2026-12-06T12:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
/** a backup of `vm` taken `ageMs` before NOW */
const m = (id: string, parent: string | null, ageMs: number, o: Partial<VmBackupManifest> = {}): VmBackupManifest => ({
  id, kind: "vm", name: "app", node: "n1", storedOn: "n2", startedAt: iso(NOW - ageMs), finishedAt: iso(NOW - ageMs + 1000),
  bytes: 10, parent, state: "complete", detail: { disks: [{ name: "app-d", file: "app-d.qcow2", sizeMb: 32, bytes: 10 }], consistency: "crash-consistent", consistencyWhy: "no guest agent" }, ...o,
});
const here = (name: string, o: Partial<VmHere> = {}): VmHere => ({ name, state: "running", placedHere: true, busy: null, migration: null, ...o });

const plan = suite("planBackup with vms.backup.full_every");
const disks = (bitmaps: string[]) => [{ name: "app-d", sizeMb: 32, bitmaps }];
plan("incremental while the chain is shorter than full_every; full when it reaches it", () => {
  const chain = [m("b-01", null, 3000), m("b-02", "b-01", 2000), m("b-03", "b-02", 1000)];
  const inc = planBackup({ wantFull: false, latest: chain[2]!, disks: disks([backupBitmap("b-03")]), all: chain, fullEvery: 3 });
  assert.equal(inc, { kind: "incremental", parent: "b-03", why: "the blocks written since b-03" });
  const full = planBackup({ wantFull: false, latest: chain[2]!, disks: disks([backupBitmap("b-03")]), all: chain, fullEvery: 2 });
  assert.is(full.kind, "full");
  assert.match(full.why, /b-03 ends a chain of 2 incremental\(s\) \(vms.backup.full_every: 2\)/);
});
plan("full: full_every 0, or the latest's chain is broken (a pruned or bad parent)", () => {
  assert.match(planBackup({ wantFull: false, latest: m("b-01", null, 1000), disks: disks([backupBitmap("b-01")]), all: [m("b-01", null, 1000)], fullEvery: 0 }).why, /every backup full/);
  const broken = planBackup({ wantFull: false, latest: m("b-02", "b-01", 1000), disks: disks([backupBitmap("b-02")]), all: [m("b-02", "b-01", 1000)] });
  assert.is(broken.kind, "full");
  assert.match(broken.why, /needs b-01, which is not there/);
  const bad = planBackup({ wantFull: false, latest: m("b-02", "b-01", 1000), disks: disks([backupBitmap("b-02")]), all: [m("b-01", null, 2000, { state: "bad" }), m("b-02", "b-01", 1000)] });
  assert.match(bad.why, /b-01 \(in the chain of b-02\) is marked bad/);
});
plan.run();

const blocked = suite("backupBlocked: only a VM running here, left alone");
blocked("running here and idle: none; else why", () => {
  assert.is(backupBlocked(here("app")), null);
  assert.is(backupBlocked(here("app", { placedHere: false })), "not placed on this node");
  assert.is(backupBlocked(here("app", { state: null })), "no QEMU of it runs here");
  assert.is(backupBlocked(here("app", { state: "incoming" })), "its QEMU is incoming");
  assert.is(backupBlocked(here("app", { state: "paused" })), "its QEMU is paused");
  assert.is(backupBlocked(here("app", { busy: "stop" })), "busy: stop under way");
  assert.is(backupBlocked(here("app", { migration: "node3" })), "a live migration: node3");
});
blocked.run();

const next = suite("nextJob");
const inp = (o: Partial<Parameters<typeof nextJob>[0]>) => ({ vms: [here("app")], manifests: [], everyS: 3600, verifyEveryS: 86_400, nowMs: NOW, flags: {}, handled: {}, ...o });
next("a VM with no backup: one at once; a recent one: none due, its verification instead", () => {
  assert.equal(nextJob(inp({})).job, { do: "backup", vm: "app", why: "no backup yet", request: null });
  const r = nextJob(inp({ manifests: [m("b-01", null, 600_000)] }));
  assert.equal(r.job, { do: "verify", vm: "app", id: "b-01", why: "not verified yet" });
  const verified = m("b-01", null, 600_000, { state: "verified", detail: { ...m("x", null, 0).detail, verify: { at: iso(NOW - 500_000), ok: true, error: null, ms: 1, steps: [] } } });
  assert.is(nextJob(inp({ manifests: [verified] })).job, null);
  assert.equal(nextJob(inp({ manifests: [verified], verifyEveryS: 400 })).job, { do: "verify", vm: "app", id: "b-01", why: "verified over 400 s ago" });
  assert.is(nextJob(inp({ manifests: [m("b-01", null, 600_000)], verifyEveryS: 0 })).job, null);
});
next("due by every_s from the newest GOOD backup (a bad one does not count); every_s 0: on request only", () => {
  assert.match((nextJob(inp({ manifests: [m("b-01", null, 3_700_000)] })).job as { why: string }).why, /the last one is 3700 s old \(every 3600 s\)/);
  const r = nextJob(inp({ manifests: [m("b-01", null, 3_700_000), m("b-02", "b-01", 60_000, { state: "bad" })] })).job;
  assert.is(r?.do, "backup");
  assert.is(nextJob(inp({ everyS: 0, verifyEveryS: 0 })).job, null);
});
next("an operator's request (backup-now:vm:<name>): once, until handled", () => {
  const flags = { [requestFlag("app")]: String(NOW - 1000) };
  const r = nextJob(inp({ everyS: 0, flags })).job;
  assert.equal(r, { do: "backup", vm: "app", why: `requested by an operator at ${iso(NOW - 1000)}`, request: NOW - 1000 });
  assert.is(nextJob(inp({ everyS: 0, verifyEveryS: 0, flags, handled: { app: NOW - 1000 } })).job, null);
});
next("a due VM that is busy or migrating waits (and says why); the next VM goes; not placed here: not ours", () => {
  const r = nextJob(inp({ vms: [here("app", { migration: "node2" }), here("db"), here("web", { placedHere: false })] }));
  assert.equal(r.job, { do: "backup", vm: "db", why: "no backup yet", request: null });
  assert.equal(r.skipped, [{ vm: "app", why: "a live migration: node2" }]);
  const w = nextJob(inp({ vms: [here("web", { placedHere: false, state: null })], manifests: [m("b-01", null, 1000, { name: "web" })] }));
  assert.is(w.job, null, "another node verifies web's backups");
});
next.run();

const prune = suite("pruneVm: retention over one VM's chain");
prune("old chains go; a kept incremental keeps its parents; the newest good is kept; other VMs untouched", () => {
  const all = [
    // a chain 20 days old: outside 7 daily / 2 weekly
    m("a-01", null, 20 * DAY), m("a-02", "a-01", 20 * DAY - 1000),
    // today's chain: full long ago today, then incrementals
    m("c-01", null, 3 * 3600_000), m("c-02", "c-01", 2 * 3600_000), m("c-03", "c-02", 3600_000),
    m("z-01", null, 30 * DAY, { name: "db" }),
  ];
  const d = pruneVm(all, "app", { daily: 7, weekly: 2 }, NOW);
  assert.equal(d.prune.map((x) => x.id).sort(), ["a-01", "a-02"]);
  const why = Object.fromEntries(d.keep.map((k) => [k.id, k.why]));
  assert.is(why["c-03"], "newest good backup");
  assert.is(why["c-02"], "parent of c-03");
  assert.is(why["c-01"], "parent of c-03");
  assert.not.ok(d.keep.concat(d.prune).some((x) => x.id === "z-01"), "db's backups are not looked at");
});
prune("with nothing in the windows, the newest good and its whole chain are still kept", () => {
  const all = [m("a-01", null, 40 * DAY), m("a-02", "a-01", 39 * DAY), m("a-03", "a-02", 38 * DAY, { state: "bad" })];
  const d = pruneVm(all, "app", { daily: 1, weekly: 1 }, NOW);
  assert.equal(d.keep.map((x) => x.id).sort(), ["a-01", "a-02"]);
  assert.equal(d.prune.map((x) => x.id), ["a-03"]);
});
prune.run();

const alarms = suite("vmBackupProblems and the backup rules");
const job = (o: Partial<JobResult>): JobResult => ({ kind: "vm", subject: "vm:app", node: "n1", at: iso(NOW - 1000), ok: true, error: null, id: "b-01", ms: 10, ...o });
alarms("missed, failed, verify-failed with subject vm:<name>; the VMs not run here only cleared", () => {
  const r = vmBackupProblems({
    judge: ["app", "db"], clear: ["web"], everyS: 3600, nowMs: NOW,
    manifests: [m("b-01", null, 7200_000), m("b-02", "b-01", 600_000, { state: "bad", detail: { ...m("x", null, 0).detail, verify: { at: iso(NOW), ok: false, error: "b-02: checksums: app-d.qcow2 changed", ms: 5, steps: [] } } }), m("d-01", null, 60_000, { name: "db" })],
    jobs: [job({ ok: false, error: "backup job backup-app-d failed: No space left on device", id: null }), job({ subject: "vm:db", at: iso(NOW - 5000) }), job({ kind: "verify-vm", ok: false, error: "x" })],
  });
  const got = r.problems.map((p) => `${p.rule} ${p.subject}: ${p.text}`).sort();
  assert.equal(got, [
    "backup-failed vm:app: the last vm:app backup failed",
    "backup-missed vm:app: no good vm:app backup within its schedule",
    "backup-verify-failed vm:app: a vm:app backup failed its verification",
  ]);
  assert.match(r.problems.find((p) => p.rule === "backup-verify-failed")!.detail, /b-02: b-02: checksums: app-d.qcow2 changed/);
  assert.match(r.problems.find((p) => p.rule === "backup-failed")!.detail, /No space left on device/);
  for (const s of ["vm:app", "vm:db", "vm:web"]) assert.ok(r.judged.some((j) => j.rule === "backup-missed" && j.subject === s), s);
  // through the rules: raised on a node that does not judge the MySQL/Redis ones (judge false)
  const out = new Collector({ disabled: [] } as never, new Set());
  backupRules(out, "n1", { judge: false, judged: r.judged, problems: r.problems });
  assert.ok(out.conditions.some((c) => c.id === "backup-missed:vm:app" && c.node === "n1"), out.conditions.map((c) => c.id).join(", "));
  assert.ok(out.scopes.has("backup-failed:vm:web"), "web's are judged (cleared) here");
  assert.ok(out.scopes.has("backup-missed:mysql"), "the MySQL ones still cleared on a non-judging node");
});
alarms.run();

const cfg = suite("vms.backup keys");
const CONF = (backup: string) => `
cluster:
  name: c
  node: node1
  members: [{ name: node1, address: "198.18.0.11:1883" }]
bus: { password: s3cret }
vms:
  nodes: { node1: { address: 198.18.0.11, memory_mb: 1024 } }
  disks: { app-d: { size_mb: 32 } }
  machines: { app: { memory_mb: 128, disks: [app-d] } }
  backup: ${backup}
`;
cfg("defaults: daily, every 6th full, 7 daily and 4 weekly kept, verified daily; values taken; bad ones named", () => {
  const d = parseConfig(CONF("{ dir: /srv/bk }"), "t.yaml");
  assert.ok(d.ok);
  if (d.ok) assert.equal(d.config.vms!.backup, { dir: "/srv/bk", node: null, everyS: 86_400, fullEvery: 6, retention: { daily: 7, weekly: 4 }, verifyEveryS: 86_400 });
  const v = parseConfig(CONF("{ dir: /srv/bk, every_s: 600, full_every: 0, retention: { daily: 2 }, verify_every_s: 0 }"), "t.yaml");
  assert.ok(v.ok);
  if (v.ok) assert.equal(v.config.vms!.backup, { dir: "/srv/bk", node: null, everyS: 600, fullEvery: 0, retention: { daily: 2, weekly: 4 }, verifyEveryS: 0 });
  const bad = parseConfig(CONF("{ dir: /srv/bk, every_s: -1, retention: { hourly: 3 } }"), "t.yaml");
  assert.not.ok(bad.ok);
  if (!bad.ok) {
    assert.ok(bad.errors.some((e) => /^vms\.backup\.every_s: /.test(e)), bad.errors.join("; "));
    assert.ok(bad.errors.some((e) => /^vms\.backup\.retention/.test(e)), bad.errors.join("; "));
  }
});
cfg.run();

const status = suite("vmBackupStatus (bollard backup status)");
status("per VM: newest good and its age, verified or not, counts, last jobs; a VM with none listed too", () => {
  const v = { at: iso(NOW - 100_000), ok: true, error: null, ms: 5, steps: [] };
  const ms = [m("b-01", null, 7200_000, { state: "verified", detail: { ...m("x", null, 0).detail, verify: v } }), m("b-02", "b-01", 600_000, { state: "bad" }), m("d-01", null, 60_000, { name: "db" })];
  const jobs = [job({ id: "b-02", at: iso(NOW - 600_000) }), job({ kind: "verify-vm", ok: false, error: "b-02: checksums: app-d.qcow2 changed", at: iso(NOW - 500_000) }), job({ subject: "vm:db", ok: false, error: "no space", at: iso(NOW - 5000) })];
  const r = vmBackupStatus(ms, jobs, ["web", "app"], NOW);
  assert.equal(r.map((x) => [x.vm, x.lastGood, x.ageS, x.verified, x.good, x.bad]), [["app", "b-01", 7200, true, 1, 1], ["db", "d-01", 60, false, 1, 0], ["web", null, null, false, 0, 0]]);
  assert.is(vmStatusLine(r[0]!), `vm app: last good b-01 (2.0 h ago, verified); 1 good, 1 bad; last backup ok at ${iso(NOW - 600_000)} on n1; last verification BAD: b-02: checksums: app-d.qcow2 changed at ${iso(NOW - 500_000)}`);
  assert.match(vmStatusLine(r[1]!), /^vm db: last good d-01 \(60 s ago\); 1 good, 0 bad; last backup FAILED: no space at /);
  assert.is(vmStatusLine(r[2]!), "vm web: last good none; 0 good, 0 bad");
});
status.run();
