// The VM alarms (issue 14 §4): what the leader's VM manager finds wrong (ha/vm-manager.ts
// problems()): a VM down, its restart failed (or held by anti-flapping), its mirror degraded (no
// replica in sync), no node with room to honour its anti-affinity. The leader judges them; a
// node that hears another leader judges them too, with nothing, so that what it raised while it
// led clears; without a leader they are held as they are. Pure.
import type { VmAlarmInput, VmProblem } from "../ha/vm-types.ts";
import type { Collector } from "./collector.ts";
import { alarmId, type RuleName, type Severity } from "./types.ts";

const KIND: Record<VmProblem["kind"], { rule: RuleName; severity: Severity; text: (vm: string, node: string | null) => string }> = {
  down: { rule: "vm-down", severity: "major", text: (vm, n) => `VM ${vm} down${n ? ` (placed on ${n})` : ""}` },
  "restart-failed": { rule: "vm-restart-failed", severity: "critical", text: (vm) => `VM ${vm} cannot be restarted` },
  "mirror-degraded": { rule: "vm-mirror-degraded", severity: "major", text: (vm, n) => `VM ${vm} runs without a replica in sync${n ? ` on ${n}` : ""}` },
  "no-capacity": { rule: "vm-no-capacity", severity: "major", text: (vm) => `VM ${vm}: no node can take it without breaking its anti-affinity or capacity` },
};

export function vmRules(out: Collector, reporter: string, v: VmAlarmInput): void {
  if (!v.judge) return;
  for (const vm of v.vms) for (const k of Object.values(KIND)) out.judged(alarmId(k.rule, vm));
  for (const p of v.problems) {
    const k = KIND[p.kind];
    const id = alarmId(k.rule, p.vm);
    out.add({ id, scope: id, rule: k.rule, severity: k.severity, node: p.node ?? reporter, text: k.text(p.vm, p.node), detail: p.why });
  }
}
