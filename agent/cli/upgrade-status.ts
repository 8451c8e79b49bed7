// `bollard upgrade status [--json]`: every member's version, the bundle its agent runs and its
// upgrade step (staging, staged, trial until T, blessed, rolled-back and why), and the rollouts
// the nodes report (docs/upgrade.md). From the local agent's GET /upgrade.
import { controlRequest } from "../runtime/control.ts";
import type { CommandContext } from "./types.ts";

interface Row {
  node: string;
  heard: boolean;
  version: string | null;
  rev: string | null;
  bundle: string | null;
  upgrade?: { step: string; sha?: string; version?: string; until?: number; why?: string; at?: number } | null;
  image?: { slot: string; version: string | null; last: { step: string; version: string; slot: string; why: string } | null } | null;
}

/** The root column: "A 0.1.0", "-" when the node does not run from a bollard image. */
export const rootText = (r: Row): string => (r.image ? `${r.image.slot.toUpperCase()} ${r.image.version ?? "?"}` : "-");

/** The last image upgrade, when there was one: "image 0.1.1 -> slot B: blessed: why". */
export const imageText = (r: Row): string | null => {
  const l = r.image?.last;
  return l ? `image ${l.version} -> slot ${l.slot.toUpperCase()}: ${l.step}: ${l.why}` : null;
};

interface Rollout {
  node: string;
  rollout: { id?: string; version?: string; sha?: string; order?: string[]; done?: string[]; state?: string; node?: string | null; step?: string; at?: number; why?: string };
}

/** The step column: "trial 0.1.1 until 12:00:03", "rolled-back 0.1.1: why", "-" for an old agent. */
export function stepText(r: Row, now: number): string {
  const u = r.upgrade;
  if (u === undefined) return "- (agent without upgrade support)";
  if (!u || u.step === "idle") return "idle";
  const v = u.version ? ` ${u.version}` : u.sha ? ` ${u.sha.slice(0, 12)}` : "";
  if (u.step === "trial" && u.until) return `trial${v}, ${Math.max(0, Math.round((u.until - now) / 1000))} s left`;
  return `${u.step}${v}${u.why ? `: ${u.why}` : ""}`;
}

export async function upgradeStatus(socket: string, ctx: CommandContext, json: boolean): Promise<number> {
  let body: { nodes: Row[]; rollouts: Rollout[]; leader: string | null; self: string };
  try {
    const r = await controlRequest(socket, "GET", "/upgrade", undefined, 5000);
    if (r.code !== 200) throw new Error(`HTTP ${r.code}: ${(r.body as { error?: string }).error ?? ""}`);
    body = r.body as typeof body;
  } catch (e) {
    ctx.io.err(`bollard: the agent is not answering on ${socket}: ${(e as Error).message}`);
    return 1;
  }
  if (json) {
    ctx.io.out(JSON.stringify({ live: true, ...body }));
    return 0;
  }
  const now = Date.now();
  const lines = [`${"NODE".padEnd(10)} ${"HEARD".padEnd(5)} ${"ROOT".padEnd(14)} ${"VERSION".padEnd(24)} ${"BUNDLE".padEnd(12)} STEP`];
  const images: string[] = [];
  for (const n of body.nodes) {
    const ver = n.version ? `${n.version}${n.rev ? ` (${n.rev})` : ""}` : "?";
    lines.push(`${`${n.node}${n.node === body.leader ? "*" : ""}`.padEnd(10)} ${(n.heard ? "yes" : "NO").padEnd(5)} ${rootText(n).slice(0, 14).padEnd(14)} ${ver.slice(0, 24).padEnd(24)} ${(n.bundle ?? "?").slice(0, 12).padEnd(12)} ${stepText(n, now)}`);
    const im = imageText(n);
    if (im) images.push(`${n.node}: ${im}`);
  }
  lines.push("(* the leader; ROOT: the root slot it runs and that image's version)", ...images);
  const latest = body.rollouts.sort((a, b) => (b.rollout.at ?? 0) - (a.rollout.at ?? 0))[0];
  if (latest) {
    const r = latest.rollout;
    const at = r.at ? new Date(r.at).toISOString().replace("T", " ").slice(0, 19) : "?";
    lines.push(`rollout from ${latest.node} to ${r.version ?? "?"} (${(r.sha ?? "").slice(0, 12)}): ${r.state ?? "?"}` +
      `${r.state === "running" ? `, at ${r.node ?? "-"} step ${r.step ?? "?"}` : ""}; done ${(r.done ?? []).join(", ") || "none"} of ${(r.order ?? []).join(", ")}; ${at} UTC`);
    if (r.why) lines.push(`  ${r.why}`);
  } else lines.push("no rollout reported");
  ctx.io.out(lines.join("\n"));
  return 0;
}
