// The console's pure rendering: state -> 80x24 lines. Every screen in every state fits 80
// columns in ASCII; the top line says OK / DEGRADED / CRITICAL and why; the screens show what
// the Model holds.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { assess, type Model } from "../../agent/console/model.ts";
import { renderFrame } from "../../agent/console/render.ts";
import type { ScreenNo, Ui } from "../../agent/console/ui.ts";
import { nodesTable } from "../../agent/console/screens-cluster.ts";
import { durationOf, eventLine } from "../../agent/console/screens-lists.ts";
import { serviceViews } from "../../agent/console/screens-services.ts";
import { lineText } from "../../agent/console/vt100.ts";
import { NOW, body, events, model } from "./console-fixture.ts";

const ui = (screen: ScreenNo, over: Partial<Ui> = {}): Ui => ({ screen, sel: { alarms: 0, logs: 0, events: 0 }, logLevel: "info", logNode: "node1", eventNode: "all", eventKinds: "timeline", message: null, prompt: null, actions: { at: "menu", note: null }, ...over });
const text = (m: Model, s: ScreenNo, h = 24, over: Partial<Ui> = {}) => renderFrame(m, ui(s, over), h).map(lineText);

function node3Down(): Model {
  const m = model();
  const p = m.status.body!.view.peers.find((x) => x.name === "node3")!;
  Object.assign(p, { alive: false, lastHeardMs: 42_000, role: "follower" });
  m.hw.nodes.node3 = { bmc: "ok", power: "off", tempC: null, fans: null, psus: null };
  return m;
}

const STATES: Record<string, () => Model> = {
  healthy: () => model(),
  "node3 down": node3Down,
  "agent down": () => model({ status: { live: false, body: body(), wall: NOW - 12_300, why: "connect ECONNREFUSED" } }),
  "no state": () => model({ status: { live: false, body: null, wall: null, why: "connect ENOENT" }, alarms: { available: false, active: [], error: null }, events: { lines: [], errors: ["node1: agent not answering"] } }),
  "no quorum": () => model({ status: { live: true, body: body({ quorum: false, leader: null, role: "follower", selfFenced: true }), wall: NOW - 100, why: null } }),
  "failover running": () => {
    const m = node3Down();
    const ha = m.status.body!.ha as { procedures: string[] };
    ha.procedures = ["failover of mysql: confirmFence"];
    m.status.body!.view.committed.flags = { "fencing:node3": "1", "maint:node2": "on", ha: "disarmed" };
    return m;
  },
  "long texts": () => {
    const m = model();
    m.logs.lines = Array.from({ length: 300 }, (_, i) => ({ ts: `2026-11-22T09:59:${String(i % 60).padStart(2, "0")}.000Z`, level: "warn", ns: "ha.mysql", msg: `a long message ${"x".repeat(i % 120)} \u00e9\u2713`, n: i }));
    m.alarms.active = Array.from({ length: 40 }, (_, i) => ({ id: `a${i}`, severity: ["critical", "major", "minor"][i % 3]!, node: "node2", text: `alarm ${i} ${"y".repeat(90)}`, state: "raised", raisedAt: NOW - i * 1000, ackedBy: i % 4 ? null : "ops" }));
    return m;
  },
};

const R = suite("console rendering");

R("every screen in every state: 24 lines of at most 80 printable ASCII characters", () => {
  for (const [name, make] of Object.entries(STATES)) {
    for (const s of [1, 2, 3, 4, 5, 6, 7] as ScreenNo[]) {
      const lines = text(make(), s);
      assert.is(lines.length, 24, `${name}, screen ${s}`);
      for (const l of lines) {
        assert.ok(l.length <= 80, `${name}, screen ${s}: ${l.length} columns: ${l}`);
        assert.ok(/^[\x20-\x7e]*$/.test(l), `${name}, screen ${s}: not ASCII: ${JSON.stringify(l)}`);
      }
    }
  }
  assert.is(text(model(), 4, 40).length, 40, "a taller terminal gets more rows");
});

R("the top line: state, reason, leader, term, VIP, this node", () => {
  const top = (m: Model) => text(m, 1)[0]!;
  const ok = top(model());
  assert.match(ok, /^ OK +leader node1  term 3  VIP 198\.18\.0\.10@node1  node node1 $/);
  assert.match(top(node3Down()), /^ DEGRADED node3 down .*leader node1/);
  assert.match(top(STATES["agent down"]!()), /^ CRITICAL agent down on node1/);
  assert.match(top(STATES["no quorum"]!()), /^ CRITICAL node1 self-fenced \(\+1\) +ldr none t3 198\.18\.0\.10@node1 \[node1\] $/);
  assert.match(top(STATES["no state"]!()), /^ CRITICAL agent down, no last known state .*t\? .*\[node1\] $/);
});

