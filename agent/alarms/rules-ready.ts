// The N+1 readiness alarm (issue 17 item 3, docs/readiness.md), pure: one per node the cluster
// could not lose now without a service stopping (major), or could lose only slowly (minor: no
// fence path proven, so a failover would wait for the node's self-fence deadline). The text
// names the node and what would happen; the detail says why, and changes without a transition.
// A node whose readiness this node cannot judge (it has no quorum) is not judged: held.
import type { Collector } from "./collector.ts";
import { alarmId, type ReadyInput } from "./types.ts";

export function readinessRules(out: Collector, r: ReadyInput): void {
  if (r.ok === null) return;
  for (const n of r.nodes) {
    const id = alarmId("not-ready", n.node);
    out.judged(id);
    if (n.verdict === "no" && n.blocks.length) {
      const text = `losing ${n.node} would ${n.blocks[0]!.effect}`;
      out.add({ id, scope: id, rule: "not-ready", severity: "major", node: n.node, text, detail: n.blocks.map((b) => `${b.effect}: ${b.why}`).join("; ").slice(0, 1000) });
    } else if (n.verdict === "slower" && n.slows.length) {
      const text = `losing ${n.node} would ${n.slows[0]!.effect}`;
      out.add({ id, scope: id, rule: "not-ready", severity: "minor", node: n.node, text, detail: n.slows.map((b) => b.why).join("; ").slice(0, 1000) });
    }
  }
}
