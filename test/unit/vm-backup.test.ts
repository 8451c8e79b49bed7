// VM backups' pure decisions (resources/vm-backup-manifest.ts): full or incremental, the chain a
// restore reads, bad manifests refused naming the field.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { backupBitmap, backupId, latestOf, parseManifest, planBackup, restoreChain, type VmBackupManifest } from "../../agent/resources/vm-backup-manifest.ts";

const m = (id: string, parent: string | null, o: Partial<VmBackupManifest> = {}): VmBackupManifest => ({
  id, kind: "vm", name: "app", node: "n1", storedOn: "n2", startedAt: `2026-12-06T10:${id.slice(-2)}:00.000Z`, finishedAt: `2026-12-06T10:${id.slice(-2)}:01.000Z`,
  bytes: 10, parent, state: "complete", detail: { disks: [{ name: "app-d", file: "app-d.qcow2", sizeMb: 32, bytes: 10 }], consistency: "crash-consistent", consistencyWhy: "no guest agent answered" }, ...o,
});
const disks = (bitmaps: string[]) => [{ name: "app-d", sizeMb: 32, bitmaps }];

const p = suite("planBackup");
p("incremental on top of the latest backup when the QEMU has its bitmap", () => {
  assert.equal(planBackup({ wantFull: false, latest: m("b-01", null), disks: disks([backupBitmap("b-01"), "bollard.n2.x"]) }), { kind: "incremental", parent: "b-01", why: "the blocks written since b-01" });
});
p("full: asked, none before, latest bad, disks changed, or no bitmap since the latest (a new QEMU)", () => {
  assert.match(planBackup({ wantFull: true, latest: m("b-01", null), disks: disks([backupBitmap("b-01")]) }).why, /--full/);
  assert.match(planBackup({ wantFull: false, latest: null, disks: disks([]) }).why, /no earlier backup/);
  assert.match(planBackup({ wantFull: false, latest: m("b-01", null, { state: "bad" }), disks: disks([backupBitmap("b-01")]) }).why, /b-01 is bad/);
  assert.match(planBackup({ wantFull: false, latest: m("b-01", null), disks: [{ name: "app-d", sizeMb: 64, bitmaps: [backupBitmap("b-01")] }] }).why, /disks changed/);
  const r = planBackup({ wantFull: false, latest: m("b-02", "b-01"), disks: disks([backupBitmap("b-01")]) });
  assert.is(r.kind, "full");
  assert.match(r.why, /no dirty bitmap on app-d since b-02/);
});
p("the latest is the last started, of this VM", () => {
  assert.is(latestOf([m("b-03", null), m("b-01", null), m("b-09", null, { name: "db" })], "app")?.id, "b-03");
  assert.is(latestOf([m("b-09", null, { name: "db" })], "app"), null);
});
p.run();

const c = suite("restoreChain");
c("full first, then each incremental up to the one asked for", () => {
  const r = restoreChain([m("b-03", "b-02"), m("b-01", null), m("b-02", "b-01"), m("b-04", "b-03")], "b-03");
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.chain.map((x) => x.id), ["b-01", "b-02", "b-03"]);
});
c("refused: unknown id (with those that exist), a missing link, a bad link, another VM's, a loop", () => {
  const e = (ms: VmBackupManifest[], id: string) => { const r = restoreChain(ms, id); return r.ok ? "ok" : r.error; };
  assert.is(e([m("b-01", null)], "b-07"), "no backup b-07 (known: b-01)");
  assert.is(e([m("b-03", "b-02")], "b-03"), "backup b-03 needs b-02, which is not there: the chain is broken");
  assert.is(e([m("b-01", null, { state: "bad" }), m("b-02", "b-01")], "b-02"), "backup b-01 (in the chain of b-02) is marked bad");
  assert.is(e([m("b-01", null, { name: "db" }), m("b-02", "b-01")], "b-02"), "backup b-01 is of db, not of app");
  assert.is(e([m("b-01", "b-02"), m("b-02", "b-01")], "b-02"), "backup b-02's chain loops at b-02");
});
c.run();

const x = suite("parseManifest");
x("a good one round-trips; its id must be its directory's name", () => {
  const good = m("b-01", null);
  assert.equal(parseManifest(JSON.stringify(good), "b-01"), { ok: true, m: good });
  assert.equal(parseManifest(JSON.stringify(good), "b-02"), { ok: false, error: 'id: "b-01" is not its directory\'s name b-02' });
});
x("bad ones name the field", () => {
  const bad = (o: Record<string, unknown>) => { const r = parseManifest(JSON.stringify({ ...m("b-01", null), ...o })); return r.ok ? "ok" : r.error; };
  assert.match(parseManifest("{not json").ok ? "" : (parseManifest("{not json") as { error: string }).error, /^not JSON/);
  assert.is(bad({ kind: "mysql" }), 'kind: expected "vm", got "mysql"');
  assert.is(bad({ state: "done" }), 'state: expected complete, verified or bad, got "done"');
  assert.is(bad({ bytes: -1 }), "bytes: expected a whole number >= 0");
  assert.is(bad({ startedAt: "yesterday" }), "startedAt: expected an ISO time (UTC)");
  assert.is(bad({ parent: 7 }), "parent: expected a backup id or null");
  assert.is(bad({ detail: { disks: [], consistency: "crash-consistent" } }), "detail.disks: expected a list of disks");
  assert.is(bad({ detail: { disks: [{ name: "a", file: "../x", sizeMb: 1, bytes: 1 }], consistency: "crash-consistent" } }), "detail.disks[0]: expected {name, file (in the backup's directory), sizeMb, bytes}");
  assert.is(bad({ detail: { disks: [{ name: "a", file: "a", sizeMb: 1, bytes: 1 }], consistency: "fine" } }), "detail.consistency: expected guest-frozen or crash-consistent");
  assert.is(parseManifest("[]").ok, false);
});
x("ids sort by time and are valid", () => {
  const a = backupId("App", new Date("2026-12-06T10:00:00.005Z"));
  assert.is(a, "app-20261206t100000005z");
  assert.ok(a < backupId("App", new Date("2026-12-06T10:00:01Z")));
  assert.ok(parseManifest(JSON.stringify(m(a, null, { startedAt: "2026-12-06T10:00:00.005Z", finishedAt: "2026-12-06T10:00:02Z" }))).ok);
});
x.run();
