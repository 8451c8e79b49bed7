// What a remote site changes in the HA managers (issue 18): a promoted remote keeps this room's
// MySQL read-only (the local manager demotes, never promotes), and the leader places, fails
// over or recovers nothing while a site holds MySQL; the alarms the judgements raise.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import type { ClusterConfig, ResReport } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { LocalManager, type DbFacts } from "../../agent/ha/local.ts";
import { DEFAULT_HA_TIMING, HaManager, type Report } from "../../agent/ha/manager.ts";
import { renderMetrics } from "../../agent/runtime/metrics.ts";

const NODES = ["node1", "node2", "node3"];
const cfg = (flags: Record<string, string> = {}, assignments: Record<string, string> = { mysql: "node1", vip: "node1" }): ClusterConfig =>
  ({ epoch: 5, term: 2, members: NODES.map((name) => ({ name, bus: `${name}:1883` })), assignments, flags });
const view = (c: ClusterConfig, o: Partial<NodeView> = {}): NodeView => ({
  node: "node1", role: "leader", term: 2, leader: "node1", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
  config: c, committed: c, counters: {},
  peers: NODES.filter((n) => n !== "node1").map((name) => ({ name, alive: true, lastHeardMs: 100, term: 2, role: "follower" as const, leader: "node1", skewMs: 0 })), ...o,
});
const db = (o: Partial<DbFacts> = {}): DbFacts => ({ up: true, role: "none", writable: false, received: "0-1-5", applied: "0-1-5", source: null, inst: "a.1", ...o });

const Lrm = suite("site: the local manager under site-promoted");
function plan(d: DbFacts, c: ClusterConfig) {
  const m = new LocalManager("node1", () => undefined);
  return m.plan({ now: 0, view: view(c), mysql: d, redis: null, portal: null, vip: null, peerApplied: () => "0-1-5", alive: () => true, peerVip: () => false, extra: () => null, peerPrimary: () => true }, new Set()).filter((a) => a.res === "mysql");
}
Lrm("the confirmed holder is promoted without the flag, never with it", () => {
  assert.equal(plan(db(), cfg({ "inst:mysql": "a.1" })).map((a) => a.do), ["promote"]);
  assert.equal(plan(db(), cfg({ "inst:mysql": "a.1", "site-promoted:site2": "at T" })), []);
});
Lrm("a writable holder is demoted once the flag is committed", () => {
  const a = plan(db({ role: "primary", writable: true }), cfg({ "inst:mysql": "a.1", "site-promoted:site2": "at T" }));
  assert.equal(a.map((x) => x.do), ["demote"]);
  assert.match(a[0].why, /remote site site2 was promoted/);
});
Lrm.run();

const Mgr = suite("site: the leader holds MySQL while a site says so");
const report = (mysql: Partial<ResReport["mysql"]> & object): Report => ({
  at: 0, r: { v: 1, t: "res", mysql: { up: true, role: "none", writable: false, received: "0-1-5", applied: "0-1-5", source: null, heldOut: null, inst: "x", ...mysql }, redis: null, portal: { mysql: null, redis: null }, vip: false, selfFenced: false },
});
function tick(hold: string | null, c: ClusterConfig) {
  const m = new HaManager("node1", DEFAULT_HA_TIMING, { event: () => undefined });
  const reports = new Map(NODES.map((n) => [n, report({})]));
  const actions = m.tick({ now: 1000, wall: 1000, view: view(c), reports, cmp: () => 0, siteHold: () => hold });
  return { actions, down: m };
}
Mgr("no holder yet: placed without a hold, nothing while held", () => {
  const free = tick(null, cfg({}, {}));
  assert.ok(free.actions.some((a) => a.kind === "commit" && a.cmd.op === "apply" && a.cmd.assign?.mysql), "placed");
  const held = tick("waiting for a first read of remote site site2", cfg({}, {}));
  assert.ok(!held.actions.some((a) => a.kind === "commit" && a.cmd.op === "apply" && a.cmd.assign?.mysql), "not placed");
});
Mgr("a restarted holder is not recovered while held", () => {
  const c = cfg({ "inst:mysql": "old" });
  assert.ok(tick(null, c).actions.length > 0, "recover starts (it queries the replicas)");
  assert.equal(tick("site2 was promoted", c).actions, []);
});
Mgr.run();

const Alarms = suite("site: alarms and metrics");
Alarms("the leader's judgements raise site alarms; every node judges the scopes, so a follower clears its own", () => {
  const cfgA = defaultAlarmsConfig().rules;
  const raised = evaluate({ node: "node1", sites: { sites: [{ site: "site2", alarms: [{ rule: "site-lag", severity: "major", text: "remote site site2: replication lag", detail: "40 s" }] }] } }, cfgA);
  assert.equal(raised.conditions.map((c) => [c.id, c.severity]), [["site-lag:site2", "major"]]);
  const none = evaluate({ node: "node2", sites: { sites: [{ site: "site2", alarms: [] }] } }, cfgA);
  assert.equal(none.conditions, []);
  assert.ok(none.scopes.includes("site-lag:site2") && none.scopes.includes("site-promoted:site2"), "judged: an alarm held by this node clears");
});
Alarms("metrics: lag in seconds and transactions, state, up", async () => {
  const { text } = await renderMetrics({ node: "node1", sites: [{ site: "site2", up: true, state: "lagging", lagSeconds: 12, lagTransactions: 340 }] });
  assert.match(text, /bollard_site_replication_lag_seconds\{site="site2"\} 12/);
  assert.match(text, /bollard_site_replication_lag_transactions\{site="site2"\} 340/);
  assert.match(text, /bollard_site_state\{site="site2",state="lagging"\} 1/);
  assert.match(text, /bollard_site_up\{site="site2"\} 1/);
});
Alarms.run();

const View = suite("site: the services screen's lines");
View("state, lag in seconds and transactions, source; the why when not replicating; nothing without sites", async () => {
  const { siteLines } = await import("../../agent/console/screens-services.ts");
  assert.equal(siteLines([]), []);
  const base = { site: "site2", address: "198.19.2.10:3306", executed: "0-1-5", readOnly: true, readAgoMs: 100, lagAlarmS: 30, lagAlarmTrx: 100, missing: "" };
  const l = siteLines([{ ...base, state: "replicating", why: "from node1", lagS: 0, lagTrx: 3, source: "198.18.0.11:3306" }, { ...base, site: "site3", state: "promoted", why: "promoted at T by x", lagS: null, lagTrx: null, source: null }]);
  assert.match(l[2], /^site2\s+replicating\s+0\s+3\s+198\.18\.0\.11:3306$/);
  assert.match(l[3], /^site3\s+promoted\s+-\s+-\s+-$/);
  assert.is(l[4], "  promoted at T by x");
});
View.run();
