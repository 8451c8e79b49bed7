// Operator actions on the data path (issue 4 §8), on any node; they act through the leader
// by committing a flag to the register, which the leader's HA manager then carries out:
//   bollard switchover mysql|redis [--to NODE] [--no-wait]
//   bollard failover mysql|redis [--to NODE] [--no-wait]
//   bollard maintenance NODE on|off
//   bollard ha disarm|arm|ack mysql|redis
//   bollard rejoin NODE
import { parseArgs } from "node:util";
import type { Command } from "../bus/messages.ts";
import { requests } from "../ha/requests.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR, NAME_RE } from "../config/schema.ts";
import type { CommandContext, SubCommand } from "./types.ts";
import { controlRequest } from "../runtime/control.ts";

function socketOf(ctx: CommandContext): string {
  const r = loadConfig(ctx.configPath, { secrets: false });
  return r.ok ? r.config.control.socket : `${DEFAULT_STATE_DIR}/agent.sock`;
}

export async function send(ctx: CommandContext, cmd: Command): Promise<number> {
  try {
    const r = await controlRequest(socketOf(ctx), "POST", "/command", cmd, 15_000);
    const body = r.body as { status?: string; epoch?: number; error?: string };
    if (r.code === 200 && body.status === "ok") {
      ctx.io.out(`ok: committed in config epoch ${body.epoch}`);
      return 0;
    }
    ctx.io.err(`bollard: refused: ${body.error ?? `HTTP ${r.code}`}`);
    return 1;
  } catch (e) {
    ctx.io.err(`bollard: the agent is not answering: ${(e as Error).message}`);
    return 1;
  }
}

const usage = (ctx: CommandContext, msg: string) => {
  ctx.io.err(`bollard: ${msg}\nrun "bollard --help" for usage`);
  return 2;
};

const svcOk = (s: string | undefined): s is "mysql" | "redis" => s === "mysql" || s === "redis";

export const switchoverCommand: SubCommand = {
  name: "switchover",
  usage: ["switchover mysql|redis [--to NODE] [--no-wait]   planned switchover, no loss"],
  run: (args, ctx) => moveCommand("switchover", args, ctx),
};

export const failoverCommand: SubCommand = {
  name: "failover",
  usage: [
    "failover mysql|redis [--to NODE] [--no-wait]     fenced failover: the holder is fenced (its server killed by its",
    "                                                 agent, or its node powered off or cut off at the switches) and",
    "                                                 the most advanced replica, or NODE, promoted; refused for a",
    "                                                 healthy primary (use switchover). --to HOLDER accepts a holder",
    "                                                 whose server restarted, without waiting for a missing replica",
  ],
  run: (args, ctx) => moveCommand("failover", args, ctx),
};

