// The web console's API handlers (routes.ts lists them with their roles). Facts are read and
// actions taken through the agent's control socket, as the CLI and the serial console do
// (runtime/control.ts: GET /status, /logs, /events, /alarms, /samples, /vms; POST /command,
// /alarms/ack): one code path whichever surface shows a fact or asks for an action. Actions
// build their commands with the CLI's own builders (ha/requests.ts, web/users.ts).
import type { Command } from "../bus/messages.ts";
import { NAME_RE } from "../config/schema.ts";
import type { Request } from "../console/source.ts";
import { VM_OPS, requests, type VmOp } from "../ha/requests.ts";
import { vmRows, type VmSnapshot } from "../console/screens-vms.ts";
import type { AlarmRow } from "../console/model.ts";
import type { AuditLog, AuditRecord } from "./audit.ts";
import { DUMMY_HASH, ROLES, hashPassword, passwordProblem, verifyPassword, type Role, type Session } from "./auth.ts";
import { USER_RE, USER_TEXT, lastAdmin, redactText, removeUserCommand, setUserCommand, type User } from "./users.ts";

export interface Caller {
  user: User;
  session: Session;
  from: string;
}

export type ApiReply = { code: number; body: unknown; headers?: Record<string, string> };

export interface ApiDeps {
  request: Request;
  users(): Map<string, User>;
  audit: AuditLog;
  self: string;
  cluster: string;
  wall(): number;
}

const bad = (error: string, code = 400): ApiReply => ({ code, body: { status: "error", error } });
const str = (v: unknown, max = 200): v is string => typeof v === "string" && v.length > 0 && v.length <= max;
const SVC = ["mysql", "redis"] as const;
type Svc = (typeof SVC)[number];

/** Query parameters passed on to the control socket, each checked. */
function passQuery(q: URLSearchParams, allowed: Record<string, RegExp>): URLSearchParams | string {
  const out = new URLSearchParams();
  for (const [k, v] of q) {
    const re = allowed[k];
    if (!re) return `${k}: not a parameter of this route (${Object.keys(allowed).join(", ")})`;
    if (!re.test(v)) return `${k}: ${JSON.stringify(v.slice(0, 40))} is not valid`;
    out.set(k, v);
  }
  return out;
}

const NODE_Q = /^[a-z][a-z0-9-]{0,30}$/;
const N_Q = /^[0-9]{1,4}$/;

const isSnapshot = (s: VmSnapshot | null): boolean =>
  !!s && Array.isArray(s.catalog?.defs) && typeof s.committed?.assignments === "object" && typeof s.committed?.flags === "object" && typeof s.peers === "object";

export class Api {
  constructor(private readonly d: ApiDeps) {}

  private async control(method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 6000): Promise<ApiReply> {
    try {
      const r = await this.d.request(method, path, body, timeoutMs);
      return { code: r.code, body: r.body };
    } catch (e) {
      return bad(`the agent did not answer: ${(e as Error).message}`, 504);
    }
  }

  private record(c: Caller, what: string, r: ApiReply, detail?: string): AuditRecord {
    const b = r.body as { status?: string; error?: string; epoch?: number };
    const ok = r.code === 200 && b?.status === "ok";
    return this.d.audit.record({
      user: c.user.name, role: c.user.role, from: c.from, what, result: ok ? "ok" : r.code === 504 ? "failed" : "refused",
      detail: detail ?? (ok ? (b.epoch !== undefined ? `committed in epoch ${b.epoch}` : undefined) : b?.error?.slice(0, 300)),
    });
  }

  recordLogin(user: string, role: string | null, from: string, result: AuditRecord["result"], detail?: string): void {
    this.d.audit.record({ user, role, from, what: "login", result, ...(detail ? { detail } : {}) });
  }

  recordLogout(c: Caller): void {
    this.d.audit.record({ user: c.user.name, role: c.user.role, from: c.from, what: "logout", result: "ok" });
  }

  // ---- reads --------------------------------------------------------------------------

  me(c: Caller, csrf: string): ApiReply {
    return { code: 200, body: { status: "ok", user: c.user.name, role: c.user.role, csrf, node: this.d.self, cluster: this.d.cluster, expires: c.session.exp } };
  }

  async pass(path: string, q: URLSearchParams, allowed: Record<string, RegExp>): Promise<ApiReply> {
    const p = passQuery(q, allowed);
    if (typeof p === "string") return bad(p);
    const s = p.toString();
    const r = await this.control("GET", s ? `${path}?${s}` : path);
    // log lines and events spell out config changes, users' hashes included
    return { ...r, body: JSON.parse(redactText(JSON.stringify(r.body))) as unknown };
  }

