// `restore mysql --replace` (issue 23 item 3): the pure parts. The holder's rule while the
// register flag restore:mysql is set (ha/local.ts restoreHold), the leader not taking the
// read-only holder for a stuck one and saying why writes are down, retention keeping a pinned
// backup, and the statements that drop the primary's user schemas.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ClusterConfig, ResReport } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { LocalManager, restoreHold, type DbFacts } from "../../agent/ha/local.ts";
import { DEFAULT_HA_TIMING, HaManager, type Report } from "../../agent/ha/manager.ts";
import { parseManifest, setPinned, writeManifest, type Manifest } from "../../agent/backup/manifest.ts";
import { KEEP_SCHEMAS, dropStatements } from "../../agent/backup/replace.ts";
import { retain } from "../../agent/backup/retention.ts";

const NODES = ["node1", "node2", "node3"];
const FLAG = { "restore:mysql": "20261206T140000000Z-node2 1796565600000" };
const cfg = (flags: Record<string, string> = {}): ClusterConfig =>
  ({ epoch: 5, term: 2, members: NODES.map((name) => ({ name, bus: `${name}:1883` })), assignments: { mysql: "node1", vip: "node1" }, flags: { "inst:mysql": "a.1", ...flags } });
const view = (c: ClusterConfig): NodeView => ({
  node: "node1", role: "leader", term: 2, leader: "node1", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
  config: c, committed: c, counters: {},
  peers: NODES.filter((n) => n !== "node1").map((name) => ({ name, alive: true, lastHeardMs: 100, term: 2, role: "follower" as const, leader: "node1", skewMs: 0 })),
});
const db = (o: Partial<DbFacts> = {}): DbFacts => ({ up: true, role: "none", writable: false, received: "0-1-5", applied: "0-1-5", source: null, inst: "a.1", ...o });
const plan = (d: DbFacts, c: ClusterConfig) => new LocalManager("node1", () => undefined)
  .plan({ now: 0, view: view(c), mysql: d, redis: null, portal: null, vip: null, peerApplied: () => "0-1-5", alive: () => true, peerVip: () => false, extra: () => null, peerPrimary: () => true }, new Set())
  .filter((a) => a.res === "mysql");

const L = suite("restore --replace: the holder's rule");
L("a writable holder is made read-only while the flag is set, and says why", () => {
  const a = plan(db({ role: "primary", writable: true }), cfg(FLAG));
  assert.equal(a.map((x) => x.do), ["demote"]);
  assert.is(a[0].why, "writes stopped: restore --replace 20261206T140000000Z-node2 under way");
  assert.equal(plan(db({ role: "primary", writable: true }), cfg()), [], "without the flag: left writable");
});
L("a read-only holder is not promoted while the flag is set; it is once it is cleared", () => {
  assert.equal(plan(db(), cfg(FLAG)), []);
  assert.equal(plan(db(), cfg()).map((a) => a.do), ["promote"]);
  assert.is((plan(db(), cfg())[0] as { readOnly?: boolean }).readOnly, undefined);
});
L("a failover's new holder (still a replica) is promoted read-only, only once confirmed", () => {
  const a = plan(db({ role: "replica", source: "node2" }), cfg(FLAG));
  assert.equal(a.map((x) => [x.do, (x as { readOnly?: boolean }).readOnly]), [["promote", true]]);
  assert.match(a[0].why, /promoted read-only/);
  assert.equal(plan(db({ role: "replica", source: "node2", inst: "b.7" }), cfg(FLAG)), [], "an incarnation the leader has not confirmed waits");
});
L("restoreHold alone: undefined without the flag (the usual rules decide)", () => {
  assert.is(restoreHold("mysql", db({ writable: true }), {}), undefined);
  assert.is(restoreHold("mysql", db(), FLAG), null);
  assert.is(restoreHold("redis", db({ writable: true }), FLAG), undefined, "the flag is per service");
});
L.run();

