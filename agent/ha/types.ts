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
}
