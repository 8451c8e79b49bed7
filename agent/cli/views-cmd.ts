// `bollard nodes`, `bollard services`, `bollard logs` and `bollard events` (docs/cli.md): the
// console's screens 1, 2, 4 and 5 as commands, each with --json. Exit codes: 0 ok; 1 the agent
// did not answer (nodes and services then show its last known state, events this node's
// events.jsonl) or another node did not; 2 usage or config error.
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { CommandContext, SubCommand } from "./types.ts";
import { HwPoller } from "../console/hw.ts";
import { assess, haOf, membersOf, type EventLine, type LogLine } from "../console/model.ts";
import { nodeRows, nodesTable } from "../console/screens-cluster.ts";
import { logText } from "../console/screens-lists.ts";
import { serviceViews, servicesLines } from "../console/screens-services.ts";
import { configErrors, setup, type Setup } from "../console/setup.ts";
import { DataSource, readEventsFile } from "../console/source.ts";
import { age } from "../runtime/status.ts";

type Opts = Record<string, string | boolean | undefined>;

function parse(name: string, args: string[], ctx: CommandContext, options: NonNullable<ParseArgsConfig["options"]>): Opts | null {
  try {
    const p = parseArgs({ args, strict: true, allowPositionals: false, options: { json: { type: "boolean" }, ...options } });
    return { ...p.values, json: p.values.json || ctx.json } as Opts;
  } catch (e) {
    ctx.io.err(`bollard: ${name}: ${(e as Error).message}\nrun "bollard --help" for usage`);
    return null;
  }
}

function init(ctx: CommandContext): Setup | null {
  const s = setup(ctx);
  if (s.ok) return s.setup;
  ctx.io.err(configErrors(ctx.configPath, s.errors));
  return null;
}

/** The status (live or last known) in a data source; prints why when it is not live. */
async function statusOf(s: Setup, ctx: CommandContext, json: boolean): Promise<DataSource | null> {
  const src = new DataSource(s.model, s.request, s.stateDir, null, () => undefined);
  await Promise.all([src.pollStatus(), src.pollAlarms()]);
  const st = src.model.status;
  if (!st.body) {
    if (json) ctx.io.out(JSON.stringify({ live: false, error: st.why }));
    else ctx.io.err(`bollard: the agent is not answering (${st.why}) and there is no last known state in ${s.stateDir}`);
    return null;
  }
  if (!st.live && !json) ctx.io.err(`bollard: the agent is not answering (${st.why}); its last known state, ${age(Date.now() - st.wall!)} old:`);
  return src;
}

const liveFields = (src: DataSource) => {
  const st = src.model.status;
  return st.live ? { live: true } : { live: false, ageMs: Date.now() - (st.wall ?? 0), why: st.why };
};

export const nodesCommand: SubCommand = {
  name: "nodes",
  usage: ["nodes [--no-hw] [--json]         every node: role, up/down, BMC, power, links, load (console screen 1)"],
  async run(args, ctx) {
    const o = parse("nodes", args, ctx, { "no-hw": { type: "boolean" } });
    if (!o) return 2;
    const s = init(ctx);
    if (!s) return 2;
    const src = await statusOf(s, ctx, !!o.json);
    if (!src) return 1;
    let m = src.model;
    if (!o["no-hw"]) {
      const hw = new HwPoller(s.config, s.stateDir, m.hw);
      hw.readLocal();
      await hw.readRemote(Date.now);
      hw.close();
      m = { ...m, hw: hw.hw };
    }
    const a = assess(m);
    if (o.json) ctx.io.out(JSON.stringify({ ...liveFields(src), self: m.self, state: a.level, reasons: a.reasons, nodes: nodeRows(m), switches: m.hw.switches }));
    else ctx.io.out([`${a.level}${a.reasons.length ? `: ${a.reasons.join("; ")}` : ""}`, "", ...nodesTable(m, 200)].join("\n"));
    return m.status.live ? 0 : 1;
  },
};

export const servicesCommand: SubCommand = {
  name: "services",
  usage: ["services [--json]                MySQL, Redis: primary, replicas, lag, GTID; portal routes, VIP (screen 2)"],
  async run(args, ctx) {
    const o = parse("services", args, ctx, {});
    if (!o) return 2;
    const s = init(ctx);
    if (!s) return 2;
    const src = await statusOf(s, ctx, !!o.json);
    if (!src) return 1;
    const m = src.model;
    const ha = haOf(m);
    if (o.json) {
      const portal = Object.fromEntries(membersOf(m).map((n) => [n, n === m.self ? (ha?.facts.portal ?? null) : (ha?.peers[n]?.portal ?? null)]));
      const vip = Object.fromEntries(membersOf(m).map((n) => [n, n === m.self ? (ha?.facts.vip ?? null) : (ha?.peers[n]?.vip ?? null)]));
      ctx.io.out(JSON.stringify({ ...liveFields(src), self: m.self, services: serviceViews(m), portal, vip: { address: m.vip, holder: m.status.body?.view.committed.assignments.vip ?? null, up: vip }, procedures: ha?.procedures ?? [], flags: m.status.body?.view.committed.flags ?? {}, sites: ha?.sites ?? [] }));
    } else ctx.io.out(servicesLines(m).join("\n"));
    return m.status.live ? 0 : 1;
  },
};

