// The VM console's WebSocket (agent/web/vm-console.ts behind agent/web/server.ts), two web
// servers on loopback standing for two nodes, with certificates of one cluster CA (pki.ts), a
// unix socket standing for QEMU's serial socket (the lab test drives the real QEMU): the upgrade
// answers 401 without a session, 403 to a viewer, 403 from another origin or without the CSRF
// token; an operator's console carries the log's tail and the bytes both ways; a VM on the other
// node is reached through it as the same user, its certificate checked against the CA, and never
// forwarded twice. Also: the VM actions build `bollard vm`'s command (ha/requests.ts), and the
// Redis lag the charts draw is in bytes (web/samples.ts).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { requests } from "../../agent/ha/requests.ts";
import { issueNodeCert, makeCa } from "../../agent/provision/pki.ts";
import { Api } from "../../agent/web/api.ts";
import { AuditLog, type AuditRecord } from "../../agent/web/audit.ts";
import { COOKIE, Lockout, Sessions, hashPassword, sessionKey, type Role } from "../../agent/web/auth.ts";
import type { LiveHub } from "../../agent/web/live.ts";
import { redisLagBytes } from "../../agent/web/samples.ts";
import { WebServer } from "../../agent/web/server.ts";
import type { User } from "../../agent/web/users.ts";
import { CONSOLE_PROTOCOL, HOP_HEADER, VmConsoles } from "../../agent/web/vm-console.ts";

const dir = mkdtempSync(join(tmpdir(), "bollard-web-console-"));
const ca = makeCa("lab");
const quiet = { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as never;
const ROLES: Role[] = ["viewer", "operator", "admin"];

interface NodeX { name: string; server: WebServer; port: number; audit: AuditRecord[]; sent: { method: string; path: string; body: unknown }[] }
const st = {} as { users: Map<string, User>; sessions: Sessions; nodes: Record<string, NodeX>; where: Record<string, string | null>; serial: Server; got: Buffer[]; conns: Socket[] };

async function node(name: string, cert: { cert: string; key: string }): Promise<NodeX> {
  const x = { name, audit: [], sent: [] } as unknown as NodeX;
  mkdirSync(join(dir, name), { recursive: true });
  const audit = new AuditLog(join(dir, name), name, () => undefined, quiet, () => Date.now());
  const request = async (method: string, path: string, body: unknown) => {
    x.sent.push({ method, path, body });
    if (path === "/vms") return { code: 200, body: { status: "ok", node: name, accel: "tcg", accelWhy: "", leader: true, facts: null, peers: { node1: {}, node2: {} }, catalog: { defs: [{ name: "con1" }, { name: "off1" }] }, committed: { epoch: 3, assignments: {}, flags: {} } } };
    return { code: 200, body: { status: "ok", epoch: 4 } };
  };
  const api = new Api({ request, users: () => st.users, audit, self: name, cluster: "lab", wall: () => Date.now() });
  const consoles = new VmConsoles({
    self: name,
    paths: (vm) => ({ serial: join(dir, name, vm, "serial.sock"), serialLog: join(dir, name, vm, "serial.log") }),
    placement: async (vm) => ({ known: vm in st.where, node: st.where[vm] ?? null }),
    peer: (n) => (st.nodes[n] ? `https://127.0.0.1:${st.nodes[n]!.port}` : null),
    ca: ca.cert,
    record: (c, what, result, detail) => void x.audit.push({ ts: "", node: name, user: c.user.name, role: c.user.role, from: c.from, what, result, ...(detail ? { detail } : {}) }),
    log: quiet,
  });
  const hub = { watching: 0, add: () => undefined, stop: () => undefined } as unknown as LiveHub;
  x.server = new WebServer({
    tls: cert, listen: [{ host: "127.0.0.1", port: 0 }], api, hub, assets: new Map(), sessions: st.sessions,
    lockout: new Lockout({ free: 3, baseMs: 1000, maxMs: 60_000, forgetMs: 3600_000, maxKeys: 100 }),
    users: () => st.users, members: () => ["node1", "node2"], log: quiet, wall: () => Date.now(),
    vmConsole: (req, socket, head, caller, csrf) => consoles.handle(req, socket, head, caller, csrf),
  });
  await x.server.start();
  x.port = x.server.addresses()[0]!.port;
  return x;
}

function session(role: Role): { cookie: string; csrf: string } {
  const u = st.users.get(role)!;
  const { token, session } = st.sessions.issue(u.name, u.hash, Date.now());
  return { cookie: token, csrf: st.sessions.csrf(session) };
}

type Opened = { ws: WebSocket; first: Promise<string> } | { code: number; body: string };

/** A WebSocket to `at`'s console of `vm`, as a browser on that page would open it (or not). */
function open(at: string, vm: string, o: { role?: Role; origin?: string; csrf?: string | null; headers?: Record<string, string>; caCert?: string } = {}): Promise<Opened> {
  const x = st.nodes[at]!;
  const s = o.role ? session(o.role) : null;
  const csrf = o.csrf === undefined ? s?.csrf : o.csrf;
  const ws = new WebSocket(`wss://127.0.0.1:${x.port}/api/vms/console?vm=${vm}`, [CONSOLE_PROTOCOL, ...(csrf ? [`csrf.${csrf}`] : [])], {
    ca: o.caCert ?? ca.cert, origin: o.origin ?? `https://127.0.0.1:${x.port}`, headers: { ...(s ? { cookie: `${COOKIE}=${s.cookie}` } : {}), ...o.headers },
  });
  return new Promise((resolve, reject) => {
    let text = "";
    const first = new Promise<string>((r) => ws.on("message", (d: Buffer) => { text += d.toString(); if (/ack 2\n/.test(text)) r(text); }));
    ws.once("open", () => resolve({ ws, first }));
    ws.once("unexpected-response", (_q, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ code: res.statusCode ?? 0, body }));
    });
    ws.once("error", reject);
  });
}