  logs = (q: URLSearchParams) => this.pass("/logs", q, { node: NODE_Q, level: /^(debug|info|warn|error)$/, since: /^[0-9TZ:.+-]{10,40}$/, n: N_Q });
  events = (q: URLSearchParams) => this.pass("/events", q, { node: NODE_Q, n: N_Q, since: /^[0-9TZ:.+-]{10,40}$/ });
  alarms = (q: URLSearchParams) => this.pass("/alarms", q, { all: /^1$/ });
  samples = (q: URLSearchParams) => this.pass("/samples", q, { node: NODE_Q });
  /** The VMs as `bollard vm list` shows them (console/screens-vms.ts vmRows), with this node's snapshot. */
  async vms(q: URLSearchParams): Promise<ApiReply> {
    if ([...q.keys()].length) return bad("this route takes no parameters");
    const r = await this.control("GET", "/vms");
    if (r.code !== 200) return r;
    const a = await this.control("GET", "/alarms");
    const alarms = a.code === 200 ? ((a.body as { active?: AlarmRow[] }).active ?? []) : [];
    const s = r.body as VmSnapshot;
    if (!isSnapshot(s)) return bad("GET /vms: not a VM snapshot", 502);
    return { code: 200, body: { status: "ok", node: s.node, accel: s.accel, accelWhy: s.accelWhy, vms: vmRows(s, alarms) } };
  }

  /** This node's audit records and every other member's (their "audit" events, over the bus). */
  async audit(members: string[], stats: unknown): Promise<ApiReply> {
    const rows: Record<string, unknown>[] = this.d.audit.recent(500).map((r) => ({ ...r }));
    const errors: string[] = [];
    for (const n of members.filter((m) => m !== this.d.self)) {
      const r = await this.control("GET", `/events?node=${encodeURIComponent(n)}&n=2000`);
      const evs = (r.body as { events?: { ts: string; kind: string; node: string; fields?: Record<string, unknown>; detail: string }[] }).events;
      if (r.code !== 200 || !Array.isArray(evs)) {
        errors.push(`${n}: ${(r.body as { error?: string }).error ?? `HTTP ${r.code}`}`);
        continue;
      }
      for (const e of evs.filter((x) => x.kind === "audit")) rows.push({ ts: e.ts, node: e.node, ...(e.fields ?? {}), detail: redactText(e.detail) });
    }
    rows.sort((a, b) => (String(a.ts) < String(b.ts) ? 1 : -1));
    return { code: 200, body: { status: "ok", records: rows.slice(0, 1000), errors, stats } };
  }

  usersList(): ApiReply {
    const users = [...this.d.users().values()].map((u) => ({ name: u.name, role: u.role })).sort((a, b) => a.name.localeCompare(b.name));
    return { code: 200, body: { status: "ok", users } };
  }

  // ---- login ----------------------------------------------------------------------------

  /** The user, if `password` is theirs. An unknown user costs the same scrypt as a known one. */
  async checkLogin(user: string, password: string): Promise<User | null> {
    const u = this.d.users().get(user) ?? null;
    const ok = await verifyPassword(password, u?.hash ?? DUMMY_HASH);
    return ok && u ? u : null;
  }

  // ---- actions ----------------------------------------------------------------------------

  async action(c: Caller, raw: unknown): Promise<ApiReply> {
    const b = (raw ?? {}) as { action?: unknown; svc?: unknown; node?: unknown; to?: unknown };
    const who = `${c.user.name} (web, ${c.from})`;
    const svc = (): Svc | null => (SVC.includes(b.svc as Svc) ? (b.svc as Svc) : null);
    const node = (v: unknown): string | null => (typeof v === "string" && NAME_RE.test(v) ? v : null);
    let cmd: Command;
    let what: string;
    switch (b.action) {
      case "switchover": {
        const s = svc();
        const to = b.to === undefined || b.to === null ? null : node(b.to);
        if (!s) return bad("svc: expected mysql or redis");
        if (b.to !== undefined && b.to !== null && !to) return bad("to: expected a node name");
        cmd = requests.switchover(s, to, `switchover of ${s}${to ? ` to ${to}` : ""} by ${who}`);
        what = `switchover ${s}${to ? ` to ${to}` : ""}`;
        break;
      }
      case "maintenance": {
        const n = node(b.node);
        if (!n || typeof (b as { on?: unknown }).on !== "boolean") return bad("expected {action: maintenance, node, on: true|false}");
        const on = (b as { on: boolean }).on;
        cmd = requests.maintenance(n, on, `maintenance ${on ? "on" : "off"} for ${n} by ${who}`);
        what = `maintenance ${n} ${on ? "on" : "off"}`;
        break;
      }
      case "ha-disarm":
        cmd = requests.disarm(`HA disarmed by ${who}`);
        what = "ha disarm";
        break;
      case "ha-arm":
        cmd = requests.arm(`HA armed by ${who}`);
        what = "ha arm";
        break;
      case "ha-ack": {
        const s = svc();
        if (!s) return bad("svc: expected mysql or redis");
        cmd = requests.ack(s, this.d.wall(), `failover of ${s} acknowledged by ${who}`);
        what = `ha ack ${s}`;
        break;
      }
      case "rejoin": {
        const n = node(b.node);
        if (!n) return bad("node: expected a node name");
        cmd = requests.rejoin(n, `rejoin of ${n} asked by ${who}`);
        what = `rejoin ${n}`;
        break;
      }
      default:
        return bad("action: expected switchover, maintenance, ha-disarm, ha-arm, ha-ack or rejoin");
    }
    const r = await this.control("POST", "/command", cmd, 15_000);
    this.record(c, what, r);
    return r;
  }

