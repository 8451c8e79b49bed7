// Where one bollard failover's time went, per service, from the agents' event logs
// (agent/ha/manager.ts "failover ... started", "step failover SVC step NAME done", and the
// candidate's "lrm RES DO done" events of agent/runtime/ha-runtime.ts): ms after the power-off.
// bench-peers prints one line per run and service; docs/ha.md "Peers" reads them.
import { events, NODES } from "../ha-lab.ts";

export const STEPS = ["started", "fenced", "picked", "committed", "promoted", "portal", "vip", "write"] as const;
export type Breakdown = Partial<Record<(typeof STEPS)[number], number>> & { candidate?: string };
// portal: the VIP holder's nginx routes svc to the candidate (before it, a client that reaches
// the VIP is proxied to the old, dead holder until proxy_connect_timeout)

interface Ev { node: string; kind: string; detail: string; at: number }

/** Every node's events since `t0` (ISO), ms after `start` (epoch ms), oldest first. */
export function eventsSince(t0: string, start: number): Ev[] {
  return NODES.flatMap((node) => events(node).filter((e) => e.ts >= t0).map((e) => ({ node, kind: e.kind, detail: e.detail, at: Date.parse(e.ts) - start })))
    .sort((a, b) => a.at - b.at);
}

/** The steps of `svc`'s failover from `holder` (the first one after `t0`), and the first acknowledged write. */
export function breakdown(all: Ev[], svc: "mysql" | "redis", holder: string, writeMs: number): Breakdown {
  const first = (re: RegExp, node?: string) => all.find((e) => (!node || e.node === node) && re.test(`${e.kind} ${e.detail}`));
  const b: Breakdown = { write: writeMs };
  b.started = first(new RegExp(`^failover failover of ${svc} from ${holder} started`))?.at;
  b.fenced = first(new RegExp(`^step failover ${svc} step confirmFence done`))?.at;
  const picked = first(new RegExp(`^step failover ${svc} step pickCandidate done`));
  b.picked = picked?.at;
  b.committed = first(new RegExp(`^step failover ${svc} step commitConfig done`))?.at;
  const cand = /done in \d+ ms: (\S+)/.exec(picked?.detail ?? "")?.[1];
  if (cand) {
    b.candidate = cand;
    b.promoted = first(new RegExp(`^lrm ${svc} promote done`), cand)?.at;
    // clients come in through the VIP: what counts is the portal of the node that took it
    const vip = first(/^lrm vip acquire done/);
    b.vip = vip?.at;
    if (vip) b.portal = first(new RegExp(`^lrm portal route done in \\d+ ms: .*${svc} -> ${cand}`), vip.node)?.at;
  }
  return b;
}

/** "svc: started 1158 fenced 1329 ..." for one run. */
export function breakdownLine(svc: string, b: Breakdown): string {
  return `${svc.padEnd(6)}${b.candidate ? ` -> ${b.candidate}` : ""}: ${STEPS.map((k) => `${k} ${b[k] === undefined ? "-" : Math.round(b[k]!)}`).join("  ")}`;
}
