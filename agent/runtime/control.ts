// The control socket: HTTP/1.1 over a unix socket (`<state_dir>/agent.sock`, mode 0660),
// which the CLI on the same node uses. Routes:
//   GET  /status        status body (runtime/status.ts)
//   POST /command       a Command (bus/messages.ts) -> {status: "ok"|"error", epoch?, error?}
//   GET  /logs?n=200    the last n log lines from the ring buffer, as a JSON array of strings
// The socket doubles as the single-instance guard: if another agent answers on it, start()
// fails; a stale socket file (nobody answering) is removed and re-bound.
import { chmodSync, unlinkSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { Command } from "../bus/messages.ts";
import type { Logger } from "../env/env.ts";

export type CommandResult = { status: "ok" | "error"; epoch?: number; error?: string };

export interface FetchParams {
  node: string | null;
  n: number;
  level?: "debug" | "info" | "warn" | "error";
  since?: string;
}

/** Extra routes other modules mount (alarms): path -> handler of the query and the JSON body. */
export type Route = (query: URLSearchParams, body: unknown) => Promise<{ code: number; body: unknown }>;

export interface ControlHandlers {
  status(): unknown;
  command(cmd: Command): Promise<CommandResult>;
  /** this node's or another node's recent log lines / events: {node, lines} / {node, events} */
  logs(p: FetchParams): Promise<unknown>;
  events(p: FetchParams): Promise<unknown>;
  routes?: Record<string, Route>;
}

const MAX_BODY = 64 * 1024;

/** What the control socket answered, by HTTP code: bad requests are counted, not only logged. */
export interface ControlStats {
  requests: number;
  /** answers >= 400, by code: 400 bad request, 404 no route, 413 too large, 500 a handler failed */
  rejected: Record<string, number>;
}

class BodyTooLarge extends Error {}

export class ControlServer {
  private server: Server | null = null;
  private readonly counts: ControlStats = { requests: 0, rejected: {} };
  private lastBadLog = -Infinity;

  constructor(
    readonly socket: string,
    private readonly handlers: ControlHandlers,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    try {
      await listen(server, this.socket);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
      if (await answers(this.socket)) throw new Error(`another bollard agent is running (it answers on ${this.socket})`);
      this.log.warn("removing a stale control socket", { socket: this.socket });
      unlinkSync(this.socket);
      await listen(server, this.socket);
    }
    server.on("error", (e) => this.log.error("control socket error", { err: e }));
    chmodSync(this.socket, 0o660);
    this.server = server;
    this.log.info("control socket listening", { socket: this.socket });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed; // also removes the socket file (libuv unlinks a unix socket it bound)
  }

  stats(): ControlStats {
    return { requests: this.counts.requests, rejected: { ...this.counts.rejected } };
  }

  /** One request, answered whatever it holds: nothing may escape (an unhandled rejection ends the agent). */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counts.requests++;
    res.on("finish", () => {
      if (res.statusCode < 400) return;
      this.counts.rejected[res.statusCode] = (this.counts.rejected[res.statusCode] ?? 0) + 1;
      const now = performance.now();
      if (now - this.lastBadLog < 60_000) return;
      this.lastBadLog = now;
      this.log.warn(`control request answered ${res.statusCode}`, { method: req.method, path: (req.url ?? "").slice(0, 200), rejected: this.counts.rejected });
    });
    let url: URL;
    try {
      // "//host:99999" is a valid request target to Node's HTTP parser and an invalid URL here
      url = new URL(req.url ?? "/", "http://agent");
    } catch {
      return reply(res, 400, { status: "error", error: `request target: expected a path, got ${JSON.stringify((req.url ?? "").slice(0, 100))}` });
    }
    try {
      if (req.method === "GET" && url.pathname === "/status") return reply(res, 200, this.handlers.status());
      if (req.method === "GET" && (url.pathname === "/logs" || url.pathname === "/events")) {
        const q = url.searchParams;
        const level = q.get("level");
        if (level && !["debug", "info", "warn", "error"].includes(level)) return reply(res, 400, { status: "error", error: `level: expected debug, info, warn or error, got ${JSON.stringify(level)}` });
        const p: FetchParams = { node: q.get("node"), n: Math.min(Math.max(Number(q.get("n") ?? 200) || 200, 1), 2000) };
        if (level) p.level = level as FetchParams["level"];
        if (q.get("since")) p.since = q.get("since")!;
        try {
          return reply(res, 200, await (url.pathname === "/logs" ? this.handlers.logs(p) : this.handlers.events(p)));
        } catch (e) {
          return reply(res, 504, { status: "error", error: (e as Error).message });
        }
      }
      const route = this.handlers.routes?.[`${req.method} ${url.pathname}`];
      if (route) {
        let body: unknown = null;
        if (req.method === "POST") {
          try {
            body = JSON.parse((await readBody(req)) || "null");
          } catch (e) {
            return e instanceof BodyTooLarge ? reply(res, 413, { status: "error", error: e.message }) : reply(res, 400, { status: "error", error: "body: expected JSON" });
          }
        }
        const r = await route(url.searchParams, body);
        return reply(res, r.code, r.body);
      }
      if (req.method === "POST" && url.pathname === "/command") {
        let raw: unknown;
        try {
          raw = JSON.parse(await readBody(req));
        } catch (e) {
          return e instanceof BodyTooLarge ? reply(res, 413, { status: "error", error: e.message }) : reply(res, 400, { status: "error", error: "body: expected a JSON command" });
        }
        const cmd = Command.safeParse(raw);
        if (!cmd.success) {
          const error = cmd.error.issues.map((i) => `${i.path.join(".") || "command"}: ${i.message}`).join("; ");
          return reply(res, 400, { status: "error", error });
        }
        this.log.info("operator command", { cmd: cmd.data });
        const result = await this.handlers.command(cmd.data);
        this.log.info("operator command done", { cmd: cmd.data, ...result });
        return reply(res, 200, result);
      }
      return reply(res, 404, { status: "error", error: `no route ${req.method} ${url.pathname}` });
    } catch (e) {
      this.log.error("control request failed", { path: url.pathname, err: e as Error });
      return reply(res, 500, { status: "error", error: (e as Error)?.message ?? String(e) });
    }
  }
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body) ?? "null";
  res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new BodyTooLarge(`body: expected at most ${MAX_BODY} bytes, got more`));
        req.resume(); // read and drop the rest, so that the 413 can be sent
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once("error", onError);
    server.listen(path, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/** Whether something accepts connections on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export interface ControlReply {
  code: number;
  body: unknown;
}

/** One request to the agent's control socket. Rejects if the agent does not answer in time. */
export function controlRequest(
  socket: string,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  timeoutMs = 5000,
): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            reject(new Error(`the agent sent a reply that is not JSON (HTTP ${res.statusCode})`));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}
