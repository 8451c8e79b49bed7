// When backups and verifications are due, and the backup alarms (agent/backup/schedule.ts,
// agent/alarms/rules-backup.ts), the restore command's time parser, the backup: config section.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backupRules } from "../../agent/alarms/rules-backup.ts";
import { Collector } from "../../agent/alarms/collector.ts";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
const defaultRuleConfig = () => defaultAlarmsConfig().rules;
import { parseTime } from "../../agent/cli/backup-cmd.ts";
import { BackupSection, targetOf, toBackupConfig } from "../../agent/config/backup-schema.ts";
import type { Manifest } from "../../agent/backup/manifest.ts";
import { backupDue, backupProblems, verifyDue, type BackupAlarmFacts } from "../../agent/backup/schedule.ts";

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const bk = (id: string, agoS: number, over: Partial<Manifest> = {}): Manifest => ({
  id, kind: "mysql", name: "mysql", node: "node2", storedOn: "node3", startedAt: new Date(NOW - agoS * 1000).toISOString(),
  finishedAt: new Date(NOW - agoS * 1000 + 1000).toISOString(), bytes: 1, parent: null, state: "complete", detail: {}, ...over,
});

const Due = suite("backupDue / verifyDue");
Due("schedule, none yet, operator request once", () => {
  assert.is(backupDue(null, 3600, NOW, null, 0), "no backup yet");
  assert.is(backupDue(bk("a", 100), 3600, NOW, null, 0), null);
  assert.match(backupDue(bk("a", 4000), 3600, NOW, null, 0)!, /4000 s old \(every 3600 s\)/);
  assert.is(backupDue(bk("a", 100), 0, NOW, null, 0), null, "0: on demand only");
  assert.match(backupDue(bk("a", 100), 0, NOW, NOW - 10, 0)!, /requested by an operator/);
  assert.is(backupDue(bk("a", 100), 0, NOW, NOW - 10, NOW - 10), null, "a request is carried out once");
});
Due("verify: the newest good one when unverified, again after the period; never a bad one", () => {
  assert.is(verifyDue([bk("a", 100), bk("b", 50)], 3600, NOW)?.id, "b");
  const verified = bk("b", 50, { state: "verified", detail: { verify: { at: new Date(NOW - 100_000).toISOString() } } });
  assert.is(verifyDue([bk("a", 200, { state: "verified" }), verified], 3600, NOW), null);
  assert.is(verifyDue([verified], 60, NOW)?.id, "b");
  assert.is(verifyDue([bk("x", 10, { state: "bad" })], 60, NOW), null);
  assert.is(verifyDue([bk("b", 50)], 0, NOW), null);
});
Due.run();

const facts = (over: Partial<BackupAlarmFacts> = {}): BackupAlarmFacts => ({
  kinds: [{ kind: "mysql", everyS: 3600, newestGood: bk("a", 100), bad: [] }], jobs: [],
  archive: { gap: null, error: null, updatedMs: NOW - 1000, running: true }, targets: [{ node: "node3", usedRatio: 0.5, error: null }], fullRatio: 0.85, ...over,
});
const Prob = suite("backupProblems");
Prob("all well: nothing, but everything judged", () => {
  const r = backupProblems(facts(), NOW);
  assert.equal(r.problems, []);
  assert.equal(r.judged.map((j) => `${j.rule}:${j.subject}`).sort(), ["backup-archive-down:mysql", "backup-archive-gap:mysql", "backup-failed:mysql", "backup-missed:mysql", "backup-target-full:node3", "backup-verify-failed:mysql"]);
});
Prob("each fault is its alarm", () => {
  const r = backupProblems(facts({
    kinds: [{ kind: "mysql", everyS: 3600, newestGood: bk("a", 9000), bad: [bk("c", 50, { state: "bad", detail: { verify: { error: "checksums: x changed" } } })] }],
    jobs: [{ kind: "mysql", node: "node2", at: new Date(NOW - 60_000).toISOString(), ok: false, error: "target gone", id: "x", ms: 5 }, { kind: "mysql", node: "node3", at: new Date(NOW - 600_000).toISOString(), ok: true, error: null, id: "y", ms: 5 }],
    archive: { gap: "primary node2 no longer has the binlogs after 0-1-5", error: null, updatedMs: NOW, running: false },
    targets: [{ node: "node3", usedRatio: 0.9, error: null }, { node: "node1", usedRatio: null, error: "EIO" }],
  }), NOW);
  const by = Object.fromEntries(r.problems.map((p) => [`${p.rule}:${p.subject}`, p]));
  assert.match(by["backup-missed:mysql"]!.detail, /9000 s old/);
  assert.match(by["backup-failed:mysql"]!.detail, /on node2 .*target gone/);
  assert.match(by["backup-verify-failed:mysql"]!.detail, /c: checksums: x changed/);
  assert.is(by["backup-archive-gap:mysql"]!.severity, "critical");
  assert.not.ok(by["backup-archive-down:mysql"], "a gap is said once, as a gap");
  assert.match(by["backup-target-full:node3"]!.detail, /90 % used/);
  assert.match(by["backup-target-full:node1"]!.detail, /EIO/);
});
Prob("the archive: stale or stopped is down; never heard of is not judged", () => {
  const stale = backupProblems(facts({ archive: { gap: null, error: "stream ended", updatedMs: NOW - 120_000, running: true } }), NOW);
  assert.match(stale.problems.find((p) => p.rule === "backup-archive-down")!.detail, /stream ended/);
  const blip = backupProblems(facts({ archive: { gap: null, error: "re-pointing", updatedMs: NOW, running: false, downSinceMs: NOW - 5000 } }), NOW);
  assert.equal(blip.problems, [], "a stream down for 5 s (a failover) is not an alarm");
  const long = backupProblems(facts({ archive: { gap: null, error: "primary down", updatedMs: NOW, running: false, downSinceMs: NOW - 40_000 } }), NOW);
  assert.match(long.problems.find((p) => p.rule === "backup-archive-down")!.detail, /primary down/);
  const never = backupProblems(facts({ archive: { gap: null, error: null, updatedMs: null, running: false } }), NOW);
  assert.equal(never.problems, []);
});
Prob.run();

