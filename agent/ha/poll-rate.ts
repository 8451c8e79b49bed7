// How often the HA runtime reads its local MySQL, Redis, portal and VIP (issue 5: the idle
// agent at 1 % of a core; 3 MySQL queries 4 times a second were ~1.1 % of it).
//
// Fast (250 ms) while anything is moving: a peer not heard, no quorum, a self-fence or TILT,
// an uncommitted or newly committed config, a fence or switchover in the flags, a local
// action or a leader's procedure under way, a plan with actions, a query waiting for a
// fresh read, or facts whose shape (roles, writability, sources, routes, VIP) just changed.
// Slow (1 s) once all of that has been still for `calmAfterMs`. The failover path does not
// depend on the slow rate: a lost peer makes the next step fast at once, the candidate's
// position is read fresh on the leader's query, and every action is followed by a fresh read.
// What the slow rate costs: a local MySQL or Redis that dies on a calm node is seen up to
// 0.75 s later.
import type { NodeView } from "../cluster/view.ts";
import type { DbFacts } from "./local.ts";

export const FAST_POLL_MS = 250;
export const SLOW_POLL_MS = 1000;
export const CALM_AFTER_MS = 5000;

export interface PollRateInput {
  view: Pick<NodeView, "quorum" | "selfFenced" | "tilt" | "peers" | "config" | "committed">;
  /** local actions in flight */
  busy: number;
  /** the leader's procedures (failovers, switchovers) under way */
  procedures: number;
  /** actions the local plan produced this step */
  planned: number;
  /** a query waits for a fresh read */
  query: boolean;
  /** the facts' shape changed at the last read (PollRate learns it from sawFacts()) */
  factsChanged?: boolean;
}

/** What of the local facts counts as movement: roles, writability, sources, routes, VIP; not positions. */
export function factsShape(f: { mysql: DbFacts | null; redis: DbFacts | null; portal: unknown; vip: unknown }): string {
  const db = (d: DbFacts | null) => d && [d.up, d.role, d.writable, d.source];
  return JSON.stringify([db(f.mysql), db(f.redis), f.portal, f.vip]);
}

/** Why the node is not calm, or null when it is. */
export function unsettled(i: PollRateInput): string | null {
  const v = i.view;
  if (!v.quorum) return "no quorum";
  if (v.selfFenced) return "self-fenced";
  if (v.tilt) return "TILT";
  const lost = v.peers.find((p) => !p.alive);
  if (lost) return `${lost.name} not heard`;
  if (v.config.epoch !== v.committed.epoch) return "config not committed";
  const moving = Object.keys(v.committed.flags).find((k) => /^(fencing|freeze|switchover):/.test(k));
  if (moving) return `flag ${moving}`;
  if (i.busy) return "local action under way";
  if (i.procedures) return "procedure under way";
  if (i.planned) return "local plan has actions";
  if (i.query) return "query waiting";
  if (i.factsChanged) return "facts changed";
  return null;
}

/**
 * Tracks calm across steps and says when the next read is due. `step` returns the poll
 * interval to use now; `due` whether a read should start; `started` and `sawFacts` are told
 * of each read and what it found.
 */
export class PollRate {
  private calmSince: number;
  private epoch = -1;
  private startedAt = -Infinity;
  private shape = "";
  private shapeChanged = false;
  /** the interval the last step chose */
  every = FAST_POLL_MS;
  reason: string | null = "starting";

  constructor(now: number) {
    this.calmSince = now;
  }

  get calm(): boolean {
    return this.every === SLOW_POLL_MS;
  }

  step(now: number, i: PollRateInput): number {
    let why = unsettled({ ...i, factsChanged: i.factsChanged || this.shapeChanged });
    this.shapeChanged = false;
    if (!why && i.view.committed.epoch !== this.epoch) why = `config epoch ${i.view.committed.epoch}`;
    this.epoch = i.view.committed.epoch;
    if (why) {
      this.calmSince = now;
      this.reason = why;
    }
    this.every = now - this.calmSince >= CALM_AFTER_MS ? SLOW_POLL_MS : FAST_POLL_MS;
    return this.every;
  }

  due(now: number): boolean {
    return now - this.startedAt >= this.every;
  }

  started(now: number): void {
    this.startedAt = now;
  }

  /** The shape (factsShape()) of a read's facts: a change counts as movement at the next step. */
  sawFacts(shape: string): void {
    if (shape !== this.shape) this.shapeChanged = true;
    this.shape = shape;
  }
}