  async ackAlarm(c: Caller, raw: unknown): Promise<ApiReply> {
    const id = (raw as { id?: unknown } | null)?.id;
    if (!str(id, 128)) return bad("id: expected an alarm id");
    const r = await this.control("POST", "/alarms/ack", { id, who: `${c.user.name} (web)`.slice(0, 100) });
    this.record(c, `alarm ack ${id}`, r);
    return r;
  }

  /** start, stop, restart, migrate: the very command `bollard vm` sends (ha/requests.ts). */
  async vmAction(c: Caller, raw: unknown): Promise<ApiReply> {
    const b = (raw ?? {}) as { vm?: unknown; action?: unknown; node?: unknown };
    if (!str(b.vm, 64) || !NAME_RE.test(b.vm)) return bad("vm: expected a VM name");
    if (!VM_OPS.includes(b.action as VmOp)) return bad(`action: expected ${VM_OPS.join(", ")}`);
    const op = b.action as VmOp;
    if (b.node !== undefined && b.node !== null && (op !== "migrate" || typeof b.node !== "string" || !NAME_RE.test(b.node))) return bad(op !== "migrate" ? "node: goes with migrate" : "node: expected a node name");
    const snap = await this.control("GET", "/vms");
    if (snap.code !== 200) return snap.code === 404 ? bad("this cluster runs no VMs (no vms: section)", 404) : snap;
    const s = snap.body as VmSnapshot;
    if (!isSnapshot(s)) return bad("GET /vms: not a VM snapshot", 502);
    if (!s.catalog.defs.some((d) => d.name === b.vm)) return bad(`no VM ${b.vm}`, 404);
    const to = typeof b.node === "string" ? b.node : null;
    if (to && !(to in s.peers) && to !== s.node) return bad(`node: ${to} is not a member`);
    const r = await this.control("POST", "/command", requests.vm(op, b.vm, this.d.wall(), to, `vm ${op} ${b.vm}${to ? ` to ${to}` : ""} by ${c.user.name} (web, ${c.from})`), 15_000);
    this.record(c, `vm ${op} ${b.vm}${to ? ` to ${to}` : ""}`, r);
    return r;
  }

  async users(c: Caller, raw: unknown): Promise<ApiReply> {
    const b = (raw ?? {}) as { op?: unknown; name?: unknown; role?: unknown; password?: unknown };
    if (typeof b.name !== "string" || !USER_RE.test(b.name)) return bad(`name: expected ${USER_TEXT}`);
    const name = b.name;
    const role = ROLES.includes(b.role as Role) ? (b.role as Role) : null;
    const all = this.d.users();
    const u = all.get(name);
    const by = `${c.user.name} (web, ${c.from})`;
    const newHash = async (): Promise<string | ApiReply> => {
      if (typeof b.password !== "string") return bad("password: expected a string");
      const p = passwordProblem(b.password);
      return p ? bad(`password: ${p}`) : hashPassword(b.password);
    };
    let cmd: Command;
    switch (b.op) {
      case "add": {
        if (!role) return bad("role: expected viewer, operator or admin");
        if (u) return bad(`${name} exists`, 409);
        const h = await newHash();
        if (typeof h !== "string") return h;
        cmd = setUserCommand(name, role, h, by, "added");
        break;
      }
      case "passwd": {
        if (!u) return bad(`no user ${name}`, 404);
        const h = await newHash();
        if (typeof h !== "string") return h;
        cmd = setUserCommand(name, u.role, h, by, "password changed");
        break;
      }
      case "role":
        if (!u) return bad(`no user ${name}`, 404);
        if (!role) return bad("role: expected viewer, operator or admin");
        if (lastAdmin(all, name, role)) return bad(`${name} is the last admin: make another admin first`, 409);
        cmd = setUserCommand(name, role, u.hash, by, "role changed");
        break;
      case "remove":
        if (!u) return bad(`no user ${name}`, 404);
        if (lastAdmin(all, name, null)) return bad(`${name} is the last admin: make another admin first`, 409);
        cmd = removeUserCommand(name, by);
        break;
      default:
        return bad("op: expected add, passwd, role or remove");
    }
    const r = await this.control("POST", "/command", cmd, 15_000);
    this.record(c, `user ${b.op} ${name}${b.op === "role" || b.op === "add" ? ` (${role})` : ""}`, r);
    return r;
  }
}
