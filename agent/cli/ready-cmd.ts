// `bollard ready [--json]` (docs/readiness.md): could the cluster lose any one node now? The
// one line the console shows, then per node what losing it would stop or slow, what holds
// (in-sync replicas, fence paths proven), and the predicted failover time of what it holds.
// From the agent's status (runtime/readiness.ts judges every second); when the agent does not
// answer, its last known judgement, exit 1. Exit 0 once judged, whatever the verdict: the
// verdict is in the output (--json: `ok`).
import { parseArgs } from "node:util";
import { DEFAULT_STATE_DIR } from "../config/schema.ts";
import { loadConfig } from "../config/load.ts";
import type { NodeReadiness, Readiness } from "../ha/readiness.ts";
import { age, readStatus } from "../runtime/status.ts";
import type { CommandContext, SubCommand } from "./types.ts";

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const VERDICT: Record<NodeReadiness["verdict"], string> = { yes: "yes", slower: "slower", no: "NO", down: "down" };

/** The text of `bollard ready`. */
export function renderReady(r: Readiness): string[] {
  const out = [r.line];
  if (!r.nodes.length) return out;
  out.push("");
  for (const n of r.nodes) {
    out.push(`${n.node.padEnd(10)} can lose: ${VERDICT[n.verdict]}`);
    for (const b of n.blocks) out.push(`  would ${b.effect}: ${b.why}`);
    for (const b of n.slows) out.push(`  would ${b.effect}: ${b.why}`);
    for (const note of n.notes) out.push(`  ${note}`);
    for (const [svc, ms] of Object.entries(n.predictedMs)) {
      out.push(`  ${svc} failover if lost now: ${typeof ms === "number" ? `~${sec(ms)} (${n.breakdown[svc as keyof typeof n.breakdown]})` : n.breakdown[svc as keyof typeof n.breakdown]}`);
    }
  }
  return out;
}

export const readyCommand: SubCommand = {
  name: "ready",
  usage: ["ready [--json]                   could the cluster lose any one node now: fence paths, in-sync replicas, quorum, capacity"],
  async run(args: string[], ctx: CommandContext): Promise<number> {
    let json = !!ctx.json;
    try {
      const p = parseArgs({ args, strict: true, allowPositionals: false, options: { json: { type: "boolean" } } });
      json ||= !!p.values.json;
    } catch (e) {
      ctx.io.err(`bollard: ready: ${(e as Error).message}\nrun "bollard --help" for usage`);
      return 2;
    }
    const c = loadConfig(ctx.configPath, { secrets: false });
    if (!c.ok && ctx.configGiven) {
      ctx.io.err(`bollard: ${ctx.configPath}: not a valid config:\n${c.errors.map((e) => `  ${e}`).join("\n")}`);
      return 2;
    }
    const socket = c.ok ? c.config.control.socket : `${DEFAULT_STATE_DIR}/agent.sock`;
    const stateDir = c.ok ? c.config.stateDir : DEFAULT_STATE_DIR;
    const s = await readStatus(socket, stateDir);
    if (!s.ok) {
      if (json) ctx.io.out(JSON.stringify({ live: false, error: s.why }));
      else ctx.io.err(`bollard: agent not answering and no last known state: ${s.why}`);
      return 1;
    }
    const ready = (s.body.ready ?? null) as Readiness | null;
    if (json) {
      ctx.io.out(JSON.stringify({ live: s.live, ...(s.live ? {} : { ageMs: s.ageMs, why: s.why }), ok: ready?.ok ?? null, ready }));
      return s.live ? 0 : 1;
    }
    if (!s.live) ctx.io.err(`bollard: the agent is not answering (${s.why}); its last known judgement, ${age(s.ageMs)} old:`);
    if (!ready) ctx.io.out("readiness: not judged (the agent is starting, or readiness.enabled is false)");
    else for (const l of renderReady(ready)) ctx.io.out(l);
    return s.live ? 0 : 1;
  },
};