const Rules = suite("backupRules");
Rules("the judge raises; a node that does not judge clears what it raised", () => {
  const c = new Collector(defaultRuleConfig(), new Set());
  backupRules(c, "node1", { judge: true, judged: [{ rule: "backup-failed", subject: "mysql" }], problems: [{ rule: "backup-failed", subject: "mysql", severity: "major", text: "the last mysql backup failed", detail: "x" }] });
  assert.equal(c.conditions.map((x) => x.id), ["backup-failed:mysql"]);
  assert.ok(c.scopes.has("backup-failed:mysql"));
  const d = new Collector(defaultRuleConfig(), new Set(["backup-failed:mysql"]));
  backupRules(d, "node1", { judge: false, judged: [], problems: [] });
  assert.equal(d.conditions, []);
  assert.ok(d.scopes.has("backup-failed:mysql"));
});
Rules.run();

const Cli = suite("restore --to-time and the backup: section");
Cli("times: UTC without a zone, offsets honoured, garbage refused", () => {
  assert.is(parseTime("2026-12-06T10:30:15Z"), Date.UTC(2026, 11, 6, 10, 30, 15));
  assert.is(parseTime("2026-12-06 10:30:15"), Date.UTC(2026, 11, 6, 10, 30, 15));
  assert.is(parseTime("2026-12-06T11:30:15+01:00"), Date.UTC(2026, 11, 6, 10, 30, 15));
  assert.is(parseTime("yesterday"), null);
  assert.is(parseTime("2026-13-45T99:00:00Z"), null);
});
Cli("defaults, {node}, and errors that name the key", () => {
  const c = toBackupConfig(BackupSection.parse({ target: "/srv/backup/{node}" }));
  assert.equal(c.retention, { daily: 7, weekly: 4 });
  assert.is(targetOf(c, "node2"), "/srv/backup/node2");
  const bad = BackupSection.safeParse({ target: "/srv/backup", retention: { daily: -1 }, nope: 1 });
  assert.not.ok(bad.success);
  const text = bad.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n");
  assert.match(text, /target: an absolute path containing \{node\}/);
  assert.match(text, /retention.daily/);
  assert.match(text, /a mapping \(target, retention, /, "an unknown key names the keys there are");
});
Cli.run();

const Console = suite("console: the backup lines of the Services screen");
Console("each kind's last good backup, the archive, a gap", async () => {
  const { backupLines } = await import("../../agent/console/screens-services.ts");
  assert.equal(backupLines(null), []);
  const lines = backupLines({
    kinds: [{ kind: "mysql", lastGood: "x", ageS: 7300, verified: true, bad: 1 }, { kind: "redis", lastGood: null, ageS: null, verified: false, bad: 2 }],
    archive: { node: "node3", primary: "node1", running: true, lagS: 0.42, behind: 0, gap: "misses 0-?-5..9" }, running: ["mysql"],
  });
  assert.equal(lines, [
    "",
    "Backup mysql  last good 2.0 h ago, verified, 1 BAD (one running)",
    "Backup redis  last good NONE, 2 BAD",
    "Binlog archive on node3: GAP from node1, lag 0.4 s, behind 0 trx",
  ]);
});
Console("one line per VM this node runs: last good, verified, bad ones, a failed job", async () => {
  const { backupLines } = await import("../../agent/console/screens-services.ts");
  const job = (kind: "vm" | "verify-vm", ok: boolean) => ({ kind, subject: "vm:x", node: "node1", at: "2026-12-06T17:20:31.000Z", ok, error: ok ? null : "boom", id: null, ms: 5 });
  const vms = [
    { vm: "app1", lastGood: "a", lastGoodAt: "t", ageS: 300, verified: true, good: 3, bad: 0, lastBackupJob: job("vm", true), lastVerifyJob: job("verify-vm", true) },
    { vm: "db", lastGood: null, lastGoodAt: null, ageS: null, verified: false, good: 0, bad: 1, lastBackupJob: job("vm", false), lastVerifyJob: job("verify-vm", false) },
  ];
  assert.equal(backupLines(null, vms), [
    "",
    "Backup vm app1       last good 5 min ago, verified",
    "Backup vm db         last good NONE, 1 BAD; last backup FAILED at 17:20:31; last verification BAD",
  ]);
  assert.equal(backupLines(null, []), []);
  assert.equal(backupLines({ kinds: [], archive: null, running: [] }, vms.slice(0, 1)), ["", "Backup: none yet (bollard backup now mysql)", "Backup vm app1       last good 5 min ago, verified"]);
});
Console.run();

const Met = suite("backup metrics");
Met("names follow the conventions; values from the snapshot; unknowns left out", async () => {
  const { renderBackupMetrics } = await import("../../agent/runtime/backup-metrics.ts");
  const got: { name: string; labels: Record<string, string>; v: number | null | undefined }[] = [];
  const listed = (mm: Manifest) => ({ manifest: mm, dir: `/t/${mm.kind}/${mm.id}` });
  renderBackupMetrics((name, _help, labels, v) => got.push({ name, labels, v }), {
    backups: [listed(bk("a", 7200, { bytes: 100 })), listed(bk("b", 3600, { bytes: 50, state: "verified" })), listed(bk("c", 60, { bytes: 7, state: "bad" }))],
    archive: { node: "node3", primary: "node1", segment: "s", running: true, downSince: null, lastGtid: "0-1-9", behind: 2, lagS: 0.5, caughtUpAt: null, caughtUpSeq: null, gap: null, error: null, updatedAt: "" },
    jobs: [{ kind: "mysql", node: "node2", at: "", ok: false, error: "x", id: null, ms: 1 }], running: [], problems: null, judged: [],
    targets: [{ node: "node3", usedRatio: 0.25, error: null }, { node: "node1", usedRatio: null, error: "EIO" }],
  }, NOW);
  for (const g of got) assert.match(g.name, /^bollard_[a-z_]+$/);
  const val = (name: string, l: Record<string, string> = {}) => got.find((g) => g.name === name && Object.entries(l).every(([k, v]) => g.labels[k] === v))?.v;
  assert.is(val("bollard_backup_count", { kind: "mysql", state: "good" }), 2);
  assert.is(val("bollard_backup_count", { kind: "mysql", state: "bad" }), 1);
  assert.is(val("bollard_backup_bytes", { kind: "mysql" }), 157);
  assert.is(val("bollard_backup_last_good_age_seconds", { kind: "mysql" }), 3600);
  assert.is(val("bollard_backup_archive_behind_transactions"), 2);
  assert.is(val("bollard_backup_archive_gap"), 0);
  assert.is(val("bollard_backup_target_used_ratio", { node: "node3" }), 0.25);
  assert.is(val("bollard_backup_job_ok", { job: "mysql", node: "node2" }), 0);
  assert.is(got.some((g) => g.labels.kind === "redis"), false, "no redis backups: no redis series");
});
Met("VM backups: per VM on the node that runs it; no verified gauge without a good backup", async () => {
  const { renderVmMetrics } = await import("../../agent/runtime/vm-metrics.ts");
  const got: { name: string; labels: Record<string, string>; v: number | null | undefined }[] = [];
  const ok = { kind: "vm" as const, subject: "vm:app1", node: "node1", at: "2026-12-06T17:00:00.000Z", ok: true, error: null, id: "i", ms: 9 };
  renderVmMetrics((name, _help, labels, v) => got.push({ name, labels, v }), {
    node: "node1", facts: { vms: [], exports: [], storage: true } as never, memoryMb: {}, problems: null,
    backups: [
      { vm: "app1", lastGood: "i", lastGoodAt: "t", ageS: 42, verified: false, good: 2, bad: 1, lastBackupJob: ok, lastVerifyJob: { ...ok, kind: "verify-vm" as const, ok: false, error: "x" } },
      { vm: "db", lastGood: null, lastGoodAt: null, ageS: null, verified: false, good: 0, bad: 0, lastBackupJob: null, lastVerifyJob: null },
    ],
  });
  const vb = got.filter((x) => x.name.startsWith("bollard_vm_backup_")).map((x) => `${x.name}{${Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(",")}} ${x.v}`);
  assert.equal(vb, [
    "bollard_vm_backup_count{vm=app1,node=node1,state=good} 2",
    "bollard_vm_backup_count{vm=app1,node=node1,state=bad} 1",
    "bollard_vm_backup_last_good_age_seconds{vm=app1,node=node1} 42",
    "bollard_vm_backup_last_good_verified{vm=app1,node=node1} 0",
    "bollard_vm_backup_job_ok{vm=app1,node=node1,job=backup} 1",
    "bollard_vm_backup_job_ok{vm=app1,node=node1,job=verify} 0",
    "bollard_vm_backup_count{vm=db,node=node1,state=good} 0",
    "bollard_vm_backup_count{vm=db,node=node1,state=bad} 0",
    "bollard_vm_backup_last_good_age_seconds{vm=db,node=node1} null",
  ]);
});
Met.run();