/** `10m`, `2h`, `30s`, `1d` before now, or an ISO time. */
export function sinceTime(t: string, now = Date.now()): string | null {
  const rel = /^(\d+)(s|m|h|d)$/.exec(t);
  if (rel) return new Date(now - Number(rel[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[rel[2] as "s"]).toISOString();
  const d = Date.parse(t);
  return Number.isFinite(d) ? new Date(d).toISOString() : null;
}

const LEVELS = ["debug", "info", "warn", "error"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `round` once, or every second until SIGINT/SIGTERM when following. */
async function follow(on: boolean, round: () => Promise<number | null>): Promise<number> {
  const first = await round();
  if (!on || first !== null) return first ?? 0;
  let stop = false;
  const end = () => void (stop = true);
  process.once("SIGINT", end);
  process.once("SIGTERM", end);
  while (!stop) {
    await sleep(1000);
    const r = await round();
    if (r !== null) return r;
  }
  return 0;
}

/** Remembers what was printed at the newest timestamp, so a `since` re-read prints nothing twice. */
class Seen {
  private ts = "";
  private keys = new Set<string>();
  fresh<T extends { ts: string }>(xs: T[]): T[] {
    const out: T[] = [];
    for (const x of xs) {
      const k = JSON.stringify(x);
      if (x.ts < this.ts || (x.ts === this.ts && this.keys.has(k))) continue;
      if (x.ts > this.ts) [this.ts, this.keys] = [x.ts, new Set()];
      this.keys.add(k);
      out.push(x);
    }
    return out;
  }
  get since(): string | undefined {
    return this.ts || undefined;
  }
}

export const logsCommand: SubCommand = {
  name: "logs",
  usage: ["logs [-f] [--node N] [--level L] [--since T] [-n N] [--json]  the agent's log lines, any node's"],
  async run(args, ctx) {
    const o = parse("logs", args, ctx, { follow: { type: "boolean", short: "f" }, node: { type: "string" }, level: { type: "string" }, since: { type: "string" }, n: { type: "string", short: "n" } });
    if (!o) return 2;
    const level = (o.level as string | undefined) ?? "info";
    const n = Number(o.n ?? 200);
    const since = o.since === undefined ? null : sinceTime(o.since as string);
    if (!LEVELS.includes(level)) return ctx.io.err(`bollard: logs: --level: expected debug, info, warn or error, got ${JSON.stringify(level)}`), 2;
    if (!Number.isInteger(n) || n < 1 || n > 2000) return ctx.io.err("bollard: logs: -n: expected 1-2000"), 2;
    if (o.since !== undefined && !since) return ctx.io.err(`bollard: logs: --since: expected an ISO time or 30s, 10m, 2h, 1d; got ${JSON.stringify(o.since)}`), 2;
    const s = init(ctx);
    if (!s) return 2;
    const node = (o.node as string | undefined) ?? s.model.self;
    const seen = new Seen();
    return follow(!!o.follow, async () => {
      const q = new URLSearchParams({ n: String(n), level, node });
      const from = seen.since ?? since;
      if (from) q.set("since", from);
      try {
        const r = await s.request("GET", `/logs?${q}`, undefined, 5000);
        const b = r.body as { lines?: unknown[]; error?: string } | unknown[];
        const raw = Array.isArray(b) ? b : b.lines;
        if (r.code !== 200 || !Array.isArray(raw)) return ctx.io.err(`bollard: logs of ${node}: ${(b as { error?: string }).error ?? `HTTP ${r.code}`}`), 1;
        const lines = raw.map((x) => (typeof x === "string" ? (JSON.parse(x) as LogLine) : (x as LogLine)));
        for (const l of seen.fresh(lines)) ctx.io.out(o.json ? JSON.stringify(l) : logText(l));
        return null;
      } catch (e) {
        return ctx.io.err(`bollard: logs: the agent is not answering on ${s.socket}: ${(e as Error).message}`), 1;
      }
    });
  },
};

export const eventsCommand: SubCommand = {
  name: "events",
  usage: ["events [--follow] [--node N|all] [-n N] [--json]  the HA event log: failover steps with durations"],
  async run(args, ctx) {
    const o = parse("events", args, ctx, { follow: { type: "boolean", short: "f" }, node: { type: "string" }, n: { type: "string", short: "n" } });
    if (!o) return 2;
    const n = Number(o.n ?? 200);
    if (!Number.isInteger(n) || n < 1 || n > 2000) return ctx.io.err("bollard: events: -n: expected 1-2000"), 2;
    const s = init(ctx);
    if (!s) return 2;
    const want = (o.node as string | undefined) ?? s.model.self;
    let nodes = [want];
    if (want === "all") {
      const src = new DataSource(s.model, s.request, s.stateDir, null, () => undefined);
      await src.pollStatus();
      nodes = membersOf(src.model);
    }
    const seen = new Seen();
    const print = (xs: EventLine[]) => {
      for (const e of seen.fresh(xs.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0)))) ctx.io.out(o.json ? JSON.stringify(e) : `${e.ts} ${e.node.padEnd(6)} ${e.kind.padEnd(9)} ${e.detail}`);
    };
    return follow(!!o.follow, async () => {
      const all: EventLine[] = [];
      let failed = 0;
      for (const node of nodes) {
        try {
          const r = await s.request("GET", `/events?${new URLSearchParams({ n: String(n), node })}`, undefined, 5000);
          const b = r.body as { events?: EventLine[]; error?: string };
          if (r.code === 200 && Array.isArray(b.events)) all.push(...b.events);
          else (failed++, ctx.io.err(`bollard: events of ${node}: ${b.error ?? `HTTP ${r.code}`}`));
        } catch (e) {
          if (node !== s.model.self) return ctx.io.err(`bollard: events: the agent is not answering on ${s.socket}: ${(e as Error).message}`), 1;
          ctx.io.err(`bollard: events: the agent is not answering (${(e as Error).message}); this node's ${s.stateDir}/events.jsonl:`);
          print(readEventsFile(s.stateDir, n));
          return 1;
        }
      }
      print(all);
      return failed && !o.follow ? 1 : null;
    });
  },
};
