// A stopped rollout's event becomes the upgrade-failed alarm (runtime/watch-inputs.ts,
// alarms/rules.ts), held until acknowledged; a completed rollout resolves it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import { eventInput } from "../../agent/runtime/watch-inputs.ts";

const A = suite("upgrade-failed: from the rollout's events");
const ev = (detail: string, fields: Record<string, unknown>) => ({ ts: "2026-12-06T07:00:00.000Z", kind: "upgrade", node: "node3", term: 4, detail, fields });

A("a stopped rollout raises it, naming the node, with the reason as its detail; a done rollout resolves it", () => {
  const why = "rolling upgrade to 0.2.0 (abc) STOPPED at node1: not healthy by the deadline: node1 is not heard";
  const failed = eventInput(ev(why, { failed: true, node: "node1", rollout: "failed" }) as never);
  assert.equal(failed, { kind: "upgrade-failed", target: "node1", detail: why });
  const r = evaluate({ node: "node3", events: [failed!] }, defaultAlarmsConfig().rules);
  assert.equal(r.conditions.map((c) => [c.severity, c.id, c.text, c.detail, c.hold]), [["major", "upgrade-failed", "upgrade stopped: node1 failed its health gate", why, "ack"]]);
  const done = eventInput(ev("rolling upgrade to 0.2.0 (abc) done", { rollout: "done" }) as never);
  assert.equal(evaluate({ node: "node3", events: [done!] }, defaultAlarmsConfig().rules).resolved, ["upgrade-failed"]);
  assert.is(eventInput(ev("node2 upgraded to 0.2.0", { node: "node2" }) as never), null, "a node's success is only an event");
});

A.run();
