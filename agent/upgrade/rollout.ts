// The rolling upgrade's runbook (`bollard upgrade BUNDLE`, docs/upgrade.md), driven from the
// operator's CLI through its local agent's control socket, one node at a time, the leader's
// node last:
//   drain  maintenance on: the leader switches MySQL, Redis and the VIP away; never fenced
//   stage  the node fetches the bundle from this node over the bus, checks and stores it
//   switch the node puts it on trial (a guard will undo it at the deadline) and restarts
//   gate   rejoined with quorum, its replicas in sync, no new alarm; all held for `settle`
//   bless  the trial ends as good; maintenance off
// A failed gate: the node is told to roll back (its guard does so anyway at the deadline),
// maintenance comes off once it runs its old bundle again, and the rollout stops with an
// event (and so the upgrade-failed alarm) that says why. Each step is logged with its time.
// The driver runs in the CLI, not in an agent: the agent it talks to may be the one that
// restarts, and the driver then waits for it (its gate covers this node too).
import type { DbReport } from "../bus/messages.ts";
import { Gate, planRollout, type AlarmFact, type NodeFacts } from "./gate.ts";

export interface Info {
  self: string;
  leader: string | null;
  members: string[];
  nodes: NodeFacts[];
  replicas: Record<string, { mysql: DbReport | null; redis: DbReport | null }>;
  assignments: Record<string, string>;
  procedures: unknown[];
}

export interface OpResult {
  status: "ok" | "error";
  detail?: string;
  error?: string;
}

/** The local agent, as the driver sees it (agent/cli/upgrade-cmd.ts makes the real one). */
export interface Api {
  info(): Promise<Info>;
  alarms(): Promise<AlarmFact[]>;
  /** the ids of the alarms active or pending (waiting out raise_after) before a node is taken
   *  out: its gate counts only others as new; without it, the active ones */
  baseline?(): Promise<string[]>;
  offer(path: string): Promise<{ sha: string; version: string; size: number }>;
  op(node: string, op: "stage" | "switch" | "bless" | "rollback" | "image", sha: string, extra?: { from?: string; deadlineMs?: number; why?: string; path?: string }): Promise<OpResult>;
  /** commits flags through the leader (maintenance) */
  flags(why: string, flags: Record<string, string | null>): Promise<OpResult>;
  report(r: { rollout?: Record<string, unknown>; event?: { detail: string; fields?: Record<string, unknown> } }): Promise<void>;
  now(): number;
  sleep(ms: number): Promise<void>;
  say(line: string): void;
}

export interface RolloutOptions {
  path: string;
  /** from the switch to the gate's deadline (the node's guard undoes the trial then) */
  deadlineMs: number;
  settleMs: number;
  drainTimeoutMs: number;
  /** how long a failed node gets to come back on its old bundle */
  backTimeoutMs: number;
  pollMs: number;
}

export const DEFAULTS: Omit<RolloutOptions, "path"> = { deadlineMs: 90_000, settleMs: 3000, drainTimeoutMs: 60_000, backTimeoutMs: 60_000, pollMs: 250 };

const HELD = ["mysql", "redis", "vip"];

export interface RolloutResult {
  ok: boolean;
  upgraded: string[];
  failed: string | null;
  why: string | null;
  /** per node: ms of each step */
  steps: Record<string, Record<string, number>>;
  totalMs: number;
}

/** Retries `f` until it resolves (the local agent restarting), for up to `ms`. */
export async function retry<T>(api: Api, ms: number, f: () => Promise<T>): Promise<T> {
  const end = api.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (api.now() > end) throw e;
      await api.sleep(500);
    }
  }
}

