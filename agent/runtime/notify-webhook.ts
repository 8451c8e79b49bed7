// Webhook notifications of alarm transitions (issue 5 item 5). Each webhook has its own
// queue on disk, `<state_dir>/notify/<name>/<seq>.json`, one file per notification written
// with fsync before enqueue() returns; a file is removed once the receiver accepted it. On
// start the queue is read back and sent first, so an agent restart loses nothing.
// Delivery is in order, one request in flight per webhook; a failure (HTTP status not 2xx,
// a reset, a timeout, or a chat bot's `errcode` other than 0) is retried after a backoff
// of min(max_delay, base x 2^(n-1)) with equal jitter: a delay in [d/2, d]. An agent
// killed between the receiver's answer and the file's removal sends that one again, so
// the body carries a stable `id` for the receiver to drop a repeat. Clock and timers come
// in through SenderDeps; only httpPost does I/O on the network.
import { createHmac } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import type { NotifyConfig, RetryConfig, WebhookConfig } from "../alarms/config.ts";
import { severityRank, type Severity, type Transition, type TransitionKind } from "../alarms/types.ts";
import type { Logger, Timers } from "../env/env.ts";
import { atomicWrite } from "../env/store.ts";

export interface Notification {
  /** stable per transition: reporter:alarm:occurrence:state:at */
  id: string;
  alarm: string;
  rule: string;
  severity: Severity;
  node: string;
  reporter: string;
  text: string;
  detail: string | null;
  state: TransitionKind;
  /** wall-clock ms of the transition */
  at: number;
  occurrence: number;
  ackedBy: string | null;
}

export function notificationOf(t: Transition): Notification {
  const a = t.alarm;
  return {
    id: `${a.reporter}:${a.id}:${a.occurrence}:${t.kind}:${t.at}`,
    alarm: a.id,
    rule: a.rule,
    severity: a.severity,
    node: a.node,
    reporter: a.reporter,
    text: a.text,
    detail: a.detail,
    state: t.kind,
    at: t.at,
    occurrence: a.occurrence,
    ackedBy: a.ackedBy,
  };
}

/** Fills `{name}` placeholders; unknown names are left as they are. */
export function fillTemplate(template: string, n: Notification): string {
  const v: Record<string, string> = {
    id: n.alarm,
    rule: n.rule,
    severity: n.severity,
    SEVERITY: n.severity.toUpperCase(),
    node: n.node,
    reporter: n.reporter,
    text: n.text,
    detail: n.detail ?? "",
    detail_sep: n.detail ? ", " : "",
    state: n.state,
    at: new Date(n.at).toISOString(),
    acked_by: n.ackedBy ?? "",
  };
  return template.replace(/\{([A-Za-z_]+)\}/g, (m, k: string) => v[k] ?? m);
}

/** The request body: generic JSON, or a WeCom / DingTalk group bot text message. */
export function renderBody(w: WebhookConfig, n: Notification): string {
  if (w.template === "generic") {
    const { id, alarm, rule, severity, node, reporter, text, detail, state, at, occurrence, ackedBy } = n;
    return JSON.stringify({ v: 1, id, alarm, rule, severity, node, text, detail, state, at: new Date(at).toISOString(), reporter, occurrence, acked_by: ackedBy });
  }
  // WeCom: developer.work.weixin.qq.com/document/path/91770; DingTalk: open.dingtalk.com
  // "custom robot": both take {"msgtype":"text","text":{"content":...}}
  return JSON.stringify({ msgtype: "text", text: { content: fillTemplate(w.text, n) } });
}

/** DingTalk "sign" security: timestamp and base64(HMAC-SHA256(secret, "ts\nsecret")). */
export function signedUrl(url: string, secret: string, wallMs: number): string {
  const sign = createHmac("sha256", secret).update(`${wallMs}\n${secret}`).digest("base64");
  return `${url}${url.includes("?") ? "&" : "?"}timestamp=${wallMs}&sign=${encodeURIComponent(sign)}`;
}

