// agent/cli/: the operator's command line (docs/cli.md): this dispatcher, the command table
// (commands.ts), each command (*-cmd.ts, diag.ts); the commands of the node image are in
// provision/, the full-screen console in console/.
//
// `bollard <command>`: argument parsing (node:util parseArgs) and each command's small body.
// Exit codes: 0 ok, 1 failure (the agent failed, did not answer, or refused a command),
// 2 usage or config error.
import { parseArgs } from "node:util";
import { Agent } from "../agent.ts";
import type { Command } from "../bus/messages.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, NAME_RE, isHostPort } from "../config/schema.ts";
import { JsonLogger } from "../env/log.ts";
import { notifyTarget } from "../env/notify.ts";
import { COMMAND_NAMES, loadCommands } from "./commands.ts";
import { controlRequest } from "../runtime/control.ts";
import { readStatus, renderStatus } from "../runtime/status.ts";
import type { BuildInfo, Io, SubCommand } from "./types.ts";

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** The commands cli.ts runs itself, with their help lines (a line starting with a space goes on). */
export const BUILTIN: { name: string; usage: string[] }[] = [
  { name: "agent", usage: ["agent                      run the agent (the systemd service)"] },
  {
    name: "status",
    usage: [
      "status [--json]            this node's view of the cluster; when the agent does not",
      "                           answer, its last known state and how old it is (exit 1)",
    ],
  },
  { name: "config", usage: [`config check [FILE]        validate a config file (default: --config, or ${DEFAULT_CONFIG_PATH})`] },
  { name: "assign", usage: ["assign SERVICE NODE        make NODE hold SERVICE (through the leader)"] },
  { name: "unassign", usage: ["unassign SERVICE           remove SERVICE's assignment (through the leader)"] },
  { name: "members", usage: ["members add NAME ADDR      add member NAME whose broker is ADDR (host:port)", "members remove NAME        remove member NAME"] },
];

const OPTIONS = `options (-c, --config and --json anywhere on the line, as git and kubectl take theirs):
  -c, --config PATH          config file (default ${DEFAULT_CONFIG_PATH})
      --json                 machine-readable output (status, nodes, services, logs, events, alarms)
  -h, --help                 this help; after a command, that command's
  -v, --version              print the version and git revision

exit codes: 0 ok, 1 failure, 2 usage or config error`;

export const USAGE = `usage: bollard <command> [options]

commands:
${BUILTIN.flatMap((b) => b.usage.map((l) => `  ${l}`)).join("\n")}

${OPTIONS}`;

/** USAGE with the registered commands' lines added under "commands:". */
export async function usage(): Promise<string> {
  const extra = (await loadCommands()).flatMap((c) => c.usage.map((l) => `  ${l}`));
  return extra.length ? USAGE.replace("\noptions", `${extra.join("\n")}\n\noptions`) : USAGE;
}

/** `bollard NAME --help`: the command's own help text, or its usage lines and the options. */
export function commandHelp(c: { name: string; usage: string[]; help?: string }): string {
  if (c.help) return c.help;
  const lines = c.usage.map((l, i) => (l.startsWith(" ") ? `${" ".repeat(15)}${l}` : `${i ? "       " : "usage: "}bollard ${l}`));
  return `${lines.join("\n")}\n\n${OPTIONS}`;
}

class UsageError extends Error {}

function usageError(io: Io, msg: string): number {
  io.err(`bollard: ${msg}\nrun "bollard --help" for usage`);
  return EXIT.usage;
}