export async function rollout(api: Api, o: RolloutOptions): Promise<RolloutResult> {
  const t0 = api.now();
  const offer = await api.offer(o.path);
  const sha = offer.sha;
  const tag = `${offer.version} (${sha.slice(0, 12)})`;
  const info = await api.info();
  const plan = planRollout(sha, info.members, info.leader, info.nodes);
  const res: RolloutResult = { ok: false, upgraded: [], failed: null, why: null, steps: {}, totalMs: 0 };
  if (plan.refuse) return { ...res, why: plan.refuse };
  if (plan.order.length === 0) {
    api.say(`every node already runs ${tag}`);
    return { ...res, ok: true };
  }
  const id = `${info.self}-${t0}`;
  const state: Record<string, unknown> = { id, by: info.self, sha, version: offer.version, order: plan.order, done: [] as string[], state: "running", startedAt: t0 };
  const progress = async (node: string | null, step: string, extra: Record<string, unknown> = {}) => {
    Object.assign(state, { node, step, at: api.now(), ...extra });
    await api.report({ rollout: { ...state } }).catch(() => undefined);
  };
  api.say(`rolling upgrade to ${tag}: ${plan.order.join(", ")}${plan.skip.length ? ` (already: ${plan.skip.join(", ")})` : ""}; leader ${info.leader}`);
  await api.report({ event: { detail: `rolling upgrade to ${tag} started: ${plan.order.join(", ")}`, fields: { rollout: "started", sha, version: offer.version } } }).catch(() => undefined);

  for (const node of plan.order) {
    const steps: Record<string, number> = {};
    res.steps[node] = steps;
    const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
      const s = api.now();
      await progress(node, name);
      try {
        return await f();
      } finally {
        steps[name] = api.now() - s;
      }
    };
    const before = (await retry(api, 30_000, () => api.info())).nodes.find((n) => n.node === node);
    const oldBundle = before?.bundle ?? null;
    const baseline = new Set(api.baseline ? await retry(api, 30_000, () => api.baseline!()) : (await retry(api, 30_000, () => api.alarms())).map((a) => a.id));
    const failNode = async (why: string, trialStarted: boolean): Promise<RolloutResult> => {
      api.say(`${node}: FAILED: ${why}`);
      let back = "";
      if (trialStarted) {
        await api.op(node, "rollback", sha, { why: why.slice(0, 300) }).catch(() => undefined);
        back = await timed("rollback", () => waitBack(api, node, oldBundle, o));
      }
      const maintOff = !trialStarted || back.startsWith("back");
      if (maintOff) await retry(api, 30_000, () => api.flags(`upgrade of ${node}: maintenance off`, { [`maint:${node}`]: null })).catch(() => undefined);
      const detail = `rolling upgrade to ${tag} STOPPED at ${node}: ${why}${back ? `; ${back}` : ""}` +
        `${maintOff ? "" : `; ${node} stays in maintenance ('bollard maintenance ${node} off' once it is healthy)`}; not upgraded: ${plan.order.slice(plan.order.indexOf(node)).join(", ")}`;
      await progress(node, "failed", { state: "failed", why: detail });
      await retry(api, 30_000, () => api.report({ event: { detail, fields: { failed: true, node, sha, version: offer.version, rollout: "failed" } } })).catch(() => undefined);
      return { ...res, failed: node, why: detail, totalMs: api.now() - t0 };
    };

    // ---- drain
    const drained = await timed("drain", () => drainNode(api, node, o));
    api.say(`${node}: drained in ${steps.drain} ms`);
    if (drained) return failNode(drained, false);

    // ---- stage
    const staged = await timed("stage", async () => {
      await retry(api, 30_000, () => api.offer(o.path)); // the local agent may have restarted since
      return api.op(node, "stage", sha, { from: info.self });
    });
    if (staged.status !== "ok") return failNode(`staging failed: ${staged.error}`, false);
    api.say(`${node}: staged in ${steps.stage} ms (${staged.detail})`);

    // ---- switch
    const switched = await timed("switch", () => api.op(node, "switch", sha, { deadlineMs: o.deadlineMs }));
    if (switched.status !== "ok") return failNode(`switching failed: ${switched.error}`, false);
    const deadline = api.now() + o.deadlineMs;

    // ---- gate
    const gate = new Gate({ deadline, settleMs: o.settleMs, maxRecvAgoMs: 3000, maxLagMs: 2000 });
    let lastUnmet = "";
    const verdict = await timed("gate", async () => {
      for (;;) {
        let v;
        try {
          const [i, alarms] = await Promise.all([api.info(), api.alarms()]);
          const target = i.nodes.find((n) => n.node === node);
          const holders = { mysql: i.assignments.mysql, redis: i.assignments.redis };
          v = target
            ? gate.step({ now: api.now(), target, sha, holders, replicas: i.replicas[node] ?? { mysql: null, redis: null }, holderPos: holderPos(i, holders), alarms, baseline })
            : gate.noFacts(api.now(), `${node} is not a member`);
        } catch (e) {
          v = gate.noFacts(api.now(), `the local agent does not answer: ${(e as Error).message}`);
        }
        if (v.verdict !== "wait") return v;
        const u = v.unmet.join("; ");
        if (u !== lastUnmet) api.say(`${node}: gate: ${u}`);
        lastUnmet = u;
        await api.sleep(o.pollMs);
      }
    });
    if (verdict.verdict === "fail") return failNode(verdict.why, true);

    // ---- bless
    const blessed = await timed("bless", () => retry(api, 10_000, () => api.op(node, "bless", sha)));
    if (blessed.status !== "ok") return failNode(`blessing failed: ${blessed.error}`, true);
    await timed("undrain", () => retry(api, 30_000, () => api.flags(`upgrade of ${node}: maintenance off`, { [`maint:${node}`]: null })));
    res.upgraded.push(node);
    (state.done as string[]).push(node);
    api.say(`${node}: upgraded to ${tag}: gate passed in ${steps.gate} ms (${verdict.why}); ${Object.entries(steps).map(([k, v]) => `${k} ${v}`).join(", ")} ms`);
    await api.report({ event: { detail: `${node} upgraded to ${tag}: health gate passed in ${steps.gate} ms`, fields: { node, sha, version: offer.version, steps } } }).catch(() => undefined);
  }
  res.ok = true;
  res.totalMs = api.now() - t0;
  await progress(null, "done", { state: "done" });
  await retry(api, 30_000, () => api.report({ event: { detail: `rolling upgrade to ${tag} done: ${res.upgraded.join(", ")} in ${(res.totalMs / 1000).toFixed(1)} s`, fields: { rollout: "done", sha, version: offer.version, ms: res.totalMs } } })).catch(() => undefined);
  return res;
}

