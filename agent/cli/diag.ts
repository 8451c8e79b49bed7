// `bollard diag [--out FILE]`: one tar.gz for a support case (docs/cli.md lists its files):
// the config with secrets redacted, versions, cluster and resource state, every node's events,
// this agent's last logs and the node's services' logs, the BMC SEL and the switches' ports,
// and the MySQL and Redis replication status. Each part is collected on its own: one that
// fails is a line in ERRORS.txt, not a failed bundle. No secret goes in (diag-tar.ts): the
// config is redacted and every file is scrubbed of the secrets the config and the
// environment hold. Exit 0 when the bundle is written (parts may be missing), 1 when it
// cannot be written, 2 on a usage or config error.
import { execFile } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR, type Config } from "../config/schema.ts";
import { Ipmi } from "../hw/ipmi.ts";
import { SnmpSwitch } from "../hw/snmp.ts";
import type { BuildInfo, SubCommand } from "./types.ts";
import { quietLog } from "../console/hw.ts";
import { controlRequest } from "../runtime/control.ts";
import { addFileSecrets, envSecrets, redactConfigText, redactValue, scrub, tarGz, type TarEntry } from "./diag-tar.ts";
import { STATUS_FILE, renderStatus, type StatusBody } from "../runtime/status.ts";

export interface DiagOptions {
  configPath: string;
  out?: string;
  build?: BuildInfo;
  env?: NodeJS.ProcessEnv;
  progress?: (s: string) => void;
  /** wall ms (the bundle's name and README) */
  now?: number;
}

export interface DiagResult {
  path: string;
  bytes: number;
  files: string[];
  errors: string[];
}

const TAIL_BYTES = 512 * 1024;
const run = (file: string, args: string[], timeoutMs = 3000): Promise<string> =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" } }, (e, out, err) => {
      const text = `${out}${err}`.trim();
      resolve(e && !text ? `(${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not installed" : e.message})` : text);
    });
  });

/** The last `max` bytes of a file, from a line start. */
export function tailFile(file: string, max = TAIL_BYTES): string {
  const size = statSync(file).size;
  const fd = openSync(file, "r");
  try {
    const n = Math.min(size, max);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    const s = buf.toString("utf8");
    return size > n ? s.slice(s.indexOf("\n") + 1) : s;
  } finally {
    closeSync(fd);
  }
}

/** The node's services' log files: the Debian places, and the lab's (docs/lab.md). */
export function serviceLogFiles(c: Config | null, stateDir: string): string[] {
  const node = dirname(stateDir);
  const prefix = c?.ha?.portal?.prefix;
  return [
    "/var/log/mysql/error.log", "/var/log/redis/redis-server.log", "/var/log/nginx/error.log", "/var/log/mosquitto/mosquitto.log",
    join(node, "agent.log"), join(node, "supervisor.log"), join(node, "boot.log"),
    join(node, "mysql/error.log"), join(node, "redis/redis.log"), join(node, "mosquitto/mosquitto.log"),
    ...(prefix ? [join(prefix, "error.log"), join(prefix, "logs/error.log")] : []),
  ].filter((f, i, all) => all.indexOf(f) === i && existsSync(f));
}

async function versions(build?: BuildInfo): Promise<string> {
  const lines = [`bollard ${build ? `${build.version} (${build.rev})` : "(unknown)"}`, `node ${process.version}`];
  const tools: [string, string[]][] = [
    ["mariadb", ["--version"]], ["mysqld", ["--version"]], ["redis-server", ["--version"]], ["nginx", ["-v"]],
    ["mosquitto", ["-h"]], ["ipmitool", ["-V"]], ["uname", ["-a"]],
  ];
  const outs = await Promise.all(tools.map(([f, a]) => run(f, a)));
  tools.forEach(([f], i) => lines.push(`${f}: ${outs[i]!.split("\n")[0]}`));
  try {
    lines.push(`os: ${/PRETTY_NAME="?([^"\n]*)/.exec(tailFile("/etc/os-release"))?.[1] ?? "?"}`);
  } catch { /* no os-release */ }
  return lines.join("\n") + "\n";
}