const Ws = suite("the VM console's WebSocket: who may open it, and where it leads");
Ws.before(async () => {
  st.users = new Map();
  for (const r of ROLES) st.users.set(r, { name: r, role: r, hash: await hashPassword(`${r} password!`, { ln: 10, r: 8, p: 1 }) });
  st.sessions = new Sessions(sessionKey(Buffer.from("join token"), "lab"), { maxMs: 3600_000, idleMs: 600_000 });
  st.where = { con1: "node2", off1: null };
  st.got = [];
  st.conns = [];
  // node2 runs con1: its serial socket and the log QEMU appends to
  mkdirSync(join(dir, "node2", "con1"), { recursive: true });
  writeFileSync(join(dir, "node2", "con1", "serial.log"), "bollard-guest: init\nack 1\n");
  st.serial = createServer((c) => {
    st.conns.push(c);
    c.on("data", (d) => st.got.push(d));
    c.write("ack 2\n");
  });
  await new Promise<void>((r) => st.serial.listen(join(dir, "node2", "con1", "serial.sock"), r));
  st.nodes = {};
  for (const n of ["node1", "node2"]) st.nodes[n] = await node(n, issueNodeCert(ca, { cluster: "lab", node: n, ips: ["127.0.0.1"] }));
});
Ws.after(async () => {
  for (const c of st.conns) c.destroy();
  st.serial.close();
  for (const x of Object.values(st.nodes)) await x.server.stop();
});

Ws("without a session the upgrade is refused 401; a viewer 403 (the console types into the guest)", async () => {
  const a = await open("node2", "con1");
  assert.ok("code" in a && a.code === 401, JSON.stringify(a));
  const v = await open("node2", "con1", { role: "viewer" });
  assert.ok("code" in v && v.code === 403 && /viewer/.test(v.body), JSON.stringify(v));
  assert.is(st.conns.length, 0, "nothing reached the serial socket");
});

Ws("another origin, or no CSRF token, or another session's, is refused 403 even for an admin", async () => {
  const before = st.nodes.node2!.server.stats.badOrigin;
  const o = await open("node2", "con1", { role: "admin", origin: "https://evil.example" });
  assert.ok("code" in o && o.code === 403 && /Origin/.test(o.body), JSON.stringify(o));
  assert.is(st.nodes.node2!.server.stats.badOrigin, before + 1);
  const c = await open("node2", "con1", { role: "admin", csrf: null });
  assert.ok("code" in c && c.code === 403 && /CSRF/.test(c.body), JSON.stringify(c));
  const w = await open("node2", "con1", { role: "admin", csrf: session("operator").csrf });
  assert.ok("code" in w && w.code === 403 && /CSRF/.test(w.body), JSON.stringify(w));
  const s = await open("node2", "con1", { role: "admin", headers: { "sec-fetch-site": "cross-site" } });
  assert.ok("code" in s && s.code === 403, JSON.stringify(s));
  assert.is(st.conns.length, 0);
});

Ws("an operator's console on the VM's node: the log's tail, then the guest's output; what is typed reaches the socket", async () => {
  const r = await open("node2", "con1", { role: "operator" });
  assert.ok("ws" in r, JSON.stringify(r));
  if (!("ws" in r)) return;
  assert.match(await r.first, /bollard-guest: init\nack 1\n[^]*ack 2\n/);
  r.ws.send(Buffer.from("ls\r"));
  for (let i = 0; i < 100 && !Buffer.concat(st.got).includes("ls\r"); i++) await new Promise((z) => setTimeout(z, 10));
  assert.is(Buffer.concat(st.got).toString(), "ls\r");
  assert.is(r.ws.protocol, CONSOLE_PROTOCOL);
  r.ws.close();
  assert.equal(st.nodes.node2!.audit.map((a) => [a.user, a.what, a.result]), [["operator", "vm console con1", "ok"]]);
  st.nodes.node2!.audit.length = 0;
});

