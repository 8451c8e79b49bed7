// The remote sites' alarms (issue 18, docs/site.md): site-lag (over lag_alarm_s or
// lag_alarm_trx, or not replicating), site-down (its MySQL unreachable), site-promoted (it was
// promoted: this room is read-only), site-diverged (it has what the primary lacks). Judged on
// every node, raised by the acting leader alone (ha/site.ts decides which), like writes-down.
import type { Collector } from "./collector.ts";
import { alarmId, type SitesInput } from "./types.ts";

const SITE_RULES = ["site-lag", "site-down", "site-promoted", "site-diverged"] as const;

export function siteRules(out: Collector, node: string, s: SitesInput): void {
  for (const x of s.sites) {
    for (const rule of SITE_RULES) out.judged(alarmId(rule, x.site));
    for (const a of x.alarms) {
      const id = alarmId(a.rule, x.site);
      out.add({ id, scope: id, rule: a.rule, severity: a.severity, node, text: a.text, detail: a.detail });
    }
  }
}
