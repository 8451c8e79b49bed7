// A VM's serial console in the browser (issue 24 item 3): GET /api/vms/console?vm=NAME upgraded
// to a WebSocket (the `ws` package), bytes both ways between the page's xterm and the VM's serial
// socket. The server (server.ts) has already checked the session, the role (operator: what is
// typed reaches a shell in the guest), the Origin and the CSRF token before this is called.
//
// The serial socket is a unix socket on the node that runs the VM (<vms.dir>/<vm>/serial.sock,
// resources/qemu-args.ts), the one `bollard vm console NAME` connects to there. When the VM runs
// on another node, this agent opens the same route on that node's web console over the data
// network, as the browser's user: the browser's own session cookie and CSRF token (sessions are
// signed with a cluster-wide key, auth.ts), the peer's certificate checked against the cluster
// CA, and a hop header so that the peer serves its own socket and never forwards again. The
// peer checks the session and the role again and audits the console it opens.
//
// `ws` is loaded at the first console opened (import() below): an agent whose console nobody
// opens never evaluates it (build.mjs, docs/web.md "Idle cost").
import { existsSync, openSync, readSync, closeSync, statSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../env/env.ts";
import type { Caller } from "./api.ts";

/** the subprotocol the page asks for; the CSRF token travels as a second one, "csrf.<token>" */
export const CONSOLE_PROTOCOL = "bollard-console";
/** set by the forwarding agent: the peer serves its own socket or refuses, never forwards */
export const HOP_HEADER = "x-bollard-console-hop";
/** what a console shows first: the end of the serial log, so the page is not blank */
const TAIL_BYTES = 8192;
const MAX_FRAME = 64 * 1024;

export interface Placement {
  /** the VM is defined in vms.machines */
  known: boolean;
  /** the node it is assigned to, or null */
  node: string | null;
}

export interface VmConsoleDeps {
  self: string;
  /** this node's serial socket and log of a VM, or null without a vms: section */
  paths(vm: string): { serial: string; serialLog: string } | null;
  /** where the VM runs now (GET /vms of the control socket, as `bollard vm list`) */
  placement(vm: string): Promise<Placement>;
  /** a peer's web console, "https://host:port" */
  peer(node: string): string | null;
  /** the cluster CA (PEM) the peers' certificates are checked against; null: none */
  ca: string | null;
  record(c: Caller, what: string, result: "ok" | "refused" | "failed", detail?: string): void;
  log: Logger;
}

type WsModule = typeof import("ws");
type Ws = import("ws").WebSocket;

export class VmConsoles {
  private ws: Promise<WsModule> | null = null;
  private wss: import("ws").WebSocketServer | null = null;
  /** consoles open through this node now (shown on the audit page's counters) */
  open = 0;

  constructor(private readonly d: VmConsoleDeps) {}

  private lib(): Promise<WsModule> {
    // ws's ESM wrapper names both; the bundle's CommonJS form hangs them on the default export
    return (this.ws ??= import("ws").then((m) => {
      const x = m as Partial<WsModule> & { default?: Partial<WsModule> };
      return { WebSocket: x.WebSocket ?? x.default?.WebSocket, WebSocketServer: x.WebSocketServer ?? x.default?.WebSocketServer } as WsModule;
    }));
  }

  /** Takes an authenticated upgrade; answers it with an HTTP error or a console. Never throws. */
  async handle(req: IncomingMessage, socket: Duplex, head: Buffer, caller: Caller, csrf: string): Promise<void> {
    const refuse = (code: number, why: string) => {
      this.d.record(caller, `vm console ${vm ?? "?"}`, code === 502 ? "failed" : "refused", why);
      socket.end(`HTTP/1.1 ${code} ${STATUS[code] ?? "Error"}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
    };
    const url = new URL(req.url ?? "/", "https://web");
    const vm = url.searchParams.get("vm");
    if (!vm || !/^[a-z][a-z0-9-]{0,30}$/.test(vm)) return refuse(400, "vm: expected a VM name");
    let where: Placement;
    try {
      where = await this.d.placement(vm);
    } catch (e) {
      return refuse(502, `the agent did not answer: ${(e as Error).message}`);
    }
    if (!where.known) return refuse(404, `no VM ${vm}`);
    if (!where.node) return refuse(409, `${vm} is not placed on any node: start it first`);
    const hop = req.headers[HOP_HEADER] !== undefined;
    let lib: WsModule;
    try {
      lib = await this.lib();
    } catch (e) {
      return refuse(500, `the WebSocket library did not load: ${(e as Error).message}`);
    }
    this.wss ??= new lib.WebSocketServer({ noServer: true, maxPayload: MAX_FRAME, perMessageDeflate: false, handleProtocols: (p) => (p.has(CONSOLE_PROTOCOL) ? CONSOLE_PROTOCOL : false) });
    if (where.node === this.d.self) {
      const p = this.d.paths(vm);
      if (!p || !existsSync(p.serial)) return refuse(409, `${vm} does not run on ${this.d.self} now (its serial socket is absent)`);
      return this.local(req, socket, head, caller, vm, p);
    }
    if (hop) return refuse(409, `${vm} runs on ${where.node}, not on ${this.d.self}`);
    const base = this.d.peer(where.node);
    if (!base) return refuse(409, `no address for ${where.node}`);
    return this.forward(lib, req, socket, head, caller, vm, where.node, base, csrf, refuse);
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<Ws> {
    return new Promise((resolve) => this.wss!.handleUpgrade(req, socket, head, (ws) => resolve(ws)));
  }

  private track(ws: Ws, other: { close(): void }, what: string): void {
    this.open++;
    ws.once("close", () => (this.open--, other.close()));
    ws.on("error", (e) => this.d.log.debug(`${what}: ${e.message}`));
  }

  private async local(req: IncomingMessage, socket: Duplex, head: Buffer, c: Caller, vm: string, p: { serial: string; serialLog: string }): Promise<void> {
    const serial = connect(p.serial);
    const opened = await new Promise<Error | null>((r) => (serial.once("connect", () => r(null)), serial.once("error", r)));
    if (opened) {
      this.d.record(c, `vm console ${vm}`, "failed", opened.message);
      socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${vm}'s serial socket: ${opened.message} (one client at a time: is another console open?)\n`);
      return;
    }
    const ws = await this.accept(req, socket, head);
    this.d.record(c, `vm console ${vm}`, "ok", `on ${this.d.self}`);
    this.track(ws, { close: () => serial.destroy() }, `${vm}'s console`);
    const tail = tailOf(p.serialLog, TAIL_BYTES);
    if (tail.length) ws.send(tail);
    serial.on("data", (d: Buffer) => ws.send(d));
    serial.on("close", () => ws.close(1000, "the serial socket closed"));
    serial.on("error", () => ws.close(1011, "the serial socket failed"));
    ws.on("message", (d: Buffer) => serial.write(d));
  }

  private async forward(lib: WsModule, req: IncomingMessage, socket: Duplex, head: Buffer, c: Caller, vm: string, node: string, base: string, csrf: string, refuse: (code: number, why: string) => void): Promise<void> {
    const target = `${base.replace(/^https:/, "wss:")}/api/vms/console?vm=${vm}`;
    const up = new lib.WebSocket(target, [CONSOLE_PROTOCOL, `csrf.${csrf}`], {
      // the peer's certificate must be the cluster CA's and name its address (item 2 of issue 24)
      ...(this.d.ca ? { ca: this.d.ca } : {}), rejectUnauthorized: true,
      origin: `https://${new URL(base).host}`, headers: { cookie: String(req.headers.cookie ?? ""), [HOP_HEADER]: this.d.self },
      handshakeTimeout: 5000, maxPayload: MAX_FRAME, perMessageDeflate: false,
    });
    const err = await new Promise<string | null>((r) => {
      up.once("open", () => r(null));
      up.once("unexpected-response", (_q, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString().slice(0, 300)));
        res.on("end", () => r(`${node} answered ${res.statusCode}: ${body.trim()}`));
      });
      up.once("error", (e) => r(`${node}: ${e.message}`));
    });
    if (err) {
      up.terminate();
      return refuse(502, err);
    }
    if (socket.destroyed) return void up.close(); // the browser left while the peer answered
    const ws = await this.accept(req, socket, head);
    this.d.record(c, `vm console ${vm}`, "ok", `on ${node}, through ${this.d.self}`);
    this.track(ws, { close: () => up.close() }, `${vm}'s console (through ${node})`);
    up.on("message", (d: Buffer) => ws.send(d));
    up.on("close", () => ws.close(1000, `${node} closed the console`));
    up.on("error", (e) => this.d.log.debug(`${vm}'s console on ${node}: ${e.message}`));
    ws.on("message", (d: Buffer) => up.readyState === up.OPEN && up.send(d));
  }

  close(): void {
    for (const c of this.wss?.clients ?? []) c.terminate();
    this.wss?.close();
    this.wss = null;
  }
}

const STATUS: Record<number, string> = { 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 502: "Bad Gateway" };

/** The last `n` bytes of a file (the serial log QEMU appends to), or nothing. */
function tailOf(file: string, n: number): Buffer {
  try {
    const size = statSync(file).size;
    const len = Math.min(n, size);
    const buf = Buffer.alloc(len);
    const fd = openSync(file, "r");
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    return buf;
  } catch {
    return Buffer.alloc(0);
  }
}
