// `bollard users list|add|passwd|role|remove` (docs/web.md): the web console's accounts, kept in
// the replicated cluster config (web/users.ts) and changed through the leader with the same
// `apply` command the web's admin page sends. The password is read from the terminal (twice,
// not echoed) or, with --password-stdin, from the first line of standard input; it is hashed
// here (scrypt) and only the hash travels. No account exists until this makes one.
import { parseArgs } from "node:util";
import type { Command } from "../bus/messages.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR } from "../config/schema.ts";
import { controlRequest } from "../runtime/control.ts";
import { ROLES, hashPassword, passwordProblem, type Role } from "../web/auth.ts";
import { USER_RE, USER_TEXT, lastAdmin, removeUserCommand, setUserCommand, usersOf } from "../web/users.ts";
import type { CommandContext, SubCommand } from "./types.ts";

const USAGE = [
  "users list [--json]              the web console's accounts and their roles",
  "users add NAME --role ROLE [--password-stdin]   a new account (viewer, operator or admin)",
  "users passwd NAME [--password-stdin]            set NAME's password (its sessions end)",
  "users role NAME ROLE             change NAME's role",
  "users remove NAME                remove NAME (its sessions end)",
];

const HELP = `usage: bollard users list [--json]
       bollard users add NAME --role viewer|operator|admin [--password-stdin]
       bollard users passwd NAME [--password-stdin]
       bollard users role NAME viewer|operator|admin
       bollard users remove NAME

The web console's local accounts (docs/web.md), held in the replicated cluster config and
changed through the leader: every node knows them at once. There is no default account;
make the first admin with 'users add'. Passwords: 10 to 200 characters, read from the
terminal twice (not echoed) or from the first line of standard input (--password-stdin);
only their scrypt hash leaves this command. A changed password or a removal ends that
user's sessions on every node.

roles: viewer (every page), operator (and actions: switchover, maintenance, HA, alarm
acknowledgement, VMs), admin (and accounts, the audit log).

options: -c, --config PATH   --json   -h, --help
exit codes: 0 ok, 1 the agent refused or did not answer, 2 usage or config error`;

const socketOf = (ctx: CommandContext) => {
  const r = loadConfig(ctx.configPath, { secrets: false });
  return r.ok ? r.config.control.socket : `${DEFAULT_STATE_DIR}/agent.sock`;
};

export type ReadPassword = (prompt: string) => Promise<string>;

export const usersCommand: SubCommand = {
  name: "users",
  usage: USAGE,
  help: HELP,
  run: (args, ctx) => runUsers(args, ctx, readPassword),
};

export async function runUsers(args: string[], ctx: CommandContext, read: ReadPassword): Promise<number> {
  const usage = (msg: string) => (ctx.io.err(`bollard: users: ${msg}\nrun "bollard users --help" for usage`), 2);
  let p;
  try {
    p = parseArgs({ args, allowPositionals: true, strict: true, options: { role: { type: "string" }, "password-stdin": { type: "boolean" }, json: { type: "boolean" } } });
  } catch (e) {
    return usage((e as Error).message);
  }
  const [sub, name, roleArg, ...extra] = p.positionals;
  const socket = socketOf(ctx);
  const want = (n: number) => p.positionals.length === n;
  if (sub !== "list" && sub !== undefined && (!name || !USER_RE.test(name))) return usage(`NAME: expected ${USER_TEXT}, got ${JSON.stringify(name ?? "")}`);
  const role = (r: string | undefined): Role | null => (ROLES.includes(r as Role) ? (r as Role) : null);
  const flags = await currentFlags(socket);
  if (typeof flags === "string") return ctx.io.err(`bollard: users: ${flags}`), 1;
  const { users, bad } = usersOf(flags);
  const by = `${process.env.SUDO_USER || process.env.USER || "root"} (bollard users)`;
  switch (sub) {
    case "list": {
      if (!want(1)) return usage("expected: users list");
      const rows = [...users.values()].sort((a, b) => a.name.localeCompare(b.name));
      if (p.values.json || ctx.json) ctx.io.out(JSON.stringify({ users: rows.map((u) => ({ name: u.name, role: u.role })), malformed: bad }));
      else {
        if (!rows.length) ctx.io.out("no accounts: make the first with 'bollard users add NAME --role admin'");
        for (const u of rows) ctx.io.out(`${u.name.padEnd(33)} ${u.role}`);
        for (const b of bad) ctx.io.err(`bollard: users: the entry of ${b} in the cluster config is malformed (set it again with 'users passwd ${b}')`);
      }
      return 0;
    }
    case "add": {
      const r = role(p.values.role);
      if (!want(2) || !r) return usage("expected: users add NAME --role viewer|operator|admin");
      if (users.has(name!)) return ctx.io.err(`bollard: users: ${name} exists (users passwd or users role change it)`), 1;
      const hash = await newHash(ctx, read, !!p.values["password-stdin"]);
      if (hash === null) return 2;
      return send(ctx, socket, setUserCommand(name!, r, hash, by, "added"), `user ${name} added (${r})`);
    }
    case "passwd": {
      if (!want(2)) return usage("expected: users passwd NAME");
      const u = users.get(name!);
      if (!u) return ctx.io.err(`bollard: users: no user ${name}`), 1;
      const hash = await newHash(ctx, read, !!p.values["password-stdin"]);
      if (hash === null) return 2;
      return send(ctx, socket, setUserCommand(u.name, u.role, hash, by, "password changed"), `password of ${name} changed; its sessions have ended`);
    }
    case "role": {
      const r = role(roleArg);
      if (!want(3) || !r || extra.length) return usage("expected: users role NAME viewer|operator|admin");
      const u = users.get(name!);
      if (!u) return ctx.io.err(`bollard: users: no user ${name}`), 1;
      if (lastAdmin(users, u.name, r)) ctx.io.err(`bollard: users: note: ${name} was the last admin (add another with 'users add NAME --role admin')`);
      return send(ctx, socket, setUserCommand(u.name, r, u.hash, by, "role changed"), `${name} is ${r} now`);
    }
    case "remove": {
      if (!want(2)) return usage("expected: users remove NAME");
      if (!users.has(name!) && !bad.includes(name!)) return ctx.io.err(`bollard: users: no user ${name}`), 1;
      if (lastAdmin(users, name!, null)) ctx.io.err(`bollard: users: note: ${name} was the last admin (add another with 'users add NAME --role admin')`);
      return send(ctx, socket, removeUserCommand(name!, by), `user ${name} removed; its sessions have ended`);
    }
    default:
      return usage(sub === undefined ? "expected: users list|add|passwd|role|remove" : `unknown subcommand "${sub}"`);
  }
}