/** Maintenance on for `node` through the leader, until it holds nothing and no procedure runs; null, or why not. */
export async function drainNode(api: Api, node: string, o: Pick<RolloutOptions, "drainTimeoutMs" | "pollMs">): Promise<string | null> {
  const r = await retry(api, 30_000, () => api.flags(`upgrade of ${node}: maintenance on`, { [`maint:${node}`]: "on" }));
  if (r.status !== "ok") return `maintenance on was refused: ${r.error}`;
  const end = api.now() + o.drainTimeoutMs;
  for (;;) {
    const i = await retry(api, 30_000, () => api.info());
    const held = HELD.filter((s) => i.assignments[s] === node);
    if (held.length === 0 && i.procedures.length === 0) return null;
    if (api.now() > end) return `${node} still holds ${held.join(", ") || "nothing, but a procedure runs"} after ${o.drainTimeoutMs / 1000} s`;
    await api.sleep(o.pollMs);
  }
}

/** What each holder reports having applied (the gate measures the replicas' lag against it). */
export function holderPos(i: Pick<Info, "replicas">, holders: { mysql?: string; redis?: string }): { mysql: string | null; redis: string | null } {
  const at = (svc: "mysql" | "redis") => {
    const h = holders[svc];
    const r = h ? i.replicas[h]?.[svc] : null;
    return r && r.up && r.role === "primary" ? r.applied : null;
  };
  return { mysql: at("mysql"), redis: at("redis") };
}

/** Until `node` is heard running its old bundle again (or not); says which. */
async function waitBack(api: Api, node: string, oldBundle: string | null, o: RolloutOptions): Promise<string> {
  const end = api.now() + o.backTimeoutMs + o.deadlineMs;
  for (;;) {
    try {
      const n = (await api.info()).nodes.find((x) => x.node === node);
      if (n?.heard && n.bundle === oldBundle && n.quorum) return `back on its old bundle (${oldBundle?.slice(0, 12) ?? "?"}) with quorum`;
    } catch {
      /* the local agent restarting */
    }
    if (api.now() > end) return `NOT back on its old bundle after ${Math.round((o.backTimeoutMs + o.deadlineMs) / 1000)} s`;
    await api.sleep(o.pollMs * 2);
  }
}
