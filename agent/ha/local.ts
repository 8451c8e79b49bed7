// The local resource manager (DESIGN §5, R5, R6): on every node, it brings what this node
// runs in line with the committed config: MySQL and Redis primary or replica of the
// holder, the portal's routes, the VIP. It acts only on committed config, promotes only
// while the node is acting (quorum, no TILT), and when the node self-fences it demotes
// everything whatever it believes. Pure: it says what to do; the runtime does it, one
// action per resource at a time, and the next facts show the result.
import type { ClusterConfig } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import { confirmedInst, fenceHeld, frozen, restoring, type Svc } from "./flags.ts";
import { promotedSites } from "./site.ts";

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
  /** the server's incarnation (messages.ts DbReport.inst); "" when unknown */
  inst?: string;
  /** a replica: ms since anything last arrived from its source; null when unknown */
  recvAgoMs?: number | null;
  /** how long the server has not answered (ms); 0 while it answers */
  downMs?: number;
  /** set once this agent has killed its unanswering server and confirmed it gone: the proof */
  fenced?: string | null;
  /** a MySQL replica's receiver thread is on (running or connecting); a detach stops it alone */
  receiving?: boolean;
  /** a replica whose data differs from the primary's at the last data check (mysql-verify.ts) */
  diverged?: string | null;
  /** the last read was refused: nothing listens on the server's port (it is dead, not slow) */
  refused?: boolean;
}

/** The local portal (nginx): its routes, and whether it answers its health check. */
export interface PortalFacts {
  mysql: string | null;
  redis: string | null;
  /** an nginx master process runs */
  running?: boolean;
  /** how long it has not answered its health check (ms); 0 while it answers */
  downMs?: number;
}

/** How long the LRM lets a local server go unanswered before it fences it (ha.service_fail_ms). */
export interface LocalTiming {
  serviceFailMs: number;
  /** a holder whose killed server was not failed over away is started again after this */
  restartHolderAfterMs: number;
}

export const DEFAULT_LOCAL_TIMING: LocalTiming = { serviceFailMs: 2000, restartHolderAfterMs: 10_000 };

export interface LocalFacts {
  /** monotonic ms */
  now: number;
  view: NodeView;
  mysql: DbFacts | null;
  redis: DbFacts | null;
  portal: PortalFacts | null;
  vip: boolean | null;
  /** the latest executed position each peer reported for a service */
  peerApplied(node: string, svc: Svc): string | null;
  /** whether this node hears `node` (heartbeats within peer-dead) */
  alive(node: string): boolean;
  /** whether `node`'s latest report says it holds the VIP */
  peerVip(node: string): boolean;
  /** whether `node`'s latest report says its server of `svc` is a writable primary */
  peerPrimary?(node: string, svc: Svc): boolean;
  /** what `mine` has that `theirs` lacks, printable; null when mine ⊆ theirs */
  extra(svc: Svc, mine: string, theirs: string): string | null;
}

export type LocalAction =
  /** readOnly: drain the relay log and stop replicating, but stay read-only (restoreHold) */
  | { res: Svc; do: "promote"; why: string; readOnly?: boolean }
  | { res: Svc; do: "demote"; why: string }
  | { res: Svc; do: "replicate"; from: string; why: string }
  | { res: Svc; do: "detach"; why: string }
  /** local fence: kill the server that does not answer and confirm it gone (issue 22 item 1) */
  | { res: Svc; do: "kill"; why: string }
  /** start the server (it was killed, or found dead) */
  | { res: Svc; do: "start"; why: string }
  | { res: "portal"; do: "route"; mysql: string | null; redis: string | null; why: string }
  /** nginx is dead or does not answer: kill what is left of it and start it again */
  | { res: "portal"; do: "restart"; why: string }
  | { res: "vip"; do: "acquire" | "release"; why: string };

/**
 * The holder's server while `bollard restore mysql --replace` runs (the register flag
 * restore:<svc>, backup/replace.ts): writes stop cluster-wide. A writable server is made
 * read-only; a replica that has just been made the holder (a failover during the replace) is
 * promoted read-only (relay log applied, replication stopped) so that the failover completes
 * without writes resuming; a read-only one stays so. `undefined`: no replace under way (the
 * usual rules decide); null: nothing to do.
 */