R("the bottom line says how old the data is when the agent is down", () => {
  assert.match(text(model(), 1)[23]!, /^live \| 1-8 screens/);
  assert.match(text(STATES["agent down"]!(), 1)[23]!, /^AGENT DOWN, last known 12\.3s old \|/);
  assert.match(text(STATES["no quorum"]!(), 2)[23]!, /^NO QUORUM: view may be stale/);
  assert.match(text(model(), 3, 24, { prompt: "acknowledge a1? y/n" })[23]!, /acknowledge a1\? y\/n/);
});

R("assess: what makes DEGRADED and CRITICAL", () => {
  assert.equal(assess(model()), { level: "OK", reasons: [] });
  const running = assess(STATES["failover running"]!());
  assert.is(running.level, "CRITICAL");
  assert.ok(running.reasons.includes("mysql: failover of mysql: confirmFence"), running.reasons.join("; "));
  assert.ok(running.reasons.includes("fencing node3"));
  assert.ok(running.reasons.includes("HA disarmed") && running.reasons.includes("node2 in maintenance"));
  const m = model();
  const p = m.status.body!.view.peers.find((x) => x.name === "node2")!;
  p.alive = false;
  assert.equal(assess(m).reasons, ["redis: primary node2 down", "node2 down"]);
  const r = model();
  (r.status.body!.ha as { peers: Record<string, { mysql: { source: string | null } }> }).peers.node3!.mysql.source = null;
  assert.equal(assess(r), { level: "DEGRADED", reasons: ["mysql: node3 not replicating"] });
});

R("screen 1: the nodes table", () => {
  const t = nodesTable(node3Down());
  assert.match(t[0]!, /^NODE +ROLE +STATE +HEARD +BMC +POWER +TEMP +LINK A\/B +LOAD +HOLDS/);
  assert.match(t[1]!, /^node1\* +leader +up +- +ok +on +41C +up\/up +0\.52 +mysql vip$/);
  assert.match(t[3]!, /^node3 +- +DOWN +42\.0s +ok +off +- +up\/up +- +-$/);
});

R("screen 2: primaries, replicas, lag, positions, portal routes", () => {
  const v = serviceViews(model());
  assert.equal(v.map((x) => [x.svc, x.holder]), [["mysql", "node1"], ["redis", "node2"]]);
  assert.equal(v[0]!.rows.map((r) => [r.node, r.role, r.lag, r.position]), [["node1", "primary", null, "0-1-1234"], ["node2", "replica", 0, "0-1-1234"], ["node3", "replica", 2, "0-1-1232"]]);
  const s = text(model(), 2);
  assert.ok(s.includes("MySQL: primary node1, writable"));
  assert.ok(s.some((l) => /^node1\* +node1 +node2 +HELD$/.test(l)), s.join("\n"));
});

R("screen 5: the failover timeline with each step's duration", () => {
  assert.is(durationOf(events[1]!), 350);
  assert.is(durationOf(events[0]!), null);
  assert.match(eventLine(events[1]!), /^09:58:01\.450 node1  step +350ms mysql confirmFence: fence proof for node3/);
  const s = text(model(), 5);
  assert.match(s[2]!, /^Events of all nodes, failover timeline: 5$/);
  assert.ok(!s.some((l) => / commit /.test(l)), "commits are not part of the timeline");
  assert.ok(text(model(), 5, 24, { eventKinds: "all" }).some((l) => / commit /.test(l)));
  assert.match(s.at(-3)!, /^> to node1 done in 700 ms/, "the selected (newest) event in full");
});

R("screen 4 and 3: selection in reverse video, the selected item in full", () => {
  const f = renderFrame(STATES["long texts"]!(), ui(4, { sel: { alarms: 0, logs: 5, events: 0 } }));
  const rev = f.filter((l) => typeof l === "object");
  assert.is(rev.length, 2, "the top line and the selected log line");
  assert.match(lineText(rev[1]!), /^09:59:54\.000 W ha\.mysql/);
  assert.ok(lineText(f[21]!).endsWith("n=294"), "its fields in the detail rows");
  const a = text(STATES["long texts"]!(), 3);
  assert.match(a[2]!, /^40 active alarms/);
  assert.match(a[4]!, /^CRIT node2 +alarm 3 y+~ +3\.0s +NOT ACKED *$/, "unacknowledged and most severe first");
});

R.run();