const M = suite("restore --replace: the leader");
const report = (mysql: Partial<ResReport["mysql"]> & object): Report => ({
  at: 0, r: { v: 1, t: "res", mysql: { up: true, role: "replica", writable: false, received: "0-1-5", applied: "0-1-5", source: "node1", heldOut: null, inst: "x", ...mysql }, redis: null, portal: { mysql: "node1", redis: null }, vip: false, selfFenced: false },
});
function run(flags: Record<string, string>) {
  const events: string[] = [];
  const m = new HaManager("node1", DEFAULT_HA_TIMING, { event: (_k, d) => void events.push(d) });
  const c = cfg(flags);
  const reports = new Map(NODES.map((n) => [n, n === "node1" ? { ...report({ role: "none", source: null, inst: "a.1" }), r: { ...report({ role: "none", source: null, inst: "a.1" }).r, vip: true } } : report({})]));
  const acts = [];
  for (let t = 0; t <= 30_000; t += 500) acts.push(...m.tick({ now: t, wall: 1.8e12 + t, view: view(c), reports, cmp: () => 0 }));
  return { acts, down: m.writesDown(), busy: m.busy(), events };
}
M("a confirmed holder read-only for 30 s is not taken for stuck while the flag is set; without it, it is", () => {
  const held = run(FLAG);
  assert.equal(held.busy, [], "no procedure");
  assert.ok(!held.acts.some((a) => a.kind === "commit"), "nothing committed");
  const stuck = run({});
  assert.ok(stuck.events.some((e) => /recover of mysql from node1 started/.test(e)), `a recover starts without the flag: ${stuck.events.join(" | ")}`);
  assert.equal(held.events, []);
});
M("writes down says why and names --abort", () => {
  const d = run(FLAG).down;
  assert.is(d.length, 1);
  assert.match(d[0].why, /^writes stopped: restore --replace 20261206T140000000Z-node2 under way \(since 2026-12-06T14:00:00.000Z\)$/);
  assert.match(d[0].command ?? "", /^bollard restore mysql --replace --abort/);
});
M.run();

const R = suite("restore --replace: the old data is kept");
const man = (id: string, day: number, o: Partial<Manifest> = {}): Manifest => ({
  id, kind: "mysql", name: "mysql", node: "node2", storedOn: "node3", startedAt: new Date(Date.UTC(2026, 10, day)).toISOString(),
  finishedAt: new Date(Date.UTC(2026, 10, day, 0, 1)).toISOString(), bytes: 1, parent: null, state: "complete", detail: { gtid: `0-1-${day}` }, ...o,
});
R("retention keeps a pinned backup whatever its age, and prunes it once unpinned", () => {
  const now = Date.UTC(2026, 11, 6);
  const all = [man("old-pinned", 1, { pinned: "old data before restore --replace r1" }), man("old", 2), man("new", 30)];
  const d = retain(all, { daily: 3, weekly: 1 }, now);
  assert.equal(d.keep.map((k) => k.id).sort(), ["new", "old-pinned"]);
  assert.is(d.keep.find((k) => k.id === "old-pinned")!.why, "pinned: old data before restore --replace r1");
  assert.equal(retain(all.map(({ pinned: _p, ...m }) => m), { daily: 3, weekly: 1 }, now).prune.map((p) => p.id).sort(), ["old", "old-pinned"]);
});
R("a pinned backup takes no daily slot: the regular backup of its day is kept as without it", () => {
  const now = Date.UTC(2026, 10, 30, 12);
  const d = retain([man("regular", 30), man("pinned", 30, { startedAt: "2026-11-30T06:00:00.000Z", finishedAt: "2026-11-30T06:01:00.000Z", pinned: "old data" })], { daily: 1, weekly: 0 }, now);
  assert.equal(d.keep.map((k) => k.id).sort(), ["pinned", "regular"]);
  assert.equal(d.prune, []);
});
R("pinned round trip through manifest.json; a wrong pinned is a manifest error", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-pin-"));
  try {
    await writeManifest(dir, man("b1", 3));
    assert.is((await setPinned(dir, "kept")).pinned, "kept");
    assert.is((await setPinned(dir, null)).pinned, undefined);
    const bad = parseManifest(JSON.stringify({ ...man("b1", 3), pinned: 7 }));
    assert.ok(!bad.ok && /pinned/.test(bad.error));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
R("the drop statements: every user schema quoted, never the server's or bollard's own", () => {
  assert.is(dropStatements(["fms", "a`b", ...KEEP_SCHEMAS, "MySQL"]), "DROP DATABASE IF EXISTS `fms`;\nDROP DATABASE IF EXISTS `a``b`;\n");
  assert.is(dropStatements([]), "");
});
R.run();