export async function runCli(argv: string[], io: Io, build: BuildInfo): Promise<number> {
  let g: ReturnType<typeof globalOptions>;
  let pre: { help?: boolean; version?: boolean };
  try {
    g = globalOptions(argv);
    // before the command only -h and -v; a registered command parses the words after its
    // name itself (cli/commands.ts), -c, --config and --json taken out
    pre = parseArgs({ args: g.before, strict: true, options: { help: { type: "boolean", short: "h" }, version: { type: "boolean", short: "v" } } }).values;
  } catch (e) {
    return usageError(io, (e as Error).message);
  }
  const [cmd, ...rest] = g.rest;
  const names: readonly string[] = COMMAND_NAMES;
  const sub = cmd !== undefined && names.includes(cmd) ? (await loadCommands()).find((c) => c.name === cmd)! : null;
  const known = sub ?? BUILTIN.find((b) => b.name === cmd);
  if (pre.help || g.help) {
    if (known) io.out(commandHelp(known));
    else if (cmd === undefined) io.out(await usage());
    else return usageError(io, `unknown command "${cmd}"`);
    return EXIT.ok;
  }
  if (pre.version) {
    io.out(`bollard ${build.version} (${build.rev})`);
    return EXIT.ok;
  }
  const configPath = g.config ?? DEFAULT_CONFIG_PATH;
  const configGiven = g.config !== undefined;
  if (sub) return sub.run(rest, { configPath, configGiven, json: g.json, io, build });
  try {
    try {
      parseArgs({ args: rest, strict: true, allowPositionals: true, options: {} });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    switch (cmd) {
      case undefined:
        throw new UsageError("no command given");
      case "agent":
        want(rest, 0, "agent");
        return await runAgent(configPath, io, build);
      case "status":
        want(rest, 0, "status [--json]");
        return await status(paths(configPath, configGiven, io), g.json, io);
      case "config":
        if (rest[0] !== "check" || rest.length > 2) throw new UsageError("expected: config check [FILE]");
        return configCheck(rest[1] ?? configPath, io);
      case "assign":
        want(rest, 2, "assign SERVICE NODE");
        return await command(paths(configPath, configGiven, io), { op: "assign", service: rest[0]!, node: nodeName(rest[1]!) }, io);
      case "unassign":
        want(rest, 1, "unassign SERVICE");
        return await command(paths(configPath, configGiven, io), { op: "unassign", service: rest[0]! }, io);
      case "members":
        return await members(rest, paths(configPath, configGiven, io), io);
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`bollard: ${e.message}\nrun "bollard --help" for usage`);
    return EXIT.usage;
  }
}

/**
 * The global options, wherever they are on the line (up to a "--"): -c PATH, -cPATH,
 * --config PATH, --config=PATH and --json are taken out, and -h or --help after the command
 * is noted. `before`: the other words before the command (-h, -v, or a mistake); `rest`: the
 * command and the words after it.
 */
export function globalOptions(argv: string[]): { config?: string; json: boolean; help: boolean; before: string[]; rest: string[] } {
  const out = { config: undefined as string | undefined, json: false, help: false, before: [] as string[], rest: [] as string[] };
  let ended = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (ended || a === "--") {
      ended = true;
      (out.rest.length ? out.rest : out.before).push(a);
    } else if (a === "-c" || a === "--config") {
      if (i + 1 >= argv.length) throw new Error(`option '${a}' needs a value: ${a} PATH`);
      out.config = argv[++i];
    } else if (a.startsWith("--config=")) out.config = a.slice("--config=".length);
    else if (/^-c[^-]/.test(a)) out.config = a.slice(2);
    else if (a === "--json") out.json = true;
    else if (out.rest.length || !a.startsWith("-")) {
      if (out.rest.length && (a === "-h" || a === "--help")) out.help = true;
      out.rest.push(a);
    } else out.before.push(a);
  }
  return out;
}

function want(rest: string[], n: number, form: string): void {
  if (rest.length !== n) throw new UsageError(`expected: ${form}`);
}

function nodeName(n: string): string {
  if (!NAME_RE.test(n)) throw new UsageError(`"${n}" is not a node name (a-z, 0-9, -, starting with a letter)`);
  return n;
}