async function currentFlags(socket: string): Promise<Record<string, string> | string> {
  try {
    const r = await controlRequest(socket, "GET", "/status", undefined, 5000);
    const flags = (r.body as { view?: { committed?: { flags?: Record<string, string> } } }).view?.committed?.flags;
    return r.code === 200 && flags ? flags : `the agent answered HTTP ${r.code}`;
  } catch (e) {
    return `the agent is not answering on ${socket}: ${(e as Error).message}`;
  }
}

async function newHash(ctx: CommandContext, read: ReadPassword, stdin: boolean): Promise<string | null> {
  let pw: string;
  try {
    pw = await read(stdin ? "" : "password: ");
    if (!stdin && (await read("again: ")) !== pw) return ctx.io.err("bollard: users: the two passwords differ"), null;
  } catch (e) {
    return ctx.io.err(`bollard: users: cannot read the password: ${(e as Error).message}`), null;
  }
  const bad = passwordProblem(pw);
  if (bad) return ctx.io.err(`bollard: users: password: ${bad}`), null;
  return hashPassword(pw);
}

async function send(ctx: CommandContext, socket: string, cmd: Command, done: string): Promise<number> {
  try {
    const r = await controlRequest(socket, "POST", "/command", cmd, 15_000);
    const b = r.body as { status?: string; epoch?: number; error?: string };
    if (r.code === 200 && b.status === "ok") return ctx.io.out(`ok: ${done} (config epoch ${b.epoch})`), 0;
    return ctx.io.err(`bollard: users: refused: ${b.error ?? `HTTP ${r.code}`}`), 1;
  } catch (e) {
    return ctx.io.err(`bollard: users: the agent is not answering on ${socket}: ${(e as Error).message}`), 1;
  }
}

/** A password from the terminal without echo, or (prompt "") the first line of standard input. */
export function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!prompt || !stdin.isTTY) {
    return new Promise((resolve, reject) => {
      let buf = "";
      const done = () => (stdin.pause(), resolve(buf.split(/\r?\n/)[0] ?? ""));
      stdin.setEncoding("utf8");
      stdin.on("data", (d: string) => {
        buf += d;
        if (buf.includes("\n") || buf.length > 4096) (stdin.removeAllListeners("data"), done());
      });
      stdin.once("end", done);
      stdin.once("error", reject);
    });
  }
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    let pw = "";
    stdin.setRawMode(true);
    stdin.setEncoding("utf8");
    stdin.resume();
    const onData = (d: string) => {
      for (const ch of d) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off("data", onData);
          process.stderr.write("\n");
          return resolve(pw);
        }
        if (ch === "\u0003") process.exit(130);
        if (ch === "\u007f") pw = pw.slice(0, -1);
        else pw += ch;
      }
    };
    stdin.on("data", onData);
  });
}
