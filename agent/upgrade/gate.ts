// The rollout's decisions, pure (no I/O, no clock of their own): which nodes and in which
// order (the leader's node last), whether a rollout may start, and the health gate a node
// must pass after its agent restarted on the new bundle (docs/upgrade.md). The CLI's driver
// (rollout.ts) and the unit tests feed them facts.
import type { DbReport } from "../bus/messages.ts";
import { subsetOf, type GtidKind } from "../resources/gtid.ts";

/** What a node's retained state says of it (runtime/upgrade-component.ts), and whether it is heard. */
export interface NodeFacts {
  node: string;
  /** heard now (self: always) */
  heard: boolean;
  version: string | null;
  /** sha256 of the bundle its agent runs; null: unknown (an agent older than upgrades) */
  bundle: string | null;
  quorum: boolean | null;
  leader: string | null;
  /** its upgrade step; absent: the agent does not know `bollard upgrade` */
  upgrade?: { step: string; sha?: string; version?: string; why?: string } | null;
  /** the root slot and image version it runs, its last image upgrade; absent or null: not run from a bollard image */
  image?: { slot: string; version: string | null; last: { step: string; version: string; slot: string; why: string } | null } | null;
}

export interface Plan {
  order: string[];
  /** already running the bundle */
  skip: string[];
  /** why the rollout must not start, or null */
  refuse: string | null;
}

/** Nodes not yet on `sha`: the others by name, then the leader's node. */
export function planRollout(sha: string, members: string[], leader: string | null, nodes: NodeFacts[]): Plan {
  const by = new Map(nodes.map((n) => [n.node, n]));
  const skip = members.filter((m) => by.get(m)?.bundle === sha);
  const todo = members.filter((m) => !skip.includes(m));
  const order = [...todo.filter((m) => m !== leader).sort(), ...todo.filter((m) => m === leader)];
  const plan = (refuse: string | null): Plan => ({ order, skip, refuse });
  if (!leader) return plan("the cluster has no leader: a rolling upgrade needs a healthy cluster");
  for (const m of members) {
    const n = by.get(m);
    if (!n || !n.heard) return plan(`${m} is not heard: every member must be up for a rolling upgrade (one node at a time is taken out)`);
    if (n.upgrade === undefined) return plan(`${m} runs ${n.version ?? "an agent"} without rolling upgrade support: upgrade it by itself (image, or its bundle by hand) first`);
    if (n.upgrade?.step === "trial") return plan(`${m} has a bundle on trial (${n.upgrade.version ?? "?"}): wait for its gate, or 'bollard upgrade status'`);
    if (n.quorum === false) return plan(`${m} has no quorum`);
  }
  return plan(null);
}

export interface Holders {
  mysql?: string;
  redis?: string;
}

export interface AlarmFact {
  id: string;
  severity: string;
  text: string;
}

/** The baseline of a gate from a GET /alarms body: the ids active or pending (raise_after) now. */
export function baselineIds(body: unknown): string[] {
  const b = (body ?? {}) as { active?: { id: string }[]; pending?: { id: string }[] };
  return [...new Set([...(b.active ?? []), ...(b.pending ?? [])].map((a) => a.id))];
}

export interface GateInput {
  now: number;
  /** the node upgraded and the bundle it must run */
  target: NodeFacts;
  sha: string;
  holders: Holders;
  /** the target's own reports of its MySQL and Redis (null: none configured there) */
  replicas: { mysql: DbReport | null; redis: DbReport | null };
  /** what the holders report having applied now (MySQL: GTID set; Redis: offset), to measure the lag */
  holderPos: { mysql?: string | null; redis?: string | null };
  /** cluster-wide active alarms now, and the ids active before the node was taken out */
  alarms: AlarmFact[];
  baseline: Set<string>;
}

export interface GateOptions {
  /** wall/monotonic ms at which the gate fails if it has not passed */
  deadline: number;
  /** how long every condition must hold at once before it passes */
  settleMs: number;
  /** a replica whose source was last heard longer ago than this is not in sync */
  maxRecvAgoMs: number;
  /** in sync: the replica has applied all its holder had applied this long ago */
  maxLagMs: number;
}

export type Verdict = { verdict: "pass"; why: string } | { verdict: "wait"; unmet: string[] } | { verdict: "fail"; why: string };

/** MySQL's GTID sets are `uuid:1-5`, MariaDB's `domain-server-seq`. */
export const gtidKind = (pos: string): GtidKind => (/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:/i.test(pos) ? "mysql" : "mariadb");

/** Whether position `a` is contained in `b` (MySQL/MariaDB: GTID subset; Redis: offset a <= b); null: not comparable. */
export function contained(svc: "mysql" | "redis", a: string, b: string): boolean | null {
  if (svc === "redis") {
    if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return null;
    return BigInt(a) <= BigInt(b);
  }
  const r = subsetOf(gtidKind(a || b), a, b);
  return r.ok ? r.value.subset : null;
}

