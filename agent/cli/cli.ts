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

export const USAGE = `usage: bollard <command> [options]

commands:
  agent                      run the agent (the systemd service)
  status [--json]            this node's view of the cluster; when the agent does not
                             answer, its last known state and how old it is (exit 1)
  config check [FILE]        validate a config file (default: --config, or ${DEFAULT_CONFIG_PATH})
  assign SERVICE NODE        make NODE hold SERVICE (through the leader)
  unassign SERVICE           remove SERVICE's assignment (through the leader)
  members add NAME ADDR      add member NAME whose broker is ADDR (host:port)
  members remove NAME        remove member NAME

options:
  -c, --config PATH          config file (default ${DEFAULT_CONFIG_PATH})
      --json                 machine-readable output (status)
  -h, --help                 this help
  -v, --version              print the version and git revision

exit codes: 0 ok, 1 failure, 2 usage or config error`;

/** USAGE with the registered commands' lines added under "commands:". */
export async function usage(): Promise<string> {
  const extra = (await loadCommands()).flatMap((c) => c.usage.map((l) => `  ${l}`));
  return extra.length ? USAGE.replace("\noptions:", `${extra.join("\n")}\n\noptions:`) : USAGE;
}

class UsageError extends Error {}

function usageError(io: Io, msg: string): number {
  io.err(`bollard: ${msg}\nrun "bollard --help" for usage`);
  return EXIT.usage;
}

export async function runCli(argv: string[], io: Io, build: BuildInfo): Promise<number> {
  // A registered command parses the words after its name itself (cli/commands.ts).
  const names: readonly string[] = COMMAND_NAMES;
  const at = argv.findIndex((a, i) => names.includes(a) && !["-c", "--config"].includes(argv[i - 1] ?? ""));
  const sub: SubCommand | null = at >= 0 ? (await loadCommands()).find((c) => c.name === argv[at])! : null;
  let args: ReturnType<typeof parse>;
  try {
    args = parse(sub ? argv.slice(0, at) : argv);
  } catch (e) {
    io.err(`bollard: ${(e as Error).message}\nrun "bollard --help" for usage`);
    return EXIT.usage;
  }
  const { values: o, positionals: pos } = args;
  if (o.help) {
    io.out(await usage());
    return EXIT.ok;
  }
  if (o.version) {
    io.out(`bollard ${build.version} (${build.rev})`);
    return EXIT.ok;
  }
  const [cmd, ...rest] = pos;
  const configPath = o.config ?? DEFAULT_CONFIG_PATH;
  if (sub) {
    if (pos.length) return usageError(io, `unexpected "${pos[0]}" before "${sub.name}"`);
    return sub.run(argv.slice(at + 1), { configPath, configGiven: o.config !== undefined, io, build });
  }
  try {
    switch (cmd) {
      case undefined:
        throw new UsageError("no command given");
      case "agent":
        want(rest, 0, "agent");
        return await runAgent(configPath, io, build);
      case "status":
        want(rest, 0, "status [--json]");
        return await status(paths(configPath, o.config !== undefined, io), o.json ?? false, io);
      case "config":
        if (rest[0] !== "check" || rest.length > 2) throw new UsageError("expected: config check [FILE]");
        return configCheck(rest[1] ?? configPath, io);
      case "assign":
        want(rest, 2, "assign SERVICE NODE");
        return await command(paths(configPath, o.config !== undefined, io), { op: "assign", service: rest[0]!, node: nodeName(rest[1]!) }, io);
      case "unassign":
        want(rest, 1, "unassign SERVICE");
        return await command(paths(configPath, o.config !== undefined, io), { op: "unassign", service: rest[0]! }, io);
      case "members":
        return await members(rest, paths(configPath, o.config !== undefined, io), io);
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`bollard: ${e.message}\nrun "bollard --help" for usage`);
    return EXIT.usage;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
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