/** `bollard agent`: runs until SIGTERM/SIGINT (exit 0) or a failure (exit 1). */
async function runAgent(configPath: string, io: Io, build: BuildInfo): Promise<number> {
  const r = loadConfig(configPath);
  if (!r.ok) return printConfigErrors(configPath, r.errors, io), EXIT.usage;
  const log = JsonLogger.create({ level: r.config.log.level });
  // sd_notify(3) unset_environment: our children (drivers, tools) must not inherit these.
  const target = notifyTarget(process.env, process.pid);
  for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) delete process.env[k];
  const agent = new Agent(r.config, log, { version: build.version, rev: build.rev, notify: target });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (why: string, code: number) => {
      if (stopping) {
        log.warn(`${why} while stopping: exiting now`);
        return resolve(EXIT.failure);
      }
      stopping = true;
      log.info("stopping", { why });
      agent.stop().then(
        () => resolve(code),
        (e: Error) => (log.error("stop failed", { err: e }), resolve(EXIT.failure)),
      );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM", EXIT.ok));
    process.on("SIGINT", () => shutdown("SIGINT", EXIT.ok));
    process.on("uncaughtException", (e) => (log.error("uncaught exception", { err: e }), shutdown("uncaught exception", EXIT.failure)));
    process.on("unhandledRejection", (e) => (log.error("unhandled rejection", { err: e as Error }), shutdown("unhandled rejection", EXIT.failure)));
    agent.start().catch(() => shutdown("start-up failed", EXIT.failure));
  });
}

function configCheck(file: string, io: Io): number {
  const r = loadConfig(file);
  if (!r.ok) return printConfigErrors(file, r.errors, io), EXIT.usage;
  const c = r.config;
  io.out(
    `${file}: ok: cluster ${c.cluster.name}, node ${c.cluster.node}, ${c.cluster.members.length} members ` +
      `(${c.cluster.members.map((m) => m.name).join(", ")}), state_dir ${c.stateDir}, control socket ${c.control.socket}`,
  );
  return EXIT.ok;
}

function printConfigErrors(file: string, errors: string[], io: Io): void {
  io.err(`${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}:\n${errors.map((e) => `  ${e}`).join("\n")}`);
}

interface Paths {
  socket: string;
  stateDir: string;
}

/** Where the agent's socket and state are: from the config, or the defaults without one. */
function paths(configPath: string, explicit: boolean, io: Io): Paths {
  const r = loadConfig(configPath, { secrets: false });
  if (r.ok) return { socket: r.config.control.socket, stateDir: r.config.stateDir };
  if (explicit) {
    printConfigErrors(configPath, r.errors, io);
    throw new UsageError(`cannot use config ${configPath}`);
  }
  return { socket: `${DEFAULT_STATE_DIR}/agent.sock`, stateDir: DEFAULT_STATE_DIR };
}

async function status(p: Paths, json: boolean, io: Io): Promise<number> {
  const r = await readStatus(p.socket, p.stateDir);
  if (!r.ok) {
    if (json) io.out(JSON.stringify({ live: false, error: r.why }));
    else io.err(`bollard: agent not answering and no last known state: ${r.why}`);
    return EXIT.failure;
  }
  if (json) io.out(JSON.stringify(r.live ? { live: true, status: r.body } : { live: false, ageMs: r.ageMs, why: r.why, status: r.body }));
  else io.out(renderStatus(r));
  return r.live ? EXIT.ok : EXIT.failure;
}

async function members(rest: string[], p: Paths, io: Io): Promise<number> {
  const [sub, name, addr] = rest;
  if (sub === "add") {
    want(rest, 3, "members add NAME ADDR");
    if (!isHostPort(addr!)) throw new UsageError(`ADDR: expected host:port, got "${addr}"`);
    return command(p, { op: "add", member: { name: nodeName(name!), bus: addr! } }, io);
  }
  if (sub === "remove") {
    want(rest, 2, "members remove NAME");
    return command(p, { op: "remove", node: nodeName(name!) }, io);
  }
  throw new UsageError("expected: members add NAME ADDR | members remove NAME");
}

/** POSTs a command to the local agent, which runs it through the leader. */
async function command(p: Paths, cmd: Command, io: Io): Promise<number> {
  try {
    const r = await controlRequest(p.socket, "POST", "/command", cmd, 15_000);
    const body = r.body as { status?: string; epoch?: number; error?: string };
    if (r.code === 200 && body.status === "ok") {
      io.out(`ok${body.epoch !== undefined ? `: committed in config epoch ${body.epoch}` : ""}`);
      return EXIT.ok;
    }
    io.err(`bollard: refused: ${body.error ?? `HTTP ${r.code}`}`);
    return EXIT.failure;
  } catch (e) {
    io.err(`bollard: the agent is not answering on ${p.socket}: ${(e as Error).message}`);
    return EXIT.failure;
  }
}