Ws("a VM on another node: node1 opens node2's console as the same user; node2 checks its role again", async () => {
  st.got.length = 0;
  const r = await open("node1", "con1", { role: "admin" });
  assert.ok("ws" in r, JSON.stringify(r));
  if (!("ws" in r)) return;
  assert.match(await r.first, /ack 1\n[^]*ack 2\n/);
  r.ws.send(Buffer.from("x"));
  for (let i = 0; i < 100 && !st.got.length; i++) await new Promise((z) => setTimeout(z, 10));
  assert.is(Buffer.concat(st.got).toString(), "x");
  r.ws.close();
  assert.match(st.nodes.node1!.audit[0]!.detail ?? "", /on node2, through node1/);
  assert.is(st.nodes.node2!.audit[0]!.user, "admin", "node2 saw the browser's user");
  assert.is(st.nodes.node2!.audit[0]!.from, "127.0.0.1");
});

Ws("forwarded at most once; a VM not placed 409, unknown 404; a peer whose certificate is not the CA's is not trusted", async () => {
  const hop = await open("node1", "con1", { role: "admin", headers: { [HOP_HEADER]: "node2" } });
  assert.ok("code" in hop && hop.code === 409 && /runs on node2/.test(hop.body), JSON.stringify(hop));
  const off = await open("node2", "off1", { role: "admin" });
  assert.ok("code" in off && off.code === 409, JSON.stringify(off));
  const unknown = await open("node2", "nope", { role: "admin" });
  assert.ok("code" in unknown && unknown.code === 404, JSON.stringify(unknown));
  // node3 answers with a certificate of another CA: node1 refuses to carry the console there
  const other = makeCa("other");
  st.nodes.node3 = await node("node3", issueNodeCert(other, { cluster: "lab", node: "node3", ips: ["127.0.0.1"] }));
  st.where.con1 = "node3";
  const bad = await open("node1", "con1", { role: "admin" });
  st.where.con1 = "node2";
  assert.ok("code" in bad && bad.code === 502 && /node3/.test(bad.body), JSON.stringify(bad));
});

Ws.run();

const Vm = suite("VM actions and the Redis lag");

Vm("the web's VM actions send the command `bollard vm` sends (requests.vm), audited; bad input is refused before", async () => {
  const x = st.nodes.node1!;
  x.sent.length = 0;
  const api = (x.server as unknown as { d: { api: Api } }).d.api;
  const c = { user: st.users.get("operator")!, session: {} as never, from: "198.18.0.100" };
  const r = await api.vmAction(c, { vm: "con1", action: "migrate", node: "node2" });
  assert.is(r.code, 200);
  const cmd = x.sent.find((s) => s.path === "/command")!.body as { flags: Record<string, string | null> };
  const flagsOf = (c: ReturnType<typeof requests.vm>) => (c as { flags: Record<string, string | null> }).flags;
  assert.equal(cmd.flags, flagsOf(requests.vm("migrate", "con1", 0, "node2")));
  assert.equal(flagsOf(requests.vm("stop", "con1", 0)), { "vm-stop:con1": "operator" });
  assert.equal(flagsOf(requests.vm("start", "con1", 5)), { "vm-stop:con1": null, "vm-start:con1": "5", "vm-hold:con1": null });
  for (const bad of [{ vm: "con1", action: "explode" }, { vm: "<script>", action: "stop" }, { vm: "nope", action: "stop" }, { vm: "con1", action: "stop", node: "node2" }]) {
    const n = x.sent.length;
    const b = await api.vmAction(c, bad);
    assert.ok(b.code >= 400, JSON.stringify(bad));
    assert.not.ok(x.sent.slice(n).some((s) => s.path === "/command"), `nothing sent for ${JSON.stringify(bad)}`);
  }
});

Vm("Redis lag: the primary's reported offset less the replica's, in bytes; null when not comparable", () => {
  assert.is(redisLagBytes({ role: "replica", received: "1000", source: "node1" }, { received: "1500" }), 500);
  assert.is(redisLagBytes({ role: "replica", received: "1500", source: "node1" }, { received: "1400" }), 0, "an older report");
  assert.is(redisLagBytes({ role: "primary", received: "1500", source: null }, { received: "1500" }), null);
  assert.is(redisLagBytes({ role: "replica", received: "aof:3:17", source: null }, { received: "1500" }), null);
  assert.is(redisLagBytes({ role: "replica", received: "10", source: "node1" }, null), null);
});

Vm.after(() => rmSync(dir, { recursive: true, force: true }));
Vm.run();
