// What the console and the CLI views start from: the config (read without secrets), where the
// agent's socket and state are, and an empty Model naming this node, the members, the VIP and
// the data addresses. Without a config file (and none asked for), the defaults.
import { hostname } from "node:os";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR, type Config } from "../config/schema.ts";
import { controlRequest } from "../runtime/control.ts";
import { emptyHardware, type Model } from "./model.ts";
import type { Request } from "./source.ts";

export interface Setup {
  config: Config | null;
  socket: string;
  stateDir: string;
  model: Model;
  request: Request;
}

export type SetupResult = { ok: true; setup: Setup } | { ok: false; errors: string[] };

/** `ctx`: the config path, and whether it was given (CommandContext, cli/types.ts). */
export function setup(ctx: { configPath: string; configGiven: boolean }, wall = Date.now()): SetupResult {
  const r = loadConfig(ctx.configPath, { secrets: false });
  if (!r.ok && ctx.configGiven) return { ok: false, errors: r.errors };
  const config = r.ok ? r.config : null;
  const socket = config?.control.socket ?? `${DEFAULT_STATE_DIR}/agent.sock`;
  const stateDir = config?.stateDir ?? DEFAULT_STATE_DIR;
  const nodes = config?.ha?.ha.nodes ?? {};
  const model: Model = {
    now: wall,
    self: config?.cluster.node ?? hostname().split(".")[0]!,
    members: config?.cluster.members.map((m) => m.name) ?? [],
    vip: config?.ha?.ha.vip?.address ?? null,
    addresses: Object.fromEntries(Object.entries(nodes).map(([n, v]) => [n, v.address])),
    status: { live: false, body: null, wall: null, why: "not read yet" },
    alarms: { available: null, active: [], error: null },
    logs: { node: "", lines: [], error: null },
    events: { lines: [], errors: [] },
    hw: emptyHardware(),
  };
  const request: Request = (method, path, body, timeoutMs) => controlRequest(socket, method, path, body, timeoutMs);
  return { ok: true, setup: { config, socket, stateDir, model, request } };
}

export function configErrors(path: string, errors: string[]): string {
  return `${path}: ${errors.length} error${errors.length === 1 ? "" : "s"}:\n${errors.map((e) => `  ${e}`).join("\n")}`;
}
