// The web console's failover timelines (agent/web/ui/timeline.ts): the HA manager's events,
// as they come merged from several nodes, grouped into one timeline per procedure.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { EventLine } from "../../agent/console/model.ts";
import { timelines } from "../../agent/web/ui/timeline.ts";

const ev = (ts: string, kind: string, detail: string, fields?: Record<string, unknown>, node = "node2"): EventLine => ({ ts: `2026-12-06T08:00:${ts}Z`, kind, node, term: 3, detail, ...(fields ? { fields } : {}) });

const T = suite("failover timelines");

T("a failover's steps in order with their durations, and its total, whatever order the nodes' events came in", () => {
  const lines = [
    ev("01.500", "step", "failover mysql step confirmFence done in 400 ms", { svc: "mysql", step: "confirmFence", ms: 400 }),
    ev("01.000", "failover", "failover of mysql from node1 started: node1 lost; steps confirmLost, confirmFence, promote", { svc: "mysql", from: "node1", kind: "failover", cause: "lost" }),
    ev("01.100", "step", "failover mysql step confirmLost done in 100 ms", { svc: "mysql", step: "confirmLost", ms: 100 }),
    ev("01.400", "fence", "node1 power off CONFIRMED", undefined, "node3"),
    ev("01.600", "role", "mysql on node3: replica -> primary", undefined, "node3"),
    ev("01.700", "step", "failover mysql step promote done in 200 ms", { svc: "mysql", step: "promote", ms: 200 }),
    ev("01.800", "failover", "failover of mysql from node1 to node3 done in 800 ms", { svc: "mysql", to: "node3", ms: 800, done: true }),
    ev("02.000", "audit", "someone logged in"),
  ];
  const t = timelines(lines);
  assert.is(t.length, 1);
  assert.equal(t[0]!.steps.map((s) => [s.step, s.ms]), [["confirmLost", 100], ["confirmFence", 400], ["promote", 200]]);
  assert.is(t[0]!.result, "done");
  assert.is(t[0]!.totalMs, 800);
  assert.is(t[0]!.title, "failover of mysql from node1 started");
  assert.is(t[0]!.notes.length, 3, t[0]!.notes.join("\n"));
});

T("a running one, a failed one and one per service side by side", () => {
  const t = timelines([
    ev("01.000", "failover", "failover of mysql from node1 started: x", { svc: "mysql" }),
    ev("01.010", "failover", "failover of redis from node1 started: x", { svc: "redis" }),
    ev("01.100", "step", "s", { svc: "redis", step: "confirmLost", ms: 90 }),
    ev("01.200", "failover", "failover of mysql from node1 FAILED at step promote: no", { svc: "mysql", step: "promote", failed: true }),
  ]);
  assert.equal(t.map((x) => [x.svc, x.result, x.steps.length]), [["mysql", "failed", 0], ["redis", "running", 1]]);
});

T("an interrupted procedure (the leader lost) is marked so", () => {
  const t = timelines([
    ev("01.000", "failover", "switchover of mysql from node1 started: planned", { svc: "mysql" }),
    ev("01.200", "failover", "switchover of mysql from node1 interrupted at step catchUp: lease lost; the next leader resumes from the register"),
  ]);
  assert.is(t[0]!.result, "interrupted");
});

T.run();
