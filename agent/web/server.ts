// The web console's HTTPS server (issue 24): the page and its hashed assets, the API
// (routes.ts, api.ts) behind the session cookie, the role and the CSRF token, and the live
// stream (live.ts). Every request is answered whatever it holds: a malformed body, a bad
// cookie or a wrong token gets a clear error, is counted, and never reaches a handler.
//
// Idle cost: Node's HTTP server checks its connections' header and request timeouts with a
// timer that runs as long as it listens (30 s); that check is pushed out of reach and each
// connection gets an idle timeout of its own instead, a timer that exists only while the
// connection does. With nobody connected the server has no timer at all.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../env/env.ts";
import type { Api, ApiReply, Caller } from "./api.ts";
import type { AssetTable } from "./assets.ts";
import { allows, clearCookie, cookieToken, sessionCookie, type Lockout, type Sessions } from "./auth.ts";
import type { LiveHub } from "./live.ts";
import { routeOf } from "./routes.ts";
import type { User } from "./users.ts";

const MAX_BODY = 16 * 1024;
const IDLE_MS = 30_000;
/** the largest setInterval delay (2^31 - 1 ms): Node's connection checker, out of the way */
const NEVER_MS = 2 ** 31 - 1;
const MAX_LOGINS_WAITING = 8;

