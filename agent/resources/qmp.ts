// A QMP client on node:net (QEMU's docs/interop/qmp-spec.rst): one connection to a QEMU's or a
// qemu-storage-daemon's monitor socket. The server greets with {"QMP": {version, capabilities}};
// the client leaves capabilities negotiation with `qmp_capabilities` (no command is accepted
// before); then each command {"execute", "arguments", "id"} gets {"return", "id"} or
// {"error": {class, desc}, "id"}, and asynchronous events {"event", "data", "timestamp"} arrive
// in between. Every message is one JSON object on its own line (QEMU ends them with CRLF).
// Commands carry ids so that answers are matched even if they were to come out of order.
import { connect as netConnect, type Socket } from "node:net";

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** seconds and microseconds since the epoch, as QEMU stamped it */
  timestamp?: { seconds: number; microseconds: number };
}

/** A command QEMU answered with an error: its class (GenericError, DeviceNotFound...) and text. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`${command}: ${desc} (${errorClass})`);
  }
}

export interface QmpOptions {
  /** connect, greeting and each command's answer (default 5000 ms) */
  timeoutMs?: number;
  /** tests: another way to open the socket */
  connect?: (path: string) => Socket;
}

interface Waiting {
  command: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class Qmp {
  /** QEMU's version as the greeting gave it, e.g. "7.2.22" */
  version = "";
  private buf = "";
  private seq = 0;
  private readonly waiting = new Map<string, Waiting>();
  private readonly eventFns = new Set<(e: QmpEvent) => void>();
  private readonly closeFns = new Set<(why: string) => void>();
  private greeted: ((g: Record<string, unknown>) => void) | null = null;
  private isClosed = false;

  private constructor(
    private readonly sock: Socket,
    private readonly timeoutMs: number,
    readonly path: string,
  ) {}

  /** Connects, reads the greeting and leaves capabilities negotiation; rejects within the timeout. */
  static async connect(path: string, o: QmpOptions = {}): Promise<Qmp> {
    const timeoutMs = o.timeoutMs ?? 5000;
    const sock = (o.connect ?? ((p: string) => netConnect(p)))(path);
    const q = new Qmp(sock, timeoutMs, path);
    const greeting = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`QMP ${path}: no greeting within ${timeoutMs} ms`)); q.close(); }, timeoutMs);
      q.greeted = (g) => { clearTimeout(timer); resolve(g); };
      q.onClose((why) => { clearTimeout(timer); reject(new Error(`QMP ${path}: ${why}`)); });
    });
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => q.feed(d));
    sock.on("error", (e) => q.closed(`connection error: ${e.message}`));
    sock.on("close", () => q.closed("connection closed"));
    const g = await greeting;
    const v = (g.version as { qemu?: { major?: number; minor?: number; micro?: number } } | undefined)?.qemu;
    q.version = v ? `${v.major}.${v.minor}.${v.micro}` : "?";
    await q.execute("qmp_capabilities");
    return q;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Runs one command; resolves with its "return", rejects with QmpError or a timeout/close. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.isClosed) return Promise.reject(new Error(`QMP ${this.path}: closed; cannot run ${command}`));
    const id = `b${++this.seq}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`QMP ${this.path}: no answer to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + "\n");
    });
  }

  /** Registers a receiver of events; returns its removal. */
  onEvent(fn: (e: QmpEvent) => void): () => void {
    this.eventFns.add(fn);
    return () => this.eventFns.delete(fn);
  }

  onClose(fn: (why: string) => void): () => void {
    this.closeFns.add(fn);
    return () => this.closeFns.delete(fn);
  }

  /** The next event `name` (that `match` accepts), or a rejection after `timeoutMs`. */
  waitEvent(name: string, match: (e: QmpEvent) => boolean = () => true, timeoutMs = this.timeoutMs): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const off = this.onEvent((e) => {
        if (e.event !== name || !match(e)) return;
        done();
        resolve(e);
      });
      const offClose = this.onClose((why) => { done(); reject(new Error(`QMP ${this.path}: ${why} while waiting for ${name}`)); });
      const timer = setTimeout(() => { done(); reject(new Error(`QMP ${this.path}: no ${name} within ${timeoutMs} ms`)); }, timeoutMs);
      const done = () => { off(); offClose(); clearTimeout(timer); };
    });
  }

  close(): void {
    this.sock.destroy();
    this.closed("closed by the agent");
  }

  private feed(d: string): void {
    this.buf += d;
    if (this.buf.length > 16 * 1024 * 1024) return this.close(); // a monitor never says this much
    let i: number;
    while ((i = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (line) this.message(line);
    }
  }

  private message(line: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not JSON: nothing a QMP server sends; ignored
    }
    if (m.QMP && this.greeted) { const g = this.greeted; this.greeted = null; return g(m.QMP as Record<string, unknown>); }
    if (typeof m.event === "string") {
      const e: QmpEvent = { event: m.event, data: (m.data as Record<string, unknown>) ?? {}, timestamp: m.timestamp as QmpEvent["timestamp"] };
      for (const fn of [...this.eventFns]) fn(e);
      return;
    }
    const id = typeof m.id === "string" ? m.id : null;
    const w = id ? this.waiting.get(id) : undefined;
    if (!w || !id) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    if ("error" in m) {
      const err = (m.error ?? {}) as { class?: string; desc?: string };
      w.reject(new QmpError(w.command, err.class ?? "GenericError", err.desc ?? "error"));
    } else w.resolve(m.return);
  }

  private closed(why: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const [id, w] of this.waiting) { clearTimeout(w.timer); w.reject(new Error(`QMP ${this.path}: ${why} before ${w.command} was answered`)); this.waiting.delete(id); }
    for (const fn of [...this.closeFns]) fn(why);
  }
}
