// Logs and events of this node, or of any node through the bus (issue 6 `bollard logs --node`).
// A node answers a `fetch` with as many recent items as fit in one message. Other kinds of
// item (the web console's chart samples) are served by whoever provides them (provide()).
import { existsSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import type { FetchReq, FetchResp, Message } from "./messages.ts";
import { MAX_PAYLOAD, PROTOCOL_VERSION } from "./messages.ts";

export interface FetchQuery {
  what: "logs" | "events" | "samples";
  n: number;
  level?: "debug" | "info" | "warn" | "error";
  since?: string;
}

const LEVELS = ["debug", "info", "warn", "error"];
const TIMEOUT_MS = 3000;

export class Fetcher {
  private readonly waiting = new Map<string, (r: FetchResp) => void>();
  private readonly providers = new Map<string, () => Record<string, unknown>[]>();

  constructor(
    private readonly self: string,
    private readonly send: (to: string, msg: Message) => void,
    private readonly recentLogs: (n: number) => string[],
    private readonly eventsFile: string,
  ) {}

  /** Items of another kind from this node (the web's samples); none until provided. */
  provide(what: "samples", items: (() => Record<string, unknown>[]) | null): void {
    if (items) this.providers.set(what, items);
    else this.providers.delete(what);
  }

  /** This node's items, newest last, filtered. */
  local(q: FetchQuery): Record<string, unknown>[] {
    if (q.what === "samples") return this.providers.get("samples")?.() ?? [];
    const raw = q.what === "logs" ? this.recentLogs(10_000) : tail(this.eventsFile, 10_000);
    const min = q.level ? LEVELS.indexOf(q.level) : 0;
    const items: Record<string, unknown>[] = [];
    for (const line of raw) {
      let o: Record<string, unknown>;
      try { o = JSON.parse(line); } catch { continue; }
      if (q.level && LEVELS.indexOf(String(o.level)) < min) continue;
      if (q.since && String(o.ts ?? "") < q.since) continue;
      items.push(o);
    }
    return items.slice(-q.n);
  }

  /** `node`'s items: local, or asked over the bus. Rejects when it does not answer in time. */
  get(node: string, q: FetchQuery): Promise<{ items: Record<string, unknown>[]; truncated: boolean }> {
    if (node === this.self) return Promise.resolve({ items: this.local(q), truncated: false });
    const id = randomBytes(8).toString("hex");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`${node} did not answer within ${TIMEOUT_MS} ms`)); }, TIMEOUT_MS);
      this.waiting.set(id, (r) => { clearTimeout(timer); resolve({ items: r.items, truncated: r.truncated }); });
      const req: FetchReq = { v: PROTOCOL_VERSION, t: "fetch", id, what: q.what, n: Math.min(q.n, 2000) };
      if (q.level) req.level = q.level;
      if (q.since) req.since = q.since;
      this.send(node, req);
    });
  }

  receive(from: string, msg: Message): void {
    if (msg.t === "fetched") { this.waiting.get(msg.id)?.(msg); this.waiting.delete(msg.id); return; }
    if (msg.t !== "fetch") return;
    let items = this.local({ what: msg.what, n: msg.n, level: msg.level, since: msg.since });
    let truncated = false;
    // one message must stay under the bus's payload limit: drop the oldest until it fits
    while (items.length && Buffer.byteLength(JSON.stringify(items)) > MAX_PAYLOAD - 1024) { items = items.slice(Math.ceil(items.length / 4)); truncated = true; }
    this.send(from, { v: PROTOCOL_VERSION, t: "fetched", id: msg.id, items, truncated });
  }
}

function tail(file: string, n: number): string[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  return lines.slice(-n);
}
