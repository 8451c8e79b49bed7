// `bollard upgrade IMAGE`: the A/B image upgrade across the cluster (docs/upgrade.md "Image
// upgrade"), with the bundle rollout's sequence (rollout.ts, gate.ts): the nodes not yet on the
// image's version one at a time, the others by name and the leader's node last, each drained
// first (maintenance on: MySQL, Redis and the VIP switched away; never fenced). Each node runs
// its own image upgrade (`upg` op image: `bollard upgrade IMAGE --this-node`, from the same
// image file at the same path on that node, checked against the root sha256 offered here),
// reboots, and its boot gate (image-gate.ts, the rollout's health gate) blesses the new root
// and takes maintenance off, or gives it up: the node is back on its old root by itself, and
// the rollout stops with an event (the upgrade-failed alarm) that says why.
// This node reboots too: it comes last (after the leader's, unless it is the leader's), run
// in this process; its own gate finishes the rollout.
import type { CommandContext } from "../cli/types.ts";
import { planRollout, type NodeFacts } from "./gate.ts";
import { ImageRefusal, imageUpgrade, inspectImage } from "./image.ts";
import { drainNode, retry, type Api, type RolloutResult } from "./rollout.ts";

export interface ImageRolloutOptions {
  path: string;
  version: string;
  /** the image's root sha256 (its SHA256SUMS): what each node's copy must be */
  sha: string;
  /** the gate's deadline on each node, from its boot */
  deadlineMs: number;
  /** from the node's `upg image` to its verdict: writing, two reboots at most, and the gate */
  nodeTimeoutMs: number;
  drainTimeoutMs: number;
  pollMs: number;
}

/** Nodes whose image is not `version` yet, in rollout order (this node last), or why not to start. */
export function planImageRollout(version: string, self: string, members: string[], leader: string | null, nodes: NodeFacts[]): { order: string[]; skip: string[]; refuse: string | null; note: string | null } {
  if (members.length < 2) return { order: [], skip: [], refuse: "a one-node cluster cannot drain its node: 'bollard upgrade IMAGE --this-node'", note: null };
  const byVersion = nodes.map((n) => ({ ...n, bundle: n.image?.version ?? null }));
  const p = planRollout(version, members, leader, byVersion);
  if (p.refuse) return { ...p, note: null };
  const plain = nodes.find((n) => members.includes(n.node) && !n.image);
  if (plain) return { ...p, refuse: `${plain.node} does not run from a bollard image (or runs an agent without image upgrades): upgrade it by hand`, note: null };
  const order = [...p.order.filter((n) => n !== self), ...p.order.filter((n) => n === self)];
  const note = order.includes(self) && leader !== self ? `this node (${self}) reboots last, after the leader's (${leader}): run it on ${leader} for one leader change only` : null;
  return { order, skip: p.skip, refuse: null, note };
}

/** What became of `node`'s image upgrade to `version`: null while it is not decided. */
export function nodeVerdict(n: NodeFacts | undefined, version: string): { ok: boolean; why: string } | null {
  const last = n?.image?.last;
  if (!n || !n.heard || !last || last.version !== version) return null;
  if (last.step === "blessed" && n.image?.version === version) return { ok: true, why: last.why };
  if (last.step === "rolled-back" && n.quorum) return { ok: false, why: `rolled back to its old root by itself: ${last.why}` };
  return null;
}

/**
 * The rollout; `selfUpgrade` runs this node's own image upgrade (it reboots the node, so it
 * returns only when it failed before the reboot).
 */