async function getJson(socket: string, path: string, ms = 5000): Promise<unknown> {
  const r = await controlRequest(socket, "GET", path, undefined, ms);
  if (r.code !== 200) throw new Error(`HTTP ${r.code}: ${JSON.stringify(r.body).slice(0, 200)}`);
  return r.body;
}

async function mysqlStatus(c: Config): Promise<string> {
  const m = c.ha!.mysql!;
  const self = c.ha!.ha.nodes[c.cluster.node];
  const conn = await mysql.createConnection({
    host: m.socket ? undefined : self?.address, port: m.port, socketPath: m.socket, user: m.user,
    password: tailFile(m.password_file).trim(), connectTimeout: 2000,
  });
  try {
    const mariadb = m.flavour === "mariadb";
    const queries = mariadb
      ? ["SHOW SLAVE STATUS", "SHOW MASTER STATUS", "SELECT @@server_id, @@read_only, @@gtid_binlog_state, @@gtid_current_pos, @@gtid_slave_pos", "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'"]
      : ["SHOW REPLICA STATUS", "SHOW MASTER STATUS", "SELECT @@server_id, @@read_only, @@super_read_only, @@gtid_executed", "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'"];
    const out: string[] = [];
    for (const q of queries) {
      const [rows] = await Promise.race([conn.query(q), new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no answer within 3 s")), 3000))]);
      out.push(`-- ${q}`);
      for (const row of rows as Record<string, unknown>[]) out.push(...Object.entries(row).map(([k, v]) => `${k}: ${v === null ? "NULL" : String(v)}`), "");
      if (!(rows as unknown[]).length) out.push("(empty)", "");
    }
    return out.join("\n");
  } finally {
    conn.destroy();
  }
}

async function redisStatus(c: Config): Promise<string> {
  const r = c.ha!.redis!;
  const self = c.ha!.ha.nodes[c.cluster.node];
  const client = new Redis({
    host: self?.address, port: r.port, password: r.password_file ? tailFile(r.password_file).trim() : undefined,
    lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return `-- INFO replication\n${await client.info("replication")}`;
  } finally {
    client.disconnect();
  }
}

async function bmcSel(c: Config): Promise<string> {
  const b = c.ha?.ha.nodes[c.cluster.node]?.bmc;
  if (!b) return "no BMC configured for this node (ha.nodes.<node>.bmc)\n";
  const ipmi = new Ipmi({ host: b.host, port: b.port, user: b.user, passwordFile: b.password_file, cipher: b.cipher, timeoutS: b.timeout_s, retries: b.retries }, { log: quietLog });
  const p = await ipmi.powerStatus();
  const lines = [`BMC ${b.host}:${b.port}`, `power: ${p.ok ? p.value : p.error}`];
  if (!p.ok && /no answer|no result/.test(p.error)) return `${lines.join("\n")}\nSEL: not read (the BMC does not answer)\n`;
  const sel = await ipmi.selSince(null);
  if (!sel.ok) return `${lines.join("\n")}\nSEL: ${sel.error}\n`;
  lines.push(`SEL: ${sel.value.entries.length} entries`, "ID    DATE        TIME          SENSOR / EVENT");
  for (const e of sel.value.entries) lines.push(`${e.id.toString(16).padStart(4, "0")}  ${e.date.padEnd(10)}  ${e.time.padEnd(12)}  ${e.sensor} | ${e.event}${e.direction ? ` | ${e.direction}` : ""}${e.detail ? ` | ${e.detail}` : ""}`);
  return lines.join("\n") + "\n";
}

async function switchPorts(c: Config): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  for (const [name, s] of Object.entries(c.ha?.ha.switches ?? {})) {
    const sw = new SnmpSwitch({ name, host: s.host, port: s.port, version: s.version, community: s.community, timeoutMs: s.timeout_ms, retries: 1,
      v3: s.v3 ? { user: s.v3.user, authKey: s.v3.auth_key, privKey: s.v3.priv_key, authProtocol: s.v3.auth_protocol, privProtocol: s.v3.priv_protocol } : undefined }, { log: quietLog });
    const r = await sw.ports();
    sw.close();
    const lines = [`switch ${name} ${s.host}:${s.port}`];
    if (!r.ok) lines.push(`ERROR: ${r.error}`);
    else {
      lines.push("IFINDEX  DESCR            ADMIN  OPER   SPEED   IN-ERR  OUT-ERR  IN-DISC  OUT-DISC");
      for (const p of r.value.ports) lines.push([String(p.ifIndex).padEnd(8), (p.descr || "-").padEnd(16), String(p.admin).padEnd(6), String(p.oper).padEnd(6), String(p.speedMbps ?? "-").padEnd(7), String(p.inErrors ?? "-").padEnd(7), String(p.outErrors ?? "-").padEnd(8), String(p.inDiscards ?? "-").padEnd(8), String(p.outDiscards ?? "-")].join(" "));
    }
    out.push({ name: `hw/switch-${name}.txt`, data: lines.join("\n") + "\n" });
  }
  return out;
}

/** Collects everything, writes the bundle; never throws for a missing part. */
export async function writeDiagBundle(o: DiagOptions): Promise<DiagResult> {
  const now = o.now ?? Date.now();
  const progress = o.progress ?? (() => undefined);
  const r = loadConfig(o.configPath, { secrets: false });
  const c = r.ok ? r.config : null;
  const node = c?.cluster.node ?? "unknown";
  const stateDir = c?.stateDir ?? DEFAULT_STATE_DIR;
  const socket = c?.control.socket ?? `${DEFAULT_STATE_DIR}/agent.sock`;
  const stamp = new Date(now).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const top = `bollard-diag-${node}-${stamp}`;
  const path = o.out ?? `/var/tmp/${top}.tar.gz`;
  const secrets = new Set<string>();
  envSecrets(o.env ?? process.env, secrets);
  const files: TarEntry[] = [];
  const errors: string[] = [];
  const add = (name: string, data: string): void => void files.push({ name, data });
  const part = async (what: string, f: () => Promise<void> | void) => {
    progress(`collecting ${what}`);
    try {
      await f();
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message}`);
    }
  };

  await part("the config", () => {
    if (!r.ok) errors.push(`config ${o.configPath}: ${r.errors.join("; ")}`);
    add("config/bollard.yaml", redactConfigText(tailFile(o.configPath), secrets));
  });
  const pinFile = (o.env ?? process.env).BOLLARD_CONSOLE_PIN_FILE || "/etc/bollard/console.pin";
  addFileSecrets(pinFile, secrets);
  await part("versions", async () => add("versions.txt", await versions(o.build)));
  let status: StatusBody | null = null;
  await part("the status", async () => {
    try {
      status = (await getJson(socket, "/status")) as StatusBody;
      add("status.txt", renderStatus({ ok: true, live: true, body: status }) + "\n");
    } catch (e) {
      errors.push(`status: the agent is not answering (${(e as Error).message}); status.json is its last known state`);
      status = JSON.parse(tailFile(join(stateDir, STATUS_FILE))) as StatusBody;
      add("status.txt", renderStatus({ ok: true, live: false, body: status, ageMs: now - status.wall, why: "agent not answering" }) + "\n");
    }
    add("status.json", JSON.stringify(redactValue(status, secrets), null, 1) + "\n");
  });
  const body = status as StatusBody | null;
  const members = body?.view.committed.members.map((m) => m.name) ?? c?.cluster.members.map((m) => m.name) ?? [node];
  const evs = new Map<string, string>();
  await Promise.all(members.map((n) => part(`events of ${n}`, async () => {
    const get = async (count: number) => ((await getJson(socket, `/events?n=${count}&node=${encodeURIComponent(n)}`, 6000)) as { events: unknown[] }).events;
    try {
      // another node answers with what fits one bus message; a busy one may need a second, smaller ask
      const events = await get(2000).catch((e) => (n === node ? Promise.reject(e) : get(300)));
      evs.set(n, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    } catch (e) {
      if (n !== node) throw e;
      evs.set(n, tailFile(join(stateDir, "events.jsonl"), 4 * TAIL_BYTES));
    }
  })));
  for (const n of members) if (evs.has(n)) add(`events/${n}.jsonl`, evs.get(n)!);
  await part("the agent's logs", async () => {
    const b = (await getJson(socket, "/logs?n=2000")) as { lines?: unknown[] } | unknown[];
    const lines = Array.isArray(b) ? b : (b.lines ?? []);
    add("logs/agent.jsonl", lines.map((l) => (typeof l === "string" ? l : JSON.stringify(redactValue(l, secrets)))).join("\n") + "\n");
  });
  await part("journald", async () => {
    const j = await run("journalctl", ["-u", "bollard", "-u", "bollard-console@*", "--no-pager", "-n", "2000", "-o", "short-iso"], 8000);
    if (!/not installed|No journal files/.test(j)) add("logs/journal-bollard.txt", j + "\n");
  });
  for (const f of serviceLogFiles(c, stateDir)) await part(f, () => add(`logs/files${f}`, tailFile(f)));
  if (c?.ha) {
    const ha = body?.ha as { facts?: unknown; peers?: unknown; procedures?: unknown; heldOut?: unknown } | null | undefined;
    add("replication/facts.json", JSON.stringify({ facts: ha?.facts ?? null, peers: ha?.peers ?? null, procedures: ha?.procedures ?? null, heldOut: ha?.heldOut ?? null }, null, 1) + "\n");
    // the servers, the BMC and the switches answer (or time out) side by side
    const slow: [string, () => Promise<TarEntry[]>][] = [];
    if (c.ha.mysql) slow.push(["MySQL replication", async () => [{ name: "replication/mysql.txt", data: await mysqlStatus(c) }]]);
    if (c.ha.redis) slow.push(["Redis replication", async () => [{ name: "replication/redis.txt", data: await redisStatus(c) }]]);
    slow.push(["the BMC SEL", async () => [{ name: "hw/bmc-sel.txt", data: await bmcSel(c) }]]);
    slow.push(["the switches' ports", () => switchPorts(c)]);
    const results = new Map<string, TarEntry[]>();
    await Promise.all(slow.map(([what, f]) => part(what, async () => void results.set(what, await f()))));
    for (const [what] of slow) files.push(...(results.get(what) ?? []));
  }
  add("ERRORS.txt", errors.length ? errors.join("\n") + "\n" : "none\n");
  add("README.txt", [`bollard diagnostics bundle of ${node}, made ${new Date(now).toISOString()}`, `config ${o.configPath}; secrets redacted (docs/cli.md)`, "", ...files.map((f) => `  ${f.name}`), ""].join("\n"));
  progress("writing the bundle");
  const clean = files.map((f) => ({ name: `${top}/${f.name}`, data: scrub(String(f.data), secrets), mtime: now / 1000 }));
  const gz = tarGz(clean, now / 1000);
  writeFileSync(path, gz, { mode: 0o600 });
  return { path, bytes: gz.length, files: clean.map((f) => f.name), errors };
}

export const diagCommand: SubCommand = {
  name: "diag",
  usage: ["diag [--out FILE]                write a diagnostics bundle (tar.gz, secrets redacted)"],
  async run(args, ctx) {
    let out: string | undefined;
    try {
      out = parseArgs({ args, strict: true, options: { out: { type: "string", short: "o" } } }).values.out;
    } catch (e) {
      ctx.io.err(`bollard: diag: ${(e as Error).message}\nrun "bollard --help" for usage`);
      return 2;
    }
    const r = loadConfig(ctx.configPath, { secrets: false });
    if (!r.ok && ctx.configGiven) {
      ctx.io.err(`${ctx.configPath}: ${r.errors.join("\n  ")}`);
      return 2;
    }
    try {
      const res = await writeDiagBundle({ configPath: ctx.configPath, out, build: ctx.build });
      ctx.io.out(`${res.path}: ${res.files.length} files, ${res.bytes} bytes`);
      for (const e of res.errors) ctx.io.err(`bollard: diag: not collected: ${e}`);
      return 0;
    } catch (e) {
      ctx.io.err(`bollard: diag: cannot write the bundle: ${(e as Error).message}`);
      return 1;
    }
  },
};