/** Both commit a request flag the leader acts on, then follow the register until it is settled. */
async function moveCommand(kind: "switchover" | "failover", args: string[], ctx: CommandContext): Promise<number> {
  let p;
  try {
    p = parseArgs({ args, allowPositionals: true, options: { to: { type: "string" }, "no-wait": { type: "boolean" } } });
  } catch (e) {
    return usage(ctx, (e as Error).message);
  }
  const [svc] = p.positionals;
  if (!svcOk(svc) || p.positionals.length !== 1) return usage(ctx, `expected: ${kind} mysql|redis [--to NODE]`);
  const to = p.values.to;
  if (to !== undefined && !NAME_RE.test(to)) return usage(ctx, `"${to}" is not a node name`);
  const socket = socketOf(ctx);
  const before = await status(socket);
  const t0 = Date.now();
  const since = new Date(t0 - 1000).toISOString();
  const flag = kind === "switchover" ? `switchover:${svc}` : `failover-to:${svc}`;
  const rc = await send(ctx, requests[kind](svc, to ?? null));
  if (rc !== 0 || p.values["no-wait"]) return rc;
  const was = before?.committed.assignments[svc];
  const inst = before?.committed.flags[`inst:${svc}`];
  for (let i = 0; i < 120; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const st = await status(socket);
    const now = st?.committed.assignments[svc];
    const pending = st ? flag in st.committed.flags : true;
    // done: it moved, or (an accepted restarted holder) its confirmed incarnation changed
    if (!pending && now && (now !== was || st!.committed.flags[`inst:${svc}`] !== inst)) {
      ctx.io.out(now !== was ? `${svc} ${kind === "switchover" ? "switched over" : "failed over"} from ${was ?? "?"} to ${now} in ${((Date.now() - t0) / 1000).toFixed(1)} s`
        : `${svc} on ${now} confirmed as primary in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return 0;
    }
    if (!pending && now === was) {
      const why = await leaderSaid(socket, st?.leader ?? null, since, svc);
      ctx.io.err(`bollard: the ${kind} of ${svc} did not happen${why ? `: ${why}` : " (see 'bollard events' on the leader)"}`);
      return 1;
    }
  }
  ctx.io.err(`bollard: the ${kind} of ${svc} has not finished after 60 s (see 'bollard events' on the leader)`);
  return 1;
}

/** What the leader's event log says of `svc` since `since`: its last refusal or failure. */
async function leaderSaid(socket: string, leader: string | null, since: string, svc: string): Promise<string | null> {
  try {
    const q = `/events?n=100&since=${encodeURIComponent(since)}${leader ? `&node=${encodeURIComponent(leader)}` : ""}`;
    const r = await controlRequest(socket, "GET", q, undefined, 5000);
    const items = ((r.body as { items?: { detail?: string }[] }).items ?? []).map((e) => String(e.detail ?? ""));
    return items.filter((d) => d.includes(`of ${svc}`) && /refused|FAILED/.test(d)).pop() ?? null;
  } catch {
    return null;
  }
}

export const maintenanceCommand: SubCommand = {
  name: "maintenance",
  usage: ["maintenance NODE on|off          drain NODE (nothing primary) and never fence it"],
  run(args, ctx) {
    const [node, state] = args;
    if (args.length !== 2 || !NAME_RE.test(node ?? "") || (state !== "on" && state !== "off")) return Promise.resolve(usage(ctx, "expected: maintenance NODE on|off"));
    return send(ctx, requests.maintenance(node!, state === "on"));
  },
};

export const haCommand: SubCommand = {
  name: "ha",
  usage: ["ha disarm|arm                    stop or resume automatic failover (network work)", "ha ack mysql|redis               allow another automatic failover within the anti-flapping period"],
  run(args, ctx) {
    const [op, svc] = args;
    if (op === "disarm" && args.length === 1) return send(ctx, requests.disarm());
    if (op === "arm" && args.length === 1) return send(ctx, requests.arm());
    if (op === "ack" && args.length === 2 && svcOk(svc)) return send(ctx, requests.ack(svc, Date.now()));
    return Promise.resolve(usage(ctx, "expected: ha disarm | ha arm | ha ack mysql|redis"));
  },
};

export const rejoinCommand: SubCommand = {
  name: "rejoin",
  usage: ["rejoin NODE                      bring a fenced node back: power on, ports up"],
  run(args, ctx) {
    const [node] = args;
    if (args.length !== 1 || !NAME_RE.test(node ?? "")) return Promise.resolve(usage(ctx, "expected: rejoin NODE"));
    return send(ctx, requests.rejoin(node!));
  },
};

interface Committed { leader: string | null; committed: { assignments: Record<string, string>; flags: Record<string, string> } }

async function status(socket: string): Promise<Committed | null> {
  try {
    const r = await controlRequest(socket, "GET", "/status", undefined, 3000);
    return r.code === 200 ? ((r.body as { view: Committed }).view ?? null) : null;
  } catch {
    return null;
  }
}

async function holder(socket: string, svc: string): Promise<string | undefined> {
  return (await status(socket))?.committed.assignments[svc];
}
