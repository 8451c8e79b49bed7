// Webhook notifications against a real HTTP server on 127.0.0.1 that fails its first
// attempts (HTTP 500, then a connection reset, then no answer at all) and then accepts:
// every notification arrives exactly once and in order. Then a sender is stopped in the
// middle of its queue and a new one started on the same directory: the rest arrive.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { RetryConfig, WebhookConfig } from "../../agent/alarms/config.ts";
import type { Alarm, Transition } from "../../agent/alarms/types.ts";
import type { Logger } from "../../agent/env/env.ts";
import { WebhookSender, httpPost, notificationOf, type SenderDeps } from "../../agent/runtime/notify-webhook.ts";

type Behaviour = "500" | "reset" | "hang" | "ok" | "slow";

interface Receiver {
  url: string;
  plan: Behaviour[];
  attempts: { at: number; behaviour: Behaviour }[];
  received: { id: string; alarm: string; state: string }[];
  close(): Promise<void>;
}

async function receiver(slowMs = 40): Promise<Receiver> {
  const hung: ServerResponse[] = [];
  const r: Omit<Receiver, "url" | "close"> = { plan: [], attempts: [], received: [] };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const behaviour = r.plan.shift() ?? "ok";
      r.attempts.push({ at: performance.now(), behaviour });
      const accept = () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        assert.is(req.headers["x-bollard-notification"], body.id);
        r.received.push({ id: body.id, alarm: body.alarm, state: body.state });
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      };
      if (behaviour === "500") res.writeHead(500).end("internal error");
      else if (behaviour === "reset") req.socket.destroy();
      else if (behaviour === "hang") hung.push(res);
      else if (behaviour === "slow") setTimeout(accept, slowMs);
      else accept();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    ...r,
    get plan() {
      return r.plan;
    },
    set plan(p) {
      r.plan = p;
    },
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const h of hung) h.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const deps = (): SenderDeps => ({
  now: () => performance.now(),
  wall: () => Date.now(),
  random: Math.random,
  timers: {
    after(ms, fn) {
      const t = setTimeout(fn, ms);
      return { cancel: () => clearTimeout(t) };
    },
  },
  post: httpPost,
  log: quiet,
});
const hook = (url: string): WebhookConfig => ({
  name: "ops",
  url,
  template: "generic",
  text: "{text}",
  secret: null,
  minSeverity: "info",
  states: ["raised", "updated", "acked", "cleared"],
  timeoutMs: 300,
  minIntervalMs: 0,
  headers: {},
});
const RETRY: RetryConfig = { baseMs: 100, maxDelayMs: 1000, maxAttempts: 0 };

const transition = (i: number): Transition => {
  const alarm: Alarm = {
    id: `port-down:switchB:swp${i}`,
    rule: "port-down",
    severity: "major",
    node: "node1",
    reporter: "node1",
    text: `switchB port swp${i} to node1 down`,
    detail: null,
    state: "raised",
    occurrence: 1,
    raisedAt: 1_700_000_000_000 + i,
    updatedAt: 1_700_000_000_000 + i,
    ackedBy: null,
    ackedAt: null,
    clearedAt: null,
    flaps: 0,
    flapping: false,
    until: null,
  };
  return { kind: "raised", at: alarm.raisedAt, alarm };
};

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const W = suite("webhook delivery");
let dir = "";
let rx: Receiver;
W.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), "bollard-notify-"));
  rx = await receiver();
});
W.after.each(async () => {
  await rx.close();
  rmSync(dir, { recursive: true, force: true });
});

W("500, reset, timeout, then accepted: each notification exactly once, in order", async () => {
  rx.plan = ["500", "reset", "hang"];
  const s = new WebhookSender(hook(rx.url), RETRY, 1000, dir, deps());
  s.start();
  const t0 = performance.now();
  const want = Array.from({ length: 10 }, (_, i) => notificationOf(transition(i)));
  for (const n of want) assert.ok(s.enqueue(n));
  assert.is(readdirSync(dir).length, 10, "queued on disk before anything is sent");
  await until(() => rx.received.length === 10, 10_000, "10 deliveries");
  const t1 = performance.now();
  await s.stop();
  assert.equal(rx.received.map((r) => r.id), want.map((n) => n.id));
  assert.equal(rx.attempts.slice(0, 4).map((a) => a.behaviour), ["500", "reset", "hang", "ok"]);
  assert.is(rx.attempts.length, 13);
  assert.equal(readdirSync(dir), [], "the queue is empty once delivered");
  assert.equal(s.stats, { sent: 10, failed: 3, dropped: 0 });
  const gaps = rx.attempts.slice(0, 4).map((a, i, all) => (i === 0 ? a.at - t0 : a.at - all[i - 1]!.at).toFixed(0));
  console.log(
    `webhook: first delivery after ${(rx.attempts[3]!.at - t0).toFixed(0)} ms (3 failures; attempt gaps ${gaps.join(", ")} ms, ` +
      `incl. a 300 ms timeout), all 10 in ${(t1 - t0).toFixed(0)} ms`,
  );
});

W("stopped in the middle of the queue; a new sender on the same directory sends the rest", async () => {
  rx.plan = Array(10).fill("slow");
  const want = Array.from({ length: 10 }, (_, i) => notificationOf(transition(i)));
  const a = new WebhookSender(hook(rx.url), RETRY, 1000, dir, deps());
  a.start();
  for (const n of want) a.enqueue(n);
  const t0 = performance.now();
  await until(() => rx.received.length >= 4, 5000, "4 deliveries");
  await a.stop();
  const delivered = rx.received.length;
  const left = readdirSync(dir).length;
  assert.is(delivered + left, 10, "what was not delivered is still on disk");
  assert.ok(left > 0, "stopped mid-queue");
  await new Promise((r) => setTimeout(r, 100));
  assert.is(rx.received.length, delivered, "a stopped sender sends nothing more");
  const t1 = performance.now();
  const b = new WebhookSender(hook(rx.url), RETRY, 1000, dir, deps());
  b.start();
  assert.is(b.pending(), left);
  await until(() => rx.received.length === 10, 5000, "the rest");
  const t2 = performance.now();
  await b.stop();
  assert.equal(rx.received.map((r) => r.id), want.map((n) => n.id), "exactly once, in order, across the restart");
  assert.equal(readdirSync(dir), []);
  console.log(`webhook restart: ${delivered} sent before stop (${(t1 - t0).toFixed(0)} ms), ${left} resent by the new sender in ${(t2 - t1).toFixed(0)} ms`);
});

W("a receiver that is not there yet: retried with backoff until it is", async () => {
  const port = Number(new URL(rx.url).port);
  await rx.close();
  const s = new WebhookSender(hook(`http://127.0.0.1:${port}/hook`), { baseMs: 50, maxDelayMs: 200, maxAttempts: 0 }, 1000, dir, deps());
  s.start();
  s.enqueue(notificationOf(transition(1)));
  await new Promise((r) => setTimeout(r, 400));
  assert.ok(s.stats.failed >= 2, `connection refused, retried (${s.stats.failed})`);
  await s.stop();
  rx = await receiver();
  const b = new WebhookSender(hook(rx.url), RETRY, 1000, dir, deps());
  b.start();
  await until(() => rx.received.length === 1, 5000, "the delivery");
  await b.stop();
  assert.is(rx.received[0]!.alarm, "port-down:switchB:swp1");
});

W.run();
