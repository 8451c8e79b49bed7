// The web console's local accounts (issue 24 item 2), held in the replicated cluster config so
// every node knows them: one flag per user in the register's flags (ha/flags.ts lists the
// others), committed through the leader like any other change:
//   user:<name>   "<role> <scrypt hash>"    role: viewer | operator | admin
// There is no default account and no default password: `bollard users add NAME --role admin`
// makes the first. The commands that change them are plain `apply` commands (bus/messages.ts),
// so the CLI and the web's admin page send the same thing.
import type { Command } from "../bus/messages.ts";
import { ROLES, isPasswordHash, type Role } from "./auth.ts";

export const USER_RE = /^[a-z][a-z0-9._-]{0,31}$/;
export const USER_TEXT = "a user name: a-z first, then a-z, 0-9, '.', '_' or '-', at most 32 characters";
const PREFIX = "user:";

export interface User {
  name: string;
  role: Role;
  hash: string;
}

/** The users in a config's flags; a malformed entry is left out (and named in `bad`). */
export function usersOf(flags: Record<string, string>): { users: Map<string, User>; bad: string[] } {
  const users = new Map<string, User>();
  const bad: string[] = [];
  for (const [k, v] of Object.entries(flags)) {
    if (!k.startsWith(PREFIX)) continue;
    const name = k.slice(PREFIX.length);
    const [role, hash, ...rest] = v.split(" ");
    if (!USER_RE.test(name) || !ROLES.includes(role as Role) || !hash || !isPasswordHash(hash) || rest.length) bad.push(name);
    else users.set(name, { name, role: role as Role, hash });
  }
  return { users, bad };
}

/** A text with every password hash in it replaced: the leader's "proposing" and "commit"
 *  events and log lines spell the flags out, hashes included. */
export const redactText = (t: string) => t.replace(/\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/]*\$?[A-Za-z0-9+/]*/g, "(hash hidden)");

/** The flags with every user's hash replaced: what is shown to anyone (the web's status). */
export function redactFlags(flags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(flags)) out[k] = k.startsWith(PREFIX) ? `${v.split(" ")[0]} (hash hidden)` : v;
  return out;
}

export const userFlag = (name: string) => `${PREFIX}${name}`;

/** The command that sets (adds, or changes the password or role of) a user. */
export function setUserCommand(name: string, role: Role, hash: string, by: string, what: "added" | "password changed" | "role changed"): Command {
  return { op: "apply", why: `user ${name} ${what} (${role}) by ${by}`.slice(0, 200), flags: { [userFlag(name)]: `${role} ${hash}` } };
}

export function removeUserCommand(name: string, by: string): Command {
  return { op: "apply", why: `user ${name} removed by ${by}`.slice(0, 200), flags: { [userFlag(name)]: null } };
}

/** Whether removing or demoting `name` would leave no admin: refused, or nobody could manage users from the web. */
export function lastAdmin(users: Map<string, User>, name: string, newRole: Role | null): boolean {
  const u = users.get(name);
  if (!u || u.role !== "admin" || newRole === "admin") return false;
  return [...users.values()].filter((x) => x.role === "admin").length === 1;
}
