// `bollard site` (issue 18, docs/site.md): the remote site's replica.
//   bollard site promote [--site NAME] [--dry-run]   at the secondary room, the day the primary
//       room is gone: states what would be lost, asks for a typed confirmation, promotes
//   bollard site status [--site NAME]                the same facts, nothing changed
//   bollard site clear NAME                          after re-cloning this room from NAME: lets
//       this room's MySQL be writable again (through the agent and the leader)
// promote and status talk to the remote's MySQL directly (and, for what it can learn, to the
// primary room's servers, 1 s each): no agent runs at the secondary room.
import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import mysql from "mysql2/promise";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import type { SiteConfig } from "../config/site-schema.ts";
import { lagTransactions, promotePlan, promotedFlag } from "../ha/site.ts";
import { flavourByName } from "../resources/mysql-flavour.ts";
import { SiteMysqlDriver } from "../resources/site-mysql.ts";
import { send } from "./ha-cmd.ts";
import type { CommandContext, SubCommand } from "./types.ts";

const usage = (ctx: CommandContext, msg: string) => {
  ctx.io.err(`bollard site: ${msg}\nusage: bollard site promote [--site NAME] [--dry-run] | status [--site NAME] | clear NAME`);
  return 2;
};

/** What a primary-room server said when asked (1 s), for the statement of loss. */
interface RoomServer { node: string; up: boolean; writable?: boolean; gtid?: string; error?: string }

async function probeRoom(c: Config): Promise<RoomServer[]> {
  const m = c.ha?.mysql;
  if (!c.ha || !m) return [];
  let password = "";
  try { password = readFileSync(m.password_file, "utf8").trim(); } catch { return []; }
  const kind = flavourByName(m.flavour)!.gtidKind;
  return Promise.all(Object.entries(c.ha.ha.nodes).map(async ([node, n]): Promise<RoomServer> => {
    let conn: mysql.Connection | null = null;
    try {
      conn = await mysql.createConnection({ host: n.address, port: m.port, user: m.user, password, connectTimeout: 1000 });
      const [rows] = await Promise.race([
        conn.query(kind === "mariadb" ? "SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.gtid_binlog_state AS gtid" : "SELECT @@GLOBAL.super_read_only AS ro, @@GLOBAL.gtid_executed AS gtid"),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no answer within 1 s")), 1000)),
      ]);
      const r = (rows as Record<string, unknown>[])[0] ?? {};
      return { node, up: true, writable: Number(r.ro) === 0, gtid: String(r.gtid ?? "") };
    } catch (e) {
      return { node, up: false, error: (e as Error).message };
    } finally {
      conn?.destroy();
    }
  }));
}

function pickSite(c: Config, name: string | undefined): SiteConfig | string {
  const sites = c.sites ?? [];
  if (!sites.length) return "the config has no sites: section";
  if (name) return sites.find((s) => s.name === name) ?? `no site named ${JSON.stringify(name)} (${sites.map((s) => s.name).join(", ")})`;
  if (sites.length > 1) return `several sites (${sites.map((s) => s.name).join(", ")}): name one with --site`;
  return sites[0];
}

function driverFor(c: Config, s: SiteConfig): SiteMysqlDriver {
  const m = c.ha!.mysql!;
  const read = (f: string) => readFileSync(f, "utf8").trim();
  return new SiteMysqlDriver({
    flavour: flavourByName(m.flavour)!, host: s.host, port: s.port, user: s.user ?? m.user, password: read(s.passwordFile ?? m.password_file),
    replUser: m.repl_user, replPassword: "", callTimeoutMs: 3000,
  });
}

/** One line from stdin (a terminal or a pipe); "" when it closes first. */
function readLine(): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    const done = (v: string) => { process.stdin.off("data", onData); process.stdin.off("end", onEnd); process.stdin.pause(); resolve(v.trim()); };
    const onData = (d: Buffer) => { buf += String(d); const i = buf.indexOf("\n"); if (i >= 0) done(buf.slice(0, i)); };
    const onEnd = () => done(buf);
    process.stdin.on("data", onData);
    process.stdin.once("end", onEnd);
    process.stdin.resume();
  });
}