export async function imageRollout(api: Api, o: ImageRolloutOptions, selfUpgrade: () => Promise<number>): Promise<RolloutResult> {
  const t0 = api.now();
  const tag = `image ${o.version} (root ${o.sha.slice(0, 12)})`;
  const info = await api.info();
  const plan = planImageRollout(o.version, info.self, info.members, info.leader, info.nodes);
  const res: RolloutResult = { ok: false, upgraded: [], failed: null, why: null, steps: {}, totalMs: 0 };
  if (plan.refuse) return { ...res, why: plan.refuse };
  if (plan.order.length === 0) {
    api.say(`every node already runs ${tag}`);
    return { ...res, ok: true };
  }
  if (plan.note) api.say(plan.note);
  const state: Record<string, unknown> = { id: `${info.self}-${t0}`, by: info.self, sha: o.sha, version: o.version, kind: "image", order: plan.order, done: [] as string[], state: "running", startedAt: t0 };
  const progress = async (node: string | null, step: string, extra: Record<string, unknown> = {}) => {
    Object.assign(state, { node, step, at: api.now(), ...extra });
    await api.report({ rollout: { ...state } }).catch(() => undefined);
  };
  const event = (detail: string, fields: Record<string, unknown>) => retry(api, 30_000, () => api.report({ event: { detail, fields: { sha: o.sha, version: o.version, ...fields } } })).catch(() => undefined);
  api.say(`rolling ${tag}: ${plan.order.join(", ")}${plan.skip.length ? ` (already: ${plan.skip.join(", ")})` : ""}; leader ${info.leader}`);
  await event(`rolling ${tag} started: ${plan.order.join(", ")}`, { rollout: "started" });

  for (const node of plan.order) {
    const steps: Record<string, number> = {};
    res.steps[node] = steps;
    const s0 = api.now();
    const stop = async (why: string, maintOff: boolean): Promise<RolloutResult> => {
      api.say(`${node}: FAILED: ${why}`);
      if (maintOff) await retry(api, 30_000, () => api.flags(`image upgrade of ${node}: maintenance off`, { [`maint:${node}`]: null })).catch(() => undefined);
      const detail = `rolling ${tag} STOPPED at ${node}: ${why}${maintOff ? "" : `; ${node} stays in maintenance ('bollard maintenance ${node} off' once it is healthy)`}; not upgraded: ${plan.order.slice(plan.order.indexOf(node)).join(", ")}`;
      await progress(node, "failed", { state: "failed", why: detail });
      await event(detail, { failed: true, node, rollout: "failed" });
      return { ...res, failed: node, why: detail, totalMs: api.now() - t0 };
    };
    await progress(node, "drain");
    const drained = await drainNode(api, node, o);
    steps.drain = api.now() - s0;
    if (drained) return stop(drained, true);
    api.say(`${node}: drained in ${steps.drain} ms`);
    if (node === info.self) {
      await progress(node, "image");
      await event(`rolling ${tag}: ${node} (this node, the last) writes its other root and reboots; its boot gate ends the rollout`, { node });
      const code = await selfUpgrade();
      if (code !== 0) return stop(`its image upgrade failed before the reboot (exit ${code})`, true);
      res.ok = true;
      res.why = `${node} (this node) reboots into ${tag}; its boot gate blesses it and takes maintenance off, or it comes back on its old root`;
      res.totalMs = api.now() - t0;
      await progress(node, "rebooting", { state: "handed over" });
      return res;
    }
    await progress(node, "image");
    const s1 = api.now();
    const r = await retry(api, 10_000, () => api.op(node, "image", o.sha, { path: o.path, deadlineMs: o.deadlineMs }));
    if (r.status !== "ok") return stop(`its image upgrade did not start: ${r.error}`, true);
    let heard = true, verdict: { ok: boolean; why: string } | null = null;
    const end = api.now() + o.nodeTimeoutMs;
    for (;;) {
      const i = await retry(api, 30_000, () => api.info()).catch(() => null);
      const n = i?.nodes.find((x) => x.node === node);
      verdict = nodeVerdict(n, o.version);
      if (verdict) break;
      if (n && n.heard !== heard) api.say(`${node}: ${n.heard ? "heard again" : "not heard (writing done, rebooting)"} after ${Math.round((api.now() - s1) / 1000)} s`);
      if (n) heard = n.heard;
      if (api.now() > end) return stop(`no verdict within ${o.nodeTimeoutMs / 1000} s of its image upgrade (${n?.heard ? "heard" : "not heard"}; slot ${n?.image?.slot ?? "?"}, ${n?.image?.version ?? "?"})`, false);
      await api.sleep(o.pollMs * 4);
    }
    steps.image = api.now() - s1;
    if (!verdict.ok) return stop(verdict.why, true);
    await retry(api, 30_000, () => api.flags(`image upgrade of ${node}: maintenance off`, { [`maint:${node}`]: null })).catch(() => undefined);
    res.upgraded.push(node);
    (state.done as string[]).push(node);
    api.say(`${node}: on ${tag} after ${Math.round(steps.image / 1000)} s (${verdict.why})`);
    await event(`${node} upgraded to ${tag} in ${Math.round(steps.image / 1000)} s`, { node, steps });
  }
  res.ok = true;
  res.totalMs = api.now() - t0;
  await progress(null, "done", { state: "done" });
  await event(`rolling ${tag} done: ${res.upgraded.join(", ")} in ${(res.totalMs / 1000).toFixed(1)} s`, { rollout: "done", ms: res.totalMs });
  return res;
}

/** The CLI's part: the image checked here first, then the rollout through the local agent. */
export async function imageRolloutCmd(path: string, api: Api, o: { deadlineMs: number; socket: string; stateDir: string }, ctx: CommandContext): Promise<number> {
  let img;
  try {
    img = inspectImage(path);
  } catch (e) {
    if (!(e instanceof ImageRefusal)) throw e;
    ctx.io.err(`bollard: refused: ${path}: ${e.message}`);
    return 2;
  }
  const sha = img.sums.get("root.part")!;
  const deadlineMs = o.deadlineMs;
  let r: RolloutResult;
  try {
    r = await imageRollout(api, { path, version: img.version, sha, deadlineMs, nodeTimeoutMs: 1800_000 + deadlineMs, drainTimeoutMs: 60_000, pollMs: 250 },
      () => imageUpgrade(path, { deadlineMs, reboot: true, socket: o.socket, sha, undrain: true }, o.stateDir, ctx.io));
  } catch (e) {
    ctx.io.err(`bollard: the agent is not answering: ${(e as Error).message}`);
    return 1;
  }
  if (ctx.json) ctx.io.out(JSON.stringify(r));
  if (r.ok) {
    if (!ctx.json && r.upgraded.length) ctx.io.out(`ok: ${r.upgraded.join(", ")} upgraded in ${(r.totalMs / 1000).toFixed(1)} s${r.why ? `; ${r.why}` : ""}`);
    return 0;
  }
  ctx.io.err(`bollard: ${r.failed ? "" : "refused: "}${r.why}`);
  return 1;
}
