// The local resource manager (DESIGN §5, R5, R6): on every node, it brings what this node
// runs in line with the committed config: MySQL and Redis primary or replica of the
// holder, the portal's routes, the VIP. It acts only on committed config, promotes only
// while the node is acting (quorum, no TILT), and when the node self-fences it demotes
// everything whatever it believes. Pure: it says what to do; the runtime does it, one
// action per resource at a time, and the next facts show the result.
import type { ClusterConfig } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import { fenceHeld, frozen, type Svc } from "./flags.ts";

export interface DbFacts {
  up: boolean;
  role: "primary" | "replica" | "none";
  writable: boolean;
  /** position received (MySQL: GTID set incl. relay log; Redis: offset) */
  received: string;
  /** position applied/executed */
  applied: string;
  /** node it replicates from, or null */
  source: string | null;
  /** MySQL replica threads as SHOW SLAVE STATUS says (alarms; never sent in reports) */
  repl?: { ioRunning: boolean; sqlRunning: boolean; lagSeconds: number | null; lastError: string | null };
}

export interface LocalFacts {
  /** monotonic ms */
  now: number;
  view: NodeView;
  mysql: DbFacts | null;
  redis: DbFacts | null;
  portal: { mysql: string | null; redis: string | null } | null;
  vip: boolean | null;
  /** the latest executed position each peer reported for a service */
  peerApplied(node: string, svc: Svc): string | null;
  /** whether this node hears `node` (heartbeats within peer-dead) */
  alive(node: string): boolean;
  /** whether `node`'s latest report says it holds the VIP */
  peerVip(node: string): boolean;
  /** what `mine` has that `theirs` lacks, printable; null when mine ⊆ theirs */
  extra(svc: Svc, mine: string, theirs: string): string | null;
}

export type LocalAction =
  | { res: Svc; do: "promote"; why: string }
  | { res: Svc; do: "demote"; why: string }
  | { res: Svc; do: "replicate"; from: string; why: string }
  | { res: Svc; do: "detach"; why: string }
  | { res: "portal"; do: "route"; mysql: string | null; redis: string | null; why: string }
  | { res: "vip"; do: "acquire" | "release"; why: string };

/** how long a divergence must persist in the peers' reports before the node holds itself out */
const SUSPECT_MS = 2000;
/** how long a VIP that moves to a live peer is kept until that peer reports holding it */
export const VIP_HANDOVER_MS = 1500;

export class LocalManager {
  /** per service: why this node holds itself out of replication (diverged), or absent */
  readonly heldOut = new Map<Svc, string>();
  /** a divergence seen once may be a peer report that lags our own data: confirm it over time */
  private readonly suspect = new Map<Svc, number>();
  /** the VIP is being handed over to `to` since `since` (local ms) */
  private handover: { to: string; since: number } | null = null;

  constructor(
    private readonly self: string,
    private readonly note: (kind: string, detail: string) => void,
  ) {}

  /** What to do now, at most one action per resource; `busy` lists resources with one in flight. */
  plan(f: LocalFacts, busy: ReadonlySet<string>): LocalAction[] {
    const out: LocalAction[] = [];
    const cfg = f.view.committed;
    const fenced = f.view.selfFenced || !f.view.member || fenceHeld(cfg.flags, this.self);
    for (const svc of ["mysql", "redis"] as const) {
      if (busy.has(svc)) continue;
      const a = this.db(svc, f[svc], cfg, f, fenced);
      if (a) out.push(a);
    }
    if (!busy.has("portal") && f.portal) {
      const want = fenced ? { mysql: null, redis: null } : { mysql: cfg.assignments.mysql ?? null, redis: cfg.assignments.redis ?? null };
      if (want.mysql !== f.portal.mysql || want.redis !== f.portal.redis) {
        out.push({ res: "portal", do: "route", ...want, why: fenced ? "self-fenced: route no writes" : `committed epoch ${cfg.epoch}` });
      }
    }
    if (!busy.has("vip") && f.vip !== null) {
      const want = cfg.assignments.vip === this.self && f.view.acting && f.view.current && !fenced;
      if (want || !f.vip) this.handover = null;
      if (want !== f.vip && !(f.vip && this.handingOver(f, cfg, fenced))) {
        out.push({ res: "vip", do: want ? "acquire" : "release", why: want ? `assigned in epoch ${cfg.epoch}` : fenced ? "self-fenced" : "not ours" });
      }
    }
    return out;
  }