/**
 * A replica's report is "in sync" with its holder: up, not held out, replicating from the
 * holder, heard from it recently (MySQL: recvAgoMs), and it has applied everything the holder
 * had applied `lag` ago (`then`: the holder's position sampled at least maxLagMs before; null
 * while the gate has not watched that long). Returns what is not, or null when in sync.
 */
export function inSync(svc: "mysql" | "redis", r: DbReport | null, holder: string | undefined, then: string | null, maxRecvAgoMs: number): string | null {
  if (!r || !holder) return null;
  if (!r.up) return `its ${svc} is down`;
  if (r.heldOut) return `its ${svc} holds itself out: ${r.heldOut}`;
  if (r.role !== "replica" || r.source !== holder) return `its ${svc} is ${r.role}${r.source ? ` of ${r.source}` : ""}, not a replica of ${holder}`;
  if (svc === "mysql" && (r.recvAgoMs == null || r.recvAgoMs > maxRecvAgoMs)) return `its mysql has not heard from ${holder} for ${r.recvAgoMs == null ? "ever" : `${Math.round(r.recvAgoMs)} ms`}`;
  if (then === null) return `its ${svc} lag is not measured yet`;
  const c = contained(svc, then, r.applied);
  if (c === null) return `its ${svc} position ${JSON.stringify(r.applied.slice(0, 60))} cannot be compared with ${holder}'s`;
  if (!c) return `its ${svc} lags behind ${holder}`;
  return null;
}

/** What is not yet true of the gate's conditions (empty: all hold). `then`: the holders' positions maxLagMs ago. */
export function unmet(i: GateInput, maxRecvAgoMs: number, then: { mysql: string | null; redis: string | null } = { mysql: null, redis: null }): string[] {
  const out: string[] = [];
  const t = i.target;
  if (!t.heard) out.push(`${t.node} is not heard`);
  else if (t.bundle !== i.sha) out.push(`${t.node} runs ${t.bundle ? `bundle ${t.bundle.slice(0, 12)}` : "an unknown bundle"}, not ${i.sha.slice(0, 12)}`);
  else if (!t.quorum || !t.leader) out.push(`${t.node} has ${t.quorum ? "no leader" : "no quorum"}`);
  for (const svc of ["mysql", "redis"] as const) {
    if (i.holders[svc] === t.node) continue; // drained, so not expected; a replica's check only
    const why = inSync(svc, i.replicas[svc], i.holders[svc], then[svc], maxRecvAgoMs);
    if (why) out.push(`${t.node}: ${why}`);
  }
  const fresh = i.alarms.filter((a) => a.severity !== "info" && !i.baseline.has(a.id));
  if (fresh.length) out.push(`new alarm${fresh.length > 1 ? "s" : ""}: ${fresh.map((a) => `${a.id} (${a.text})`).join("; ")}`);
  return out;
}

/** The health gate of one node: step it with fresh facts until it passes or fails. */
export class Gate {
  private metSince: number | null = null;
  private last: string[] = [];
  /** the holders' positions as the gate saw them: [when, holder, position], oldest first */
  private readonly seen = { mysql: [] as [number, string, string][], redis: [] as [number, string, string][] };

  constructor(private readonly o: GateOptions) {}

  /** The newest position of `svc`'s current holder seen at least maxLagMs before `now`. */
  private then(svc: "mysql" | "redis", i: GateInput): string | null {
    const h = i.holders[svc], pos = i.holderPos[svc];
    const s = this.seen[svc];
    if (h && pos != null) s.push([i.now, h, pos]);
    while (s.length > 1 && s[1]![0] <= i.now - this.o.maxLagMs) s.shift();
    const x = s[0];
    return x && x[0] <= i.now - this.o.maxLagMs && x[1] === h ? x[2] : null;
  }

  step(i: GateInput): Verdict {
    const u = i.target.upgrade;
    if (u?.step === "rolled-back" && u.sha === i.sha) return { verdict: "fail", why: `${i.target.node} rolled its trial back: ${u.why ?? "no reason given"}` };
    const now = unmet(i, this.o.maxRecvAgoMs, { mysql: this.then("mysql", i), redis: this.then("redis", i) });
    if (now.length === 0) {
      this.metSince ??= i.now;
      if (i.now - this.metSince >= this.o.settleMs) return { verdict: "pass", why: `held for ${Math.round(i.now - this.metSince)} ms` };
      return { verdict: "wait", unmet: [`settling (${Math.round(i.now - this.metSince)} of ${this.o.settleMs} ms)`] };
    }
    this.metSince = null;
    this.last = now;
    if (i.now >= this.o.deadline) return { verdict: "fail", why: `not healthy by the deadline: ${now.join("; ")}` };
    return { verdict: "wait", unmet: now };
  }

  /** When facts could not be read at all (the local agent restarting): fails at the deadline. */
  noFacts(now: number, why: string): Verdict {
    this.metSince = null;
    if (now >= this.o.deadline) return { verdict: "fail", why: `not healthy by the deadline: ${this.last.length ? this.last.join("; ") : why}` };
    return { verdict: "wait", unmet: [why] };
  }
}