export function restoreHold(svc: Svc, d: DbFacts, flags: ClusterConfig["flags"]): LocalAction | null | undefined {
  const r = restoring(flags, svc);
  if (!r) return undefined;
  const why = `writes stopped: restore --replace ${r.id} under way`;
  if (d.writable) return { res: svc, do: "demote", why };
  if (d.role === "replica") return { res: svc, do: "promote", readOnly: true, why: `${why}: promoted read-only` };
  return null;
}

/** how long a divergence must persist in the peers' reports before the node holds itself out */
const SUSPECT_MS = 2000;
/** a replica stops pulling from a holder it does not hear once nothing has come from it for this long */
export const DETACH_IDLE_MS = 1000;
/** a server whose port refuses connections (dead, not slow) is failed after this, not service_fail_ms */
export const REFUSED_FAIL_MS = 500;
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
    private readonly t: LocalTiming = DEFAULT_LOCAL_TIMING,
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
    const p = f.portal;
    if (!busy.has("portal") && p && (p.running === false || (p.downMs ?? 0) >= this.t.serviceFailMs)) {
      out.push({ res: "portal", do: "restart", why: p.running === false ? "nginx is not running" : `nginx has not answered its health check for ${Math.round(p.downMs!)} ms` });
    } else if (!busy.has("portal") && f.portal) {
      // A holder that is being fenced (or was) gets no new client connection: nginx closes it
      // at once instead of letting it wait out proxy_connect_timeout (1 s) against a dead node.
      // A client that reached a new VIP holder before its portal switched waited that second
      // (2 of 5 bench-peers runs). Routing nowhere is always safe: fewer writes, never two.
      const to = (svc: "mysql" | "redis") => {
        const h = cfg.assignments[svc] ?? null;
        return h && fenceHeld(cfg.flags, h) ? null : h;
      };
      const want = fenced ? { mysql: null, redis: null } : { mysql: to("mysql"), redis: to("redis") };
      if (want.mysql !== f.portal.mysql || want.redis !== f.portal.redis) {
        out.push({ res: "portal", do: "route", ...want, why: fenced ? "self-fenced: route no writes" : want.mysql !== (cfg.assignments.mysql ?? null) || want.redis !== (cfg.assignments.redis ?? null) ? `committed epoch ${cfg.epoch}: no route to a node being fenced` : `committed epoch ${cfg.epoch}` });
      }
    }
    if (!busy.has("vip") && f.vip !== null) {
      // Taken only while acting on a current config; kept while assigned here and not fenced.
      // Not acting (TILT after a stall, an election) is no reason to drop it: a 2-second stall
      // released the VIP and cut clients off for 2 more seconds (issue 20). A node cut off from
      // the majority releases it when it fences itself (R6).
      const assigned = cfg.assignments.vip === this.self && !fenced;
      const want = f.vip ? assigned : assigned && f.view.acting && f.view.current;
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

  /**
   * A server that does not answer (dead or hung) is fenced here, where the agent can: killed and
   * confirmed gone (the runtime's kill), so that a hung one never wakes up writable. Its proof goes
   * to the leader in the report, which fails the service over like a lost node. Then it is
   * started again, as a replica: at once on a replica's node; on the holder's once the service
   * has moved away, or after restartHolderAfterMs when nothing could move it.
   */
  private down(svc: Svc, d: DbFacts, holder: string | undefined): LocalAction | null {
    const downMs = d.downMs ?? 0;
    if (!d.fenced) {
      // a hung server may be slow only: it gets service_fail_ms; a refused connection is a dead one
      const limit = d.refused ? Math.min(this.t.serviceFailMs, REFUSED_FAIL_MS) : this.t.serviceFailMs;
      return downMs >= limit ? { res: svc, do: "kill", why: `${svc} has not answered for ${Math.round(downMs)} ms${d.refused ? " (connection refused: nothing listens)" : ""}` } : null;
    }
    if (holder !== this.self) return { res: svc, do: "start", why: `${svc} was fenced here (${d.fenced}); ${holder ?? "nobody"} holds it now` };
    if (downMs >= this.t.serviceFailMs + this.t.restartHolderAfterMs) return { res: svc, do: "start", why: `${svc} was fenced here ${Math.round(downMs / 1000)} s ago and is still assigned here: started read-only, for the leader to compare` };
    return null;
  }

  private db(svc: Svc, d: DbFacts | null, cfg: ClusterConfig, f: LocalFacts, fenced: boolean): LocalAction | null {
    if (!d) return null;
    const holder = cfg.assignments[svc];
    if (!d.up) return this.down(svc, d, holder);
    if (fenced) {
      const why = f.view.selfFenced ? "self-fenced (R6): no majority contact" : fenceHeld(cfg.flags, this.self) ? "the cluster has fenced this node" : "not a member";
      return d.writable ? { res: svc, do: "demote", why } : null;
    }
    if (!holder) return d.writable ? { res: svc, do: "demote", why: "no primary is assigned yet" } : null;
    if (holder === this.self) {
      // a remote site was promoted (ha/site.ts): this room's MySQL is read-only until re-cloned
      const site = svc === "mysql" ? promotedSites(cfg.flags)[0] : undefined;
      if (site) return d.writable ? { res: svc, do: "demote", why: `remote site ${site} was promoted: this room stays read-only until it is re-cloned` } : null;
      if (frozen(cfg.flags, svc) === this.self) return d.writable ? { res: svc, do: "demote", why: "planned switchover: read-only until the target has caught up" } : null;
      const rs = restoreHold(svc, d, cfg.flags);
      if (rs !== undefined) {
        if (rs === null || rs.do === "demote") return rs;
        // a failover's new holder during a replace: its relay log applied, read-only still
        if (!f.view.acting || !f.view.current || this.heldOut.has(svc) || !d.inst || confirmedInst(cfg.flags, svc) !== d.inst) return null;
        return rs;
      }
      if (d.role === "primary" && d.writable) return null;
      // R5: promote only while acting, and only on a config known to be the latest
      if (!f.view.acting || !f.view.current) return null;
      if (this.heldOut.has(svc)) return null;
      // Never on its own word (issue 22 item 2): only the incarnation the leader confirmed after
      // comparing positions. A restarted server (truncated binlog, empty Redis) waits read-only.
      if (!d.inst || confirmedInst(cfg.flags, svc) !== d.inst) return null;
      return { res: svc, do: "promote", why: `assigned ${svc} in epoch ${cfg.epoch}` };
    }
    // another node holds it: this one must be its replica
    if (d.writable || d.role === "primary") return { res: svc, do: "demote", why: `${holder} holds ${svc} (epoch ${cfg.epoch})` };
    // Its data differs from the primary's (a data check): it stops replicating and stays held
    // out until it is re-cloned; nothing it holds may ever be promoted or mixed in again.
    if (d.diverged) {
      const why = `data differs from ${holder}'s: ${d.diverged}; held out, needs re-cloning`;
      if (this.heldOut.get(svc) !== why) this.note("held-out", `${svc} on ${this.self} ${why}`);
      this.heldOut.set(svc, why);
      return d.source !== null && d.receiving !== false && svc === "mysql" ? { res: svc, do: "detach", why } : null;
    }
    if (!f.alive(holder)) {
      // A source that is being fenced may come back with transactions the next primary will
      // not have: stop pulling from it (the IO thread only: what was received is still applied);
      // attach again only on a current config. Not merely because its agent is silent: a stalled
      // agent is not a dead node, and replicas that detach from a live primary stop its commits
      // (semi-sync) for nothing (issue 20). So: once the leader fences it, or once nothing has
      // come from it either.
      if (d.source !== holder || svc !== "mysql" || d.receiving === false) return null;
      if (fenceHeld(cfg.flags, holder)) return { res: svc, do: "detach", why: `${holder} is being fenced: stop replicating from it` };
      const idle = d.recvAgoMs ?? Infinity;
      return idle >= DETACH_IDLE_MS ? { res: svc, do: "detach", why: `${holder} is not heard and nothing came from it for ${idle === Infinity ? "ever" : `${Math.round(idle)} ms`}: stop replicating from it` } : null;
    }
    // Attached to the holder, unless it detached while the holder was silent (a partition): its
    // receiver stays stopped until it is pointed at the holder again, below (found by make
    // nemesis, seed 112: a replica cut off for 5.7 s never caught up after the partition healed).
    if (d.source === holder && !(svc === "mysql" && d.receiving === false)) {
      this.heldOut.delete(svc);
      return null;
    }
    if (fenceHeld(cfg.flags, holder)) return null; // being fenced: going down, not to be followed
    if (!f.view.current) return null; // attach only on a config known to be the latest
    // ... and to a primary that is one: a holder whose server restarted waits read-only for the
    // leader to compare positions, and a replica that has more than it is a candidate, not a
    // diverged node to hold out
    if (f.peerPrimary && !f.peerPrimary(holder, svc)) return null;
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