/** Delay before attempt n+1 after n failures: equal jitter, in [d/2, d], d = min(max, base x 2^(n-1)). */
export function backoff(failures: number, r: RetryConfig, random: number): number {
  const d = Math.min(r.maxDelayMs, r.baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(d / 2 + (random * d) / 2);
}

export interface PostReply {
  status: number;
  body: string;
}
export type HttpPost = (url: string, body: string, headers: Record<string, string>, timeoutMs: number) => Promise<PostReply>;

/** POST over http or https; rejects on a network error or no answer within timeoutMs. */
export const httpPost: HttpPost = (url, body, headers, timeoutMs) =>
  new Promise((resolve, reject) => {
    const u = new URL(url);
    const request = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = request(
      u,
      { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => void ((size += c.length) <= 65536 && chunks.push(c)));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("error", reject);
    req.end(body);
  });

export interface SenderDeps {
  /** monotonic ms */
  now(): number;
  /** wall-clock ms (DingTalk signatures) */
  wall(): number;
  random(): number;
  timers: Pick<Timers, "after">;
  post: HttpPost;
  log: Logger;
}

interface Item {
  /** null: kept in memory only (the queue directory could not be written) */
  file: string | null;
  n: Notification;
}

/** Whether a reply is a delivery: 2xx, and for chat bots `errcode` 0 (45009: rate limited). */
export function accepted(w: WebhookConfig, r: PostReply): string | null {
  if (r.status < 200 || r.status > 299) return `HTTP ${r.status}${r.body ? `: ${r.body.slice(0, 120)}` : ""}`;
  if (w.template === "generic") return null;
  try {
    const code = (JSON.parse(r.body) as { errcode?: unknown }).errcode;
    return code === undefined || code === 0 ? null : `errcode ${String(code)}: ${r.body.slice(0, 120)}`;
  } catch {
    return null;
  }
}

/** One webhook's persisted queue and its sending loop. */
export class WebhookSender {
  private queue: Item[] = [];
  private seq = 0;
  private failures = 0;
  private nextAt = 0;
  private timer: { cancel(): void } | null = null;
  private inflight: Promise<void> | null = null;
  private running = false;
  private loaded = false;
  readonly stats = { sent: 0, failed: 0, dropped: 0 };

  constructor(
    readonly cfg: WebhookConfig,
    private readonly retry: RetryConfig,
    private readonly queueMax: number,
    readonly dir: string,
    private readonly deps: SenderDeps,
  ) {}

  /** Reads back what an earlier run left in the queue and starts sending. Throws only when
   * the queue directory cannot be made or listed. */
  start(): void {
    this.load();
    if (this.queue.length) this.deps.log.info("resending queued notifications", { webhook: this.cfg.name, count: this.queue.length });
    this.running = true;
    this.kick();
  }

  private load(): void {
    if (this.loaded) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const names = readdirSync(this.dir).filter((f) => /^\d{16}\.json$/.test(f)).sort();
    for (const f of names) {
      const file = join(this.dir, f);
      try {
        this.queue.push({ file, n: JSON.parse(readFileSync(file, "utf8")) as Notification });
      } catch (e) {
        this.deps.log.error("dropping an unreadable queued notification", { file, err: e as Error });
        this.remove({ file, n: null as unknown as Notification });
      }
    }
    this.seq = names.length ? Number(names[names.length - 1]!.slice(0, 16)) : 0;
    this.loaded = true;
  }

  /** Stops sending; waits for a request in flight to finish. The queue stays on disk. */
  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = null;
    await this.inflight;
  }

  wants(n: Notification): boolean {
    return severityRank(n.severity) <= severityRank(this.cfg.minSeverity) && this.cfg.states.includes(n.state);
  }

  /** Persists `n` (fsync) and queues it; false when this webhook does not want it. A queue
   * that cannot be written keeps `n` in memory only (logged): it is still sent. */
  enqueue(n: Notification): boolean {
    if (!this.wants(n)) return false;
    let file: string | null = null;
    try {
      this.load();
      file = join(this.dir, `${String(++this.seq).padStart(16, "0")}.json`);
      atomicWrite(file, JSON.stringify(n), { durable: true, mode: 0o640 });
    } catch (e) {
      this.deps.log.error("cannot persist a notification; it is queued in memory only", { webhook: this.cfg.name, id: n.id, err: e as Error });
      file = null;
    }
    this.queue.push({ file, n });
    while (this.queue.length > this.queueMax) {
      // the head is being delivered (or retried): keep it, drop the oldest behind it
      const drop = this.queue.splice(1, 1)[0]!;
      this.remove(drop);
      this.stats.dropped++;
      this.deps.log.warn("notification queue full: dropped the oldest", { webhook: this.cfg.name, id: drop.n.id, max: this.queueMax });
    }
    this.kick();
    return true;
  }

  pending(): number {
    return this.queue.length;
  }

  private kick(): void {
    if (!this.running || this.inflight || this.timer || this.queue.length === 0) return;
    const wait = this.nextAt - this.deps.now();
    if (wait > 0) {
      this.timer = this.deps.timers.after(wait, () => {
        this.timer = null;
        this.kick();
      });
      return;
    }
    this.inflight = this.attempt(this.queue[0]!).finally(() => {
      this.inflight = null;
      this.kick();
    });
  }

  private async attempt(item: Item): Promise<void> {
    const w = this.cfg;
    const url = w.template === "dingtalk" && w.secret ? signedUrl(w.url, w.secret, this.deps.wall()) : w.url;
    const headers = { ...w.headers, "x-bollard-notification": item.n.id };
    let why: string | null;
    try {
      why = accepted(w, await this.deps.post(url, renderBody(w, item.n), headers, w.timeoutMs));
    } catch (e) {
      why = (e as Error).message;
    }
    if (why === null) {
      this.queue.shift();
      this.remove(item);
      this.stats.sent++;
      this.failures = 0;
      this.nextAt = this.deps.now() + w.minIntervalMs;
      this.deps.log.debug("notification sent", { webhook: w.name, id: item.n.id });
      return;
    }
    this.failures++;
    this.stats.failed++;
    if (this.retry.maxAttempts > 0 && this.failures >= this.retry.maxAttempts) {
      this.queue.shift();
      this.remove(item);
      this.failures = 0;
      this.stats.dropped++;
      this.deps.log.error("notification given up", { webhook: w.name, id: item.n.id, attempts: this.retry.maxAttempts, err: why });
      return;
    }
    const delay = backoff(this.failures, this.retry, this.deps.random());
    this.nextAt = this.deps.now() + delay;
    this.deps.log.warn("notification failed; retrying", { webhook: w.name, id: item.n.id, attempt: this.failures, retryInMs: delay, err: why });
  }

  private remove(item: Item): void {
    if (item.file === null) return;
    try {
      unlinkSync(item.file);
    } catch (e) {
      this.deps.log.error("cannot remove a sent notification from the queue", { file: item.file, err: e as Error });
    }
  }
}

/** Every configured webhook: notify() hands each transition to those that want it. */
export class Notifier {
  readonly senders: WebhookSender[];

  constructor(cfg: NotifyConfig, stateDir: string, deps: SenderDeps) {
    this.senders = cfg.webhooks.map((w) => new WebhookSender(w, cfg.retry, cfg.queueMax, join(stateDir, "notify", w.name), deps));
  }

  start(): void {
    for (const s of this.senders) s.start();
  }

  notify(transitions: Transition[]): void {
    for (const t of transitions) {
      const n = notificationOf(t);
      for (const s of this.senders) s.enqueue(n);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.senders.map((s) => s.stop()));
  }
}
