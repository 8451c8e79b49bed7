// The rollout's decisions, pure (no I/O, no clock of their own): which nodes and in which
// order (the leader's node last), whether a rollout may start, and the health gate a node
// must pass after its agent restarted on the new bundle (docs/upgrade.md). The CLI's driver
// (rollout.ts) and the unit tests feed them facts.
import type { DbReport } from "../bus/messages.ts";

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

export interface GateInput {
  now: number;
  /** the node upgraded and the bundle it must run */
  target: NodeFacts;
  sha: string;
  holders: Holders;
  /** the target's own reports of its MySQL and Redis (null: none configured there) */
  replicas: { mysql: DbReport | null; redis: DbReport | null };
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
}

export type Verdict = { verdict: "pass"; why: string } | { verdict: "wait"; unmet: string[] } | { verdict: "fail"; why: string };

/** A replica's report is "in sync": replicating from the holder, fresh, nothing left unapplied. */
export function inSync(svc: "mysql" | "redis", r: DbReport | null, holder: string | undefined, maxRecvAgoMs: number): string | null {
  if (!r || !holder) return null;
  if (!r.up) return `its ${svc} is down`;
  if (r.heldOut) return `its ${svc} holds itself out: ${r.heldOut}`;
  if (r.role !== "replica" || r.source !== holder) return `its ${svc} is ${r.role}${r.source ? ` of ${r.source}` : ""}, not a replica of ${holder}`;
  if (r.recvAgoMs === null || r.recvAgoMs === undefined || r.recvAgoMs > maxRecvAgoMs) return `its ${svc} has not heard from ${holder} for ${r.recvAgoMs == null ? "ever" : `${Math.round(r.recvAgoMs)} ms`}`;
  if (svc === "mysql" && r.applied !== r.received) return `its mysql has received transactions it has not applied yet`;
  return null;
}

/** What is not yet true of the gate's conditions (empty: all hold). */
export function unmet(i: GateInput, maxRecvAgoMs: number): string[] {
  const out: string[] = [];
  const t = i.target;
  if (!t.heard) out.push(`${t.node} is not heard`);
  else if (t.bundle !== i.sha) out.push(`${t.node} runs ${t.bundle ? `bundle ${t.bundle.slice(0, 12)}` : "an unknown bundle"}, not ${i.sha.slice(0, 12)}`);
  else if (!t.quorum || !t.leader) out.push(`${t.node} has ${t.quorum ? "no leader" : "no quorum"}`);
  for (const svc of ["mysql", "redis"] as const) {
    if (i.holders[svc] === t.node) continue; // drained, so not expected; a replica's check only
    const why = inSync(svc, i.replicas[svc], i.holders[svc], maxRecvAgoMs);
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

  constructor(private readonly o: GateOptions) {}

  step(i: GateInput): Verdict {
    const u = i.target.upgrade;
    if (u?.step === "rolled-back" && u.sha === i.sha) return { verdict: "fail", why: `${i.target.node} rolled its trial back: ${u.why ?? "no reason given"}` };
    const now = unmet(i, this.o.maxRecvAgoMs);
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