  /**
   * A planned move (switchover, maintenance): the old holder keeps the VIP until the new one
   * reports holding it, at most VIP_HANDOVER_MS. Released first, the address answered nowhere
   * for a moment and a client's connect in that moment hung for its whole connect timeout
   * (the lab's switchover paused writes 1.3 s). Both holding it is harmless: each portal routes
   * to the committed primary, and the frozen old one refuses writes. Never when fenced: a
   * fenced node releases at once, and a failover's old holder is dead or cut off anyway.
   */
  private handingOver(f: LocalFacts, cfg: ClusterConfig, fenced: boolean): boolean {
    const next = cfg.assignments.vip;
    if (fenced || !next || next === this.self || !f.alive(next) || f.peerVip(next)) return false;
    if (this.handover?.to !== next) this.handover = { to: next, since: f.now };
    return f.now - this.handover.since < VIP_HANDOVER_MS;
  }

  private db(svc: Svc, d: DbFacts | null, cfg: ClusterConfig, f: LocalFacts, fenced: boolean): LocalAction | null {
    if (!d || !d.up) return null;
    const holder = cfg.assignments[svc];
    if (fenced) {
      const why = f.view.selfFenced ? "self-fenced (R6): no majority contact" : fenceHeld(cfg.flags, this.self) ? "the cluster has fenced this node" : "not a member";
      return d.writable ? { res: svc, do: "demote", why } : null;
    }
    if (!holder) return d.writable ? { res: svc, do: "demote", why: "no primary is assigned yet" } : null;
    if (holder === this.self) {
      if (frozen(cfg.flags, svc) === this.self) return d.writable ? { res: svc, do: "demote", why: "planned switchover: read-only until the target has caught up" } : null;
      if (d.role === "primary" && d.writable) return null;
      // R5: promote only while acting, and only on a config known to be the latest
      if (!f.view.acting || !f.view.current) return null;
      if (this.heldOut.has(svc)) return null;
      return { res: svc, do: "promote", why: `assigned ${svc} in epoch ${cfg.epoch}` };
    }
    // another node holds it: this one must be its replica
    if (d.writable || d.role === "primary") return { res: svc, do: "demote", why: `${holder} holds ${svc} (epoch ${cfg.epoch})` };
    if (!f.alive(holder)) {
      // A source we no longer hear may be fenced and come back with transactions the next
      // primary will not have: stop pulling from it; attach again only on a current config.
      return d.source === holder && svc === "mysql" ? { res: svc, do: "detach", why: `${holder} is not heard: stop replicating from it` } : null;
    }
    if (d.source === holder) {
      this.heldOut.delete(svc);
      return null;
    }
    if (!f.view.current) return null; // attach only on a config known to be the latest
    const theirs = f.peerApplied(holder, svc);
    if (theirs === null) return null; // wait for the new primary's report
    const extra = f.extra(svc, d.applied, theirs);
    if (extra === null) this.suspect.delete(svc);
    else if (!this.heldOut.has(svc) && f.now - (this.suspect.get(svc) ?? (this.suspect.set(svc, f.now), f.now)) < SUSPECT_MS) return null;
    if (extra !== null) {
      const why = `diverged from ${holder}: has ${extra} that ${holder} lacks; held out, needs re-cloning`;
      if (this.heldOut.get(svc) !== why) this.note("held-out", `${svc} on ${this.self} ${why}`);
      this.heldOut.set(svc, why);
      return null;
    }
    this.heldOut.delete(svc);
    return { res: svc, do: "replicate", from: holder, why: `${holder} holds ${svc} (epoch ${cfg.epoch})` };
  }
}
