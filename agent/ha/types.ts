// What the HA manager (manager.ts) and its runbook steps (steps.ts) both read: the manager's
// input at each tick and the resource reports in it. Here so the two need not import each other.
import type { ResReport } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import type { Svc } from "./flags.ts";

export interface Report {
  r: ResReport;
  /** local monotonic ms when it arrived */
  at: number;
}

export interface HaInput {
  now: number;
  wall: number;
  view: NodeView;
  reports: ReadonlyMap<string, Report>;
  /** order of two positions (GTID sets, offsets): >0 a ahead, 0 same, <0 behind, null diverged */
  cmp(svc: Svc, a: string, b: string): number | null;
  /** the leader's probes of silent holders' servers (manager.ts probeTargets), by node */
  probes?: ReadonlyMap<string, DataPath>;
  /** why MySQL must not be placed, failed over or recovered now (a remote site, ha/site.ts), or null */
  siteHold?: () => string | null;
}

/** What the leader's probe found of a silent holder's server. */
export interface DataPath {
  /** local ms when it last answered (and was writable, being the primary) */
  okAt: number | null;
  /** local ms when a probe last failed (no answer in time, refused, not the primary) */
  failAt?: number | null;
}

export interface HaTiming {
  /** no second automatic failover of a service within this period unless acknowledged */
  antiFlapMs: number;
  /** a step that takes longer fails the procedure (the fence step gets fenceTimeoutMs) */
  stepTimeoutMs: number;
  fenceTimeoutMs: number;
  /** a server that has not answered this long is failed (ha.service_fail_ms) */
  serviceFailMs: number;
  /** the watchdog every node runs under, and the margin on top: how long a silent node whose
   *  data path still answers is waited for before it is fenced */
  watchdogMs: number;
  fenceMarginMs: number;
  /** no writable primary clients can reach for this long: a CRITICAL alarm (ha.writes_down_alarm_ms) */
  writesDownAlarmMs: number;
}

