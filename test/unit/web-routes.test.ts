// The web console's HTTPS server (agent/web/server.ts) on loopback, its agent a fake control
// socket: every API route of the table (routes.ts) answers 401 without a session and 403 to
// each role below the one it needs; every POST wants the session's CSRF token and our own
// Origin; the login locks out after repeated failures; an expired session is refused; an
// action goes through the CLI's own command builder; the page's assets are served hashed,
// gzipped and under the issue's 400 kB; the live stream starts and stops its hub's timer.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { requests } from "../../agent/ha/requests.ts";
import { Api } from "../../agent/web/api.ts";
import { loadAssets, type AssetTable } from "../../agent/web/assets.ts";
import { AuditLog } from "../../agent/web/audit.ts";
import { COOKIE, Lockout, Sessions, hashPassword, sessionKey, type Role } from "../../agent/web/auth.ts";
import type { LiveHub } from "../../agent/web/live.ts";
import { ROUTES } from "../../agent/web/routes.ts";
import { WebServer } from "../../agent/web/server.ts";
import type { User } from "../../agent/web/users.ts";

const FAST = { ln: 10, r: 8, p: 1 };
const dir = mkdtempSync(join(tmpdir(), "bollard-web-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
  "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });

interface Ctx {
  server: WebServer;
  port: number;
  now: number;
  sent: { method: string; path: string; body: unknown }[];
  users: Map<string, User>;
  sessions: Sessions;
  hubAdds: number;
  assets: AssetTable;
}

const ctx = {} as Ctx;
const ROLES: Role[] = ["viewer", "operator", "admin"];

async function setup() {
  ctx.now = 1_700_000_000_000;
  ctx.sent = [];
  ctx.users = new Map();
  for (const r of ROLES) ctx.users.set(r, { name: r, role: r, hash: await hashPassword(`${r} password!`, FAST) });
  ctx.sessions = new Sessions(sessionKey(Buffer.from("join token"), "lab"), { maxMs: 3600_000, idleMs: 600_000 });
  const audit = new AuditLog(dir, "node1", () => undefined, { error: () => undefined } as never, () => ctx.now);
  const api = new Api({
    request: async (method, path, body) => {
      ctx.sent.push({ method, path, body });
      return { code: 200, body: { status: "ok", epoch: 7 } };
    },
    users: () => ctx.users, audit, self: "node1", cluster: "lab", wall: () => ctx.now,
  });
  ctx.hubAdds = 0;
  const hub = { watching: 0, add: (res: { writeHead(c: number, h: object): void; end(s: string): void }) => (ctx.hubAdds++, res.writeHead(200, { "content-type": "text/event-stream" }), res.end(": hi\n\n")), stop: () => undefined } as unknown as LiveHub;
  ctx.assets = new Map([["/index.html", { type: "text/html", gz: Buffer.alloc(0), raw: () => Buffer.from("<p>hi</p>"), etag: '"x"', immutable: false }]]);
  ctx.server = new WebServer({
    tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
    listen: [{ host: "127.0.0.1", port: 0 }], api, hub, assets: ctx.assets, sessions: ctx.sessions, lockout: new Lockout({ free: 3, baseMs: 1000, maxMs: 60_000, forgetMs: 3600_000, maxKeys: 100 }),
    users: () => ctx.users, members: () => ["node1"], log: { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as never, wall: () => ctx.now,
  });
  await ctx.server.start();
  ctx.port = ctx.server.addresses()[0]!.port;
}

function call(method: string, path: string, o: { cookie?: string; csrf?: string; body?: unknown; origin?: string } = {}): Promise<{ code: number; body: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = request({
      host: "127.0.0.1", port: ctx.port, method, path, rejectUnauthorized: false,
      headers: {
        host: `127.0.0.1:${ctx.port}`,
        ...(o.cookie ? { cookie: `${COOKIE}=${o.cookie}` } : {}), ...(o.csrf ? { "x-csrf-token": o.csrf } : {}), ...(o.origin ? { origin: o.origin } : {}),
        ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ code: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** A session of `role`, as the login makes it. */
function session(role: Role): { cookie: string; csrf: string } {
  const u = ctx.users.get(role)!;
  const { token, session } = ctx.sessions.issue(u.name, u.hash, ctx.now);
  return { cookie: token, csrf: ctx.sessions.csrf(session) };
}

const Routes = suite("every API route: its role, and 401 without a session");
Routes.before(setup);
Routes.after(() => ctx.server.stop());

Routes("without a session every route but the login answers 401", async () => {
  for (const r of ROUTES.filter((x) => x.role !== null)) {
    const res = await call(r.method, r.path, r.method === "POST" ? { body: {} } : {});
    assert.is(res.code, 401, `${r.method} ${r.path}: ${JSON.stringify(res.body)}`);
  }
});

Routes("a role below the route's answers 403, the route's own role gets past the check", async () => {
  let checked = 0;
  for (const r of ROUTES.filter((x) => x.role !== null)) {
    for (const role of ROLES) {
      const s = session(role);
      const res = await call(r.method, r.path, r.method === "POST" ? { ...s, body: {} } : s);
      const below = ROLES.indexOf(role) < ROLES.indexOf(r.role!);
      if (below) assert.is(res.code, 403, `${role} on ${r.method} ${r.path}: ${JSON.stringify(res.body)}`);
      else assert.is.not(res.code, 403, `${role} on ${r.method} ${r.path}: ${JSON.stringify(res.body)}`);
      if (!below) assert.is.not(res.code, 401, `${role} on ${r.method} ${r.path}`);
      checked++;
    }
  }
  assert.is(checked, ROUTES.filter((x) => x.role !== null).length * 3);
});

Routes("an unknown API path is 404, not a leak of anything", async () => {
  assert.is((await call("GET", "/api/nothing")).code, 404);
  assert.is((await call("GET", "/nothing.js")).code, 404);
});

const Csrf = suite("CSRF and Origin on every POST");
Csrf.before(setup);
Csrf.after(() => ctx.server.stop());

Csrf("a POST without the CSRF token, or with another session's, is refused 403 and sends nothing", async () => {
  const s = session("operator");
  const other = session("operator");
  for (const r of ROUTES.filter((x) => x.method === "POST" && x.role !== null && x.role !== "admin")) {
    ctx.sent = [];
    assert.is((await call("POST", r.path, { cookie: s.cookie, body: { action: "ha-arm" } })).code, 403, r.path);
    assert.is((await call("POST", r.path, { cookie: s.cookie, csrf: other.csrf, body: { action: "ha-arm" } })).code, 403, r.path);
    assert.is(ctx.sent.filter((x) => x.path !== "/status").length, 0, `${r.path}: nothing reached the agent`);
  }
});

Csrf("a POST from another origin is refused even with the token", async () => {
  const s = session("operator");
  const r = await call("POST", "/api/action", { ...s, origin: "https://evil.example", body: { action: "ha-arm" } });
  assert.is(r.code, 403);
  assert.match(r.body.error, /Origin/);
});

Csrf("with the token an operator's switchover sends the CLI's very command, and the audit log has it", async () => {
  const s = session("operator");
  ctx.sent = [];
  const r = await call("POST", "/api/action", { ...s, origin: `https://127.0.0.1:${ctx.port}`, body: { action: "switchover", svc: "mysql", to: "node2" } });
  assert.is(r.code, 200, JSON.stringify(r.body));
  const cmd = ctx.sent.find((x) => x.path === "/command")!.body as { flags: unknown; op: string };
  assert.equal(cmd.flags, (requests.switchover("mysql", "node2") as { flags: unknown }).flags);
  assert.is(cmd.op, "apply");
  const audit = readFileSync(join(dir, "audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const last = audit.at(-1);
  assert.is(last.user, "operator");
  assert.is(last.what, "switchover mysql to node2");
  assert.is(last.result, "ok");
  assert.is(last.from, "127.0.0.1");
});

const Login = suite("login, lockout, expiry");
Login.before(setup);
Login.after(() => ctx.server.stop());

Login("a right password gets a Secure HttpOnly SameSite=Strict cookie and the CSRF token", async () => {
  const r = await call("POST", "/api/login", { body: { user: "viewer", password: "viewer password!" } });
  assert.is(r.code, 200, JSON.stringify(r.body));
  const c = String(r.headers["set-cookie"]);
  assert.match(c, /__Host-bollard=/);
  for (const a of ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"]) assert.ok(c.includes(a), `${a} in ${c}`);
  assert.is(r.body.role, "viewer");
  assert.is(r.body.csrf.length, 43);
});

Login("3 failures are free; the 4th locks the user out (429) even with the right password, until the back-off passes", async () => {
  for (let i = 0; i < 4; i++) assert.is((await call("POST", "/api/login", { body: { user: "admin", password: "wrong password" } })).code, 401);
  const locked = await call("POST", "/api/login", { body: { user: "admin", password: "admin password!" } });
  assert.is(locked.code, 429);
  assert.ok(Number(locked.headers["retry-after"]) >= 1);
  ctx.now += 120_000;
  assert.is((await call("POST", "/api/login", { body: { user: "admin", password: "admin password!" } })).code, 200);
});

Login("an unknown user is refused like a wrong password", async () => {
  const r = await call("POST", "/api/login", { body: { user: "nobody", password: "whatever it is" } });
  assert.is(r.code, 401);
  assert.is(r.body.error, "wrong user or password");
});

Login("a session past its idle time, or its end, is refused 401 and its cookie cleared", async () => {
  const s = session("viewer");
  assert.is((await call("GET", "/api/me", s)).code, 200);
  ctx.now += 600_000;
  const idle = await call("GET", "/api/me", s);
  assert.is(idle.code, 401);
  assert.match(idle.body.error, /idle/);
  assert.match(String(idle.headers["set-cookie"]), /Max-Age=0/);
  const t = session("viewer");
  for (let i = 0; i < 7; i++) {
    ctx.now += 500_000;
    await call("GET", "/api/me", t);
  }
  const end = await call("GET", "/api/me", t);
  assert.is(end.code, 401);
});

Login("a logged-out session is refused", async () => {
  const s = session("viewer");
  assert.is((await call("POST", "/api/logout", { ...s, body: {} })).code, 200);
  assert.is((await call("GET", "/api/me", s)).code, 401);
});

const Assets = suite("the page and its assets");
Assets.before(setup);
Assets.after(() => ctx.server.stop());

Assets("the front end builds with esbuild to hashed, immutable files under 400 kB gzipped in all", async () => {
  const t = await loadAssets();
  const total = [...t.values()].reduce((n, a) => n + a.gz.length, 0);
  assert.ok(total < 400 * 1024, `${total} bytes gzipped`);
  const names = [...t.keys()];
  assert.ok(names.some((n) => /^\/assets\/app-[A-Z0-9]+\.js$/.test(n)), names.join(" "));
  for (const [n, a] of t) assert.is(a.immutable, n !== "/index.html", n);
  const html = t.get("/index.html")!.raw().toString();
  for (const n of names.filter((x) => x.startsWith("/assets/"))) assert.ok(html.includes(n), `${n} in the page`);
  console.log(`  web assets: ${names.length} files, ${(total / 1024).toFixed(1)} kB gzipped`);
});

Assets("the page is served with the security headers; the live stream is open to a viewer", async () => {
  const r = await call("GET", "/");
  assert.is(r.code, 200);
  assert.match(String(r.headers["content-security-policy"]), /script-src 'self'/);
  assert.is(r.headers["x-frame-options"], "DENY");
  const s = session("viewer");
  const live = await call("GET", "/api/live", s);
  assert.is(live.code, 200);
  assert.is(ctx.hubAdds, 1);
});

Routes.run();
Csrf.run();
Login.run();
Assets.run();
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