async function statusOrPromote(args: string[], ctx: CommandContext, promote: boolean): Promise<number> {
  let p;
  try {
    p = parseArgs({ args, allowPositionals: false, options: { site: { type: "string" }, "dry-run": { type: "boolean" }, force: { type: "boolean" }, json: { type: "boolean" } } });
  } catch (e) {
    return usage(ctx, (e as Error).message);
  }
  const r = loadConfig(ctx.configPath, { secrets: false });
  if (!r.ok) { ctx.io.err(`bollard site: ${ctx.configPath}:\n  ${r.errors.join("\n  ")}`); return 2; }
  const site = pickSite(r.config, p.values.site);
  if (typeof site === "string") return usage(ctx, site);
  let drv: SiteMysqlDriver;
  try { drv = driverFor(r.config, site); } catch (e) { ctx.io.err(`bollard site: ${(e as Error).message}`); return 2; }
  try {
    const f = await drv.status();
    if (!f.up) { ctx.io.err(`bollard site: ${site.name}'s MySQL (${site.host}:${site.port}) does not answer: ${f.error}`); return 1; }
    const kind = flavourByName(r.config.ha!.mysql!.flavour)!.gtidKind;
    const plan = promotePlan(kind, f, Date.now());
    const room = await probeRoom(r.config);
    const writable = room.filter((x) => x.writable);
    const out = [`remote site ${site.name} (${site.host}:${site.port}): ${f.promoted ? "PROMOTED" : f.source ? "replica" : "not replicating"}, ${f.readOnly ? "read-only" : "writable"}`, ...plan.lines.map((l) => `  ${l}`)];
    out.push("the primary room's servers, asked now:");
    for (const x of room) {
      const lag = x.up && x.gtid !== undefined ? lagTransactions(kind, x.gtid, f.received) : null;
      out.push(`  ${x.node}: ${x.up ? `${x.writable ? "WRITABLE primary" : "read-only"} at ${x.gtid || "nothing"}${lag ? ` (${lag.count} transactions this replica lacks)` : ""}` : `no answer (${x.error})`}`);
    }
    if (!room.length) out.push("  (none configured or readable here)");
    if (ctx.json || p.values.json) ctx.io.out(JSON.stringify({ site: site.name, facts: f, lost: plan.lost, lostTrx: plan.lostTrx, room }));
    else ctx.io.out(out.join("\n"));
    if (!promote) return 0;
    if (f.promoted) { ctx.io.err(`bollard site: ${site.name} is already promoted (${new Date(f.promoted.at).toISOString()} by ${f.promoted.by})`); return 1; }
    if (writable.length && !p.values.force) {
      ctx.io.err(`bollard site: refused: ${writable.map((x) => x.node).join(", ")} in the primary room answers as a writable primary; promoting now makes two primaries. Stop it first, or add --force`);
      return 1;
    }
    ctx.io.out(`\nPromoting ${site.name} makes it writable and the only primary; the primary room, when it returns, is held read-only for re-cloning.\nIt would lose: ${plan.lost}.`);
    if (p.values["dry-run"]) { ctx.io.out("--dry-run: nothing changed"); return 0; }
    const want = `promote ${site.name}`;
    ctx.io.err(`Type "${want}" to go on: `);
    const answer = await readLine();
    if (answer !== want) { ctx.io.err(`bollard site: not confirmed (got ${JSON.stringify(answer)}); nothing changed`); return 1; }
    const t0 = performance.now();
    const gtid = await drv.promote(`${hostname()} (bollard site promote)`, plan.lost.slice(0, 1000), Date.now());
    ctx.io.out(`${site.name} promoted in ${Math.round(performance.now() - t0)} ms at ${gtid || "an empty position"}; point the applications at ${site.host}:${site.port}`);
    return 0;
  } catch (e) {
    ctx.io.err(`bollard site: ${(e as Error).message}`);
    return 1;
  } finally {
    await drv.close();
  }
}

export const siteCommand: SubCommand = {
  name: "site",
  usage: [
    "site promote [--site NAME] [--dry-run] [--force]   at the secondary room: what would be lost, a typed confirmation, promote",
    "site status [--site NAME] [--json]              the remote's replication and what a promote would lose, nothing changed",
    "site clear NAME                                 after re-cloning from NAME: this room's MySQL may be writable again",
  ],
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === "promote") return statusOrPromote(rest, ctx, true);
    if (sub === "status") return statusOrPromote(rest, ctx, false);
    if (sub === "clear") {
      const [name] = rest;
      if (!name || rest.length !== 1 || !/^[a-z][a-z0-9-]{0,30}$/.test(name)) return usage(ctx, "expected: site clear NAME");
      return send(ctx, { op: "apply", why: `operator: re-cloned from ${name}`, flags: { [promotedFlag(name)]: null } });
    }
    return usage(ctx, `expected promote, status or clear, got ${JSON.stringify(sub ?? "")}`);
  },
};