export const SECURITY_HEADERS: Record<string, string> = {
  // scripts only from here; xterm and uPlot set style attributes and a <style> of their own
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

export interface WebStats {
  requests: number;
  /** answers by HTTP code >= 400 */
  rejected: Record<string, number>;
  badSession: number;
  badCsrf: number;
  badOrigin: number;
  badBody: number;
  loginFailed: number;
  loginLocked: number;
  streams: number;
  /** VM consoles opened (WebSocket upgrades past every check) */
  consoles: number;
}

export interface WebServerDeps {
  tls: { cert: string; key: string };
  listen: { host: string; port: number }[];
  api: Api;
  hub: LiveHub;
  assets: AssetTable;
  sessions: Sessions;
  lockout: Lockout;
  users(): Map<string, User>;
  members(): string[];
  log: Logger;
  wall(): number;
  /** the VM console's WebSocket (vm-console.ts), when the agent runs VMs */
  vmConsole?(req: IncomingMessage, socket: Duplex, head: Buffer, caller: Caller, csrf: string): Promise<void>;
}

class BodyError extends Error {
  constructor(readonly code: number, msg: string) {
    super(msg);
  }
}

export class WebServer {
  readonly stats: WebStats = { requests: 0, rejected: {}, badSession: 0, badCsrf: 0, badOrigin: 0, badBody: 0, loginFailed: 0, loginLocked: 0, streams: 0, consoles: 0 };
  private servers: Server[] = [];
  private loginQueue: Promise<unknown> = Promise.resolve();
  private loginsWaiting = 0;
  private lastBadLog = -Infinity;

  constructor(private readonly d: WebServerDeps) {}

  /** The addresses actually bound (port 0 gets one). */
  addresses(): { host: string; port: number }[] {
    return this.servers.map((s) => {
      const a = s.address();
      return typeof a === "object" && a ? { host: a.address, port: a.port } : { host: "", port: 0 };
    });
  }

  async start(): Promise<void> {
    for (const l of this.d.listen) {
      const s = createServer({ cert: this.d.tls.cert, key: this.d.tls.key, connectionsCheckingInterval: NEVER_MS, requestTimeout: 0, headersTimeout: 0 } as object);
      s.timeout = IDLE_MS;
      s.maxConnections = 128;
      s.on("request", (req, res) => void this.handle(req, res));
      s.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
      s.on("tlsClientError", () => undefined); // a port scan or a browser refusing the certificate
      s.on("clientError", (_e, socket) => socket.destroy());
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(l.port, l.host, () => (s.off("error", reject), resolve()));
      });
      s.on("error", (e) => this.d.log.error("web server error", { err: e }));
      this.servers.push(s);
    }
  }

  async stop(): Promise<void> {
    this.d.hub.stop();
    await Promise.all(
      this.servers.map((s) => {
        const closed = new Promise<void>((r) => s.close(() => r()));
        s.closeAllConnections();
        return closed;
      }),
    );
    this.servers = [];
  }

  private count(code: number, req: IncomingMessage): void {
    if (code < 400) return;
    this.stats.rejected[code] = (this.stats.rejected[code] ?? 0) + 1;
    const now = this.d.wall();
    if (now - this.lastBadLog < 60_000) return;
    this.lastBadLog = now;
    this.d.log.warn(`web request answered ${code}`, { method: req.method, path: (req.url ?? "").slice(0, 120), rejected: this.stats.rejected });
  }

  private reply(req: IncomingMessage, res: ServerResponse, r: ApiReply): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(r.body) ?? "null";
    this.count(r.code, req);
    res.writeHead(r.code, { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(text), ...r.headers });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "https://web");
      } catch {
        return this.reply(req, res, { code: 400, body: { status: "error", error: "request target: expected a path" } });
      }
      if (url.pathname.startsWith("/api/")) return await this.api(req, res, url);
      if (req.method !== "GET" && req.method !== "HEAD") return this.reply(req, res, { code: 405, body: { status: "error", error: "only GET here" } });
      const a = this.d.assets.get(url.pathname === "/" ? "/index.html" : url.pathname);
      if (!a) return this.reply(req, res, { code: 404, body: { status: "error", error: `no page ${url.pathname.slice(0, 100)}` } });
      const gz = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
      const body = gz ? a.gz : a.raw();
      res.writeHead(200, {
        ...SECURITY_HEADERS, "content-type": a.type, "content-length": body.length, etag: a.etag, vary: "accept-encoding",
        "cache-control": a.immutable ? "public, max-age=31536000, immutable" : "no-cache", ...(gz ? { "content-encoding": "gzip" } : {}),
      });
      res.end(req.method === "HEAD" ? undefined : body);
    } catch (e) {
      this.d.log.error("web request failed", { path: (req.url ?? "").slice(0, 120), err: e as Error });
      this.reply(req, res, { code: 500, body: { status: "error", error: (e as Error)?.message ?? String(e) } });
    }
  }

  /** The caller of a request, or why not: 401 (no or bad session), 403 (role). */
  private authenticate(req: IncomingMessage, need: User["role"]): { caller: Caller; renew: string | null } | ApiReply {
    const token = cookieToken(req.headers.cookie);
    if (!token) return { code: 401, body: { status: "error", error: "log in first" } };
    const now = this.d.wall();
    const users = this.d.users();
    const r = this.d.sessions.check(token, now, (u) => users.get(u)?.hash ?? null);
    if (!r.ok) {
      this.stats.badSession++;
      return { code: 401, body: { status: "error", error: r.error }, headers: { "set-cookie": clearCookie() } };
    }
    const user = users.get(r.session.user)!;
    if (!allows(user.role, need)) return { code: 403, body: { status: "error", error: `${user.name} is ${user.role}: this needs ${need}` } };
    const renew = r.renew ? sessionCookie(this.d.sessions.renewed(r.session, now), (r.session.exp - now) / 1000) : null;
    return { caller: { user, session: r.session, from: clientAddress(req) }, renew };
  }

  /** A state-changing request must come from our own page: Origin (and Sec-Fetch-Site) say so. */
  private sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none") return false;
    const origin = req.headers.origin;
    return origin === undefined || origin === `https://${req.headers.host}`;
  }

  private async api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = routeOf(req.method ?? "", url.pathname);
    if (!route) return this.reply(req, res, { code: 404, body: { status: "error", error: `no route ${String(req.method).slice(0, 10)} ${url.pathname.slice(0, 100)}` } });
    let body: unknown = null;
    if (req.method === "POST") {
      if (!this.sameOrigin(req)) {
        this.stats.badOrigin++;
        return this.reply(req, res, { code: 403, body: { status: "error", error: "cross-site request refused (Origin)" } });
      }
    }
    if (route.role === null) return this.login(req, res);
    const a = this.authenticate(req, route.role);
    if ("code" in a) return this.reply(req, res, a);
    const { caller } = a;
    if (req.method === "POST") {
      if (!this.d.sessions.csrfOk(caller.session, req.headers["x-csrf-token"] as string | undefined)) {
        this.stats.badCsrf++;
        return this.reply(req, res, { code: 403, body: { status: "error", error: "CSRF token missing or wrong: reload the page" } });
      }
      try {
        body = await readJson(req);
      } catch (e) {
        this.stats.badBody++;
        return this.reply(req, res, { code: e instanceof BodyError ? e.code : 400, body: { status: "error", error: (e as Error).message } });
      }
    }
    const cookie = a.renew ? { "set-cookie": a.renew } : undefined;
    const q = url.searchParams;
    const api = this.d.api;
    const withCookie = (r: ApiReply): ApiReply => (cookie ? { ...r, headers: { ...r.headers, ...cookie } } : r);
    switch (`${req.method} ${url.pathname}`) {
      case "GET /api/live": {
        req.socket.setTimeout(0);
        this.stats.streams++;
        if (cookie) res.setHeader("set-cookie", cookie["set-cookie"]);
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
        this.d.hub.add(res, q.get("hw") === "1");
        return;
      }
      case "GET /api/me":
        return this.reply(req, res, withCookie(api.me(caller, this.d.sessions.csrf(caller.session))));
      case "POST /api/logout":
        this.d.sessions.revoke(caller.session, this.d.wall());
        api.recordLogout(caller);
        return this.reply(req, res, { code: 200, body: { status: "ok" }, headers: { "set-cookie": clearCookie() } });
      case "GET /api/logs":
        return this.reply(req, res, withCookie(await api.logs(q)));
      case "GET /api/events":
        return this.reply(req, res, withCookie(await api.events(q)));
      case "GET /api/alarms":
        return this.reply(req, res, withCookie(await api.alarms(q)));
      case "GET /api/samples":
        return this.reply(req, res, withCookie(await api.samples(q)));
      case "GET /api/vms":
        return this.reply(req, res, withCookie(await api.vms(q)));
      case "GET /api/audit":
        return this.reply(req, res, withCookie(await api.audit(this.d.members(), { ...this.stats, watching: this.d.hub.watching })));
      case "GET /api/users":
        return this.reply(req, res, withCookie(api.usersList()));
      case "POST /api/action":
        return this.reply(req, res, withCookie(await api.action(caller, body)));
      case "POST /api/alarms/ack":
        return this.reply(req, res, withCookie(await api.ackAlarm(caller, body)));
      case "POST /api/vms/action":
        return this.reply(req, res, withCookie(await api.vmAction(caller, body)));
      case "POST /api/users":
        return this.reply(req, res, withCookie(await api.users(caller, body)));
      case "GET /api/vms/console":
        return this.reply(req, res, { code: 426, body: { status: "error", error: "a WebSocket is expected here (Upgrade: websocket)" } });
    }
    return this.reply(req, res, { code: 404, body: { status: "error", error: "no handler" } });
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: { user?: unknown; password?: unknown };
    try {
      body = ((await readJson(req)) ?? {}) as typeof body;
    } catch (e) {
      this.stats.badBody++;
      return this.reply(req, res, { code: e instanceof BodyError ? e.code : 400, body: { status: "error", error: (e as Error).message } });
    }
    const { user, password } = body;
    if (typeof user !== "string" || user.length < 1 || user.length > 64 || typeof password !== "string" || password.length > 1024) {
      this.stats.badBody++;
      return this.reply(req, res, { code: 400, body: { status: "error", error: "expected {user, password}" } });
    }
    const from = clientAddress(req);
    const now = this.d.wall();
    const keys = [`user:${user}`, `addr:${from}`];
    const wait = Math.max(...keys.map((k) => this.d.lockout.lockedFor(k, now)));
    const audit = (result: "ok" | "refused" | "failed", detail?: string, role: string | null = null) =>
      this.d.api.recordLogin(user.replace(/[^\x21-\x7e]/g, "?").slice(0, 64), role, from, result, detail);
    if (wait > 0) {
      this.stats.loginLocked++;
      audit("refused", `locked for ${Math.ceil(wait / 1000)} s after repeated failures`);
      return this.reply(req, res, { code: 429, body: { status: "error", error: `too many failed logins: try again in ${Math.ceil(wait / 1000)} s` }, headers: { "retry-after": String(Math.ceil(wait / 1000)) } });
    }
    if (this.loginsWaiting >= MAX_LOGINS_WAITING) return this.reply(req, res, { code: 503, body: { status: "error", error: "busy: try again in a moment" } });
    // one scrypt at a time (32 MiB each): a burst of logins queues instead of piling up memory
    this.loginsWaiting++;
    const job = this.loginQueue.then(() => this.d.api.checkLogin(user, password));
    this.loginQueue = job.catch(() => undefined);
    let u: User | null;
    try {
      u = await job;
    } finally {
      this.loginsWaiting--;
    }
    if (!u) {
      this.stats.loginFailed++;
      const n = Math.max(...keys.map((k) => this.d.lockout.fail(k, this.d.wall())));
      audit("failed", `wrong user or password (${n} in a row)`);
      return this.reply(req, res, { code: 401, body: { status: "error", error: "wrong user or password" } });
    }
    for (const k of keys) this.d.lockout.succeed(k);
    const { token, session } = this.d.sessions.issue(u.name, u.hash, this.d.wall());
    audit("ok", undefined, u.role);
    return this.reply(req, res, {
      code: 200,
      body: { status: "ok", user: u.name, role: u.role, csrf: this.d.sessions.csrf(session), expires: session.exp },
      headers: { "set-cookie": sessionCookie(token, this.d.sessions.o.maxMs / 1000) },
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.stats.requests++;
    const refuse = (code: number, why: string) => {
      this.count(code, req);
      socket.end(`HTTP/1.1 ${code} ${code === 401 ? "Unauthorized" : code === 403 ? "Forbidden" : "Not Found"}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "https://web");
    } catch {
      return refuse(404, "no such route");
    }
    const route = routeOf("GET", url.pathname);
    if (!route || url.pathname !== "/api/vms/console" || !this.d.vmConsole) return refuse(404, "no WebSocket here");
    // a WebSocket carries no custom header: its Origin (RFC 6455 §10.2) and Sec-Fetch-Site are
    // checked as a POST's are, and the CSRF token comes as a subprotocol, "csrf.<token>"
    const site = req.headers["sec-fetch-site"];
    if (req.headers.origin !== `https://${req.headers.host}` || (site !== undefined && site !== "same-origin")) {
      this.stats.badOrigin++;
      return refuse(403, "cross-site WebSocket refused (Origin)");
    }
    const a = this.authenticate(req, route.role ?? "admin");
    if ("code" in a) {
      if (a.code === 401) this.stats.badSession++;
      return refuse(a.code, (a.body as { error: string }).error);
    }
    const offered = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
    const csrf = offered.find((p) => p.startsWith("csrf."))?.slice(5);
    if (!this.d.sessions.csrfOk(a.caller.session, csrf)) {
      this.stats.badCsrf++;
      return refuse(403, "CSRF token missing or wrong: reload the page");
    }
    // the connection's idle timeout (IDLE_MS) is the HTTP server's: a console stays open idle
    req.socket.setTimeout(0);
    this.stats.consoles++;
    void this.d.vmConsole(req, socket, head, a.caller, csrf!).catch((e: Error) => {
      this.d.log.error("web console upgrade failed", { err: e });
      socket.destroy();
    });
  }
}

export function clientAddress(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? "?").replace(/^::ffff:/, "");
}

function readJson(req: IncomingMessage): Promise<unknown> {
  const type = String(req.headers["content-type"] ?? "");
  if (!/^application\/json\b/i.test(type)) return Promise.reject(new BodyError(415, "body: expected Content-Type: application/json"));
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new BodyError(413, `body: expected at most ${MAX_BODY} bytes`));
        req.resume();
      } else chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(text ? JSON.parse(text) : null);
      } catch {
        reject(new BodyError(400, "body: expected JSON"));
      }
    });
    req.on("error", reject);
  });
}
