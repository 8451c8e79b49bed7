// Webhook bodies, templates, backoff bounds and the sender's queue rules, with a virtual
// clock and a fake post (the real HTTP path is in test/broker/webhook.test.ts).
import { createHmac } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NotifySection, defaultNotifyConfig, toNotifyConfig, type WebhookConfig } from "../../agent/alarms/config.ts";
import type { Logger } from "../../agent/env/env.ts";
import { WebhookSender, accepted, backoff, fillTemplate, renderBody, signedUrl, type HttpPost, type Notification } from "../../agent/runtime/notify-webhook.ts";

const N: Notification = {
  id: "node1:psu:node2:PSU2:1:raised:1732190400000",
  alarm: "psu:node2:PSU2",
  rule: "psu",
  severity: "major",
  node: "node2",
  reporter: "node1",
  text: "node2 PSU2 failed",
  detail: "Presence detected, Failure detected",
  state: "raised",
  at: Date.UTC(2024, 10, 21, 12, 0, 0),
  occurrence: 1,
  ackedBy: null,
};
const hook = (p: Partial<WebhookConfig> = {}): WebhookConfig => ({ ...toNotifyConfig(NotifySection.parse({ webhooks: [{ name: "chat", url: "https://example.invalid/hook" }] })).webhooks[0]!, ...p });

const B = suite("webhook bodies");

B("generic JSON body", () => {
  assert.equal(JSON.parse(renderBody(hook(), N)), {
    v: 1,
    id: N.id,
    alarm: "psu:node2:PSU2",
    rule: "psu",
    severity: "major",
    node: "node2",
    text: "node2 PSU2 failed",
    detail: "Presence detected, Failure detected",
    state: "raised",
    at: "2024-11-21T12:00:00.000Z",
    reporter: "node1",
    occurrence: 1,
    acked_by: null,
  });
});

B("WeCom / DingTalk text bodies from the default and a custom template", () => {
  assert.equal(JSON.parse(renderBody(hook({ template: "wecom" }), N)), {
    msgtype: "text",
    text: { content: "[MAJOR] node2 PSU2 failed (raised, Presence detected, Failure detected) at 2024-11-21T12:00:00.000Z" },
  });
  const custom = hook({ template: "dingtalk", text: "bollard {severity}: {text} [{state}] {unknown}" });
  assert.is(JSON.parse(renderBody(custom, { ...N, detail: null })).text.content, "bollard major: node2 PSU2 failed [raised] {unknown}");
  assert.is(fillTemplate("{detail_sep}{detail}|", { ...N, detail: null }), "|");
});

B("DingTalk signature: timestamp and base64 HMAC-SHA256 of 'ts\\nsecret'", () => {
  const u = new URL(signedUrl("https://oapi.dingtalk.com/robot/send?access_token=t", "SECabc", 1732190400000));
  assert.is(u.searchParams.get("access_token"), "t");
  assert.is(u.searchParams.get("timestamp"), "1732190400000");
  assert.is(u.searchParams.get("sign"), createHmac("sha256", "SECabc").update("1732190400000\nSECabc").digest("base64"));
});

B("accepted: 2xx, and errcode 0 for chat bots", () => {
  assert.is(accepted(hook(), { status: 204, body: "" }), null);
  assert.match(accepted(hook(), { status: 503, body: "busy" })!, "HTTP 503: busy");
  assert.is(accepted(hook({ template: "wecom" }), { status: 200, body: '{"errcode":0,"errmsg":"ok"}' }), null);
  assert.match(accepted(hook({ template: "wecom" }), { status: 200, body: '{"errcode":45009,"errmsg":"api freq out of limit"}' })!, "errcode 45009");
});

B("backoff is exponential, bounded, with jitter in [d/2, d]", () => {
  const r = { baseMs: 1000, maxDelayMs: 60_000, maxAttempts: 0 };
  assert.equal([1, 2, 3, 4].map((n) => backoff(n, r, 1)), [1000, 2000, 4000, 8000]);
  assert.equal([1, 2, 3, 4].map((n) => backoff(n, r, 0)), [500, 1000, 2000, 4000]);
  assert.is(backoff(40, r, 1), 60_000);
  assert.is(backoff(1000, r, 0), 30_000);
});

B("config: defaults, and the errors name what was expected", () => {
  assert.equal(defaultNotifyConfig(), { webhooks: [], retry: { baseMs: 1000, maxDelayMs: 60_000, maxAttempts: 0 }, queueMax: 10_000 });
  const bad = NotifySection.safeParse({ webhooks: [{ name: "a", url: "ftp://x" }, { name: "a", url: "http://x", template: "slack" }] });
  assert.ok(!bad.success);
  const msgs = bad.success ? [] : bad.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  assert.ok(msgs.includes("webhooks.0.url: an http:// or https:// URL"), msgs.join("; "));
  assert.ok(msgs.includes("webhooks.1.template: one of generic, wecom, dingtalk"), msgs.join("; "));
});

const Q = suite("WebhookSender with a virtual clock");
let dir = "";
Q.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-notify-unit-"));
});
Q.after.each(() => rmSync(dir, { recursive: true, force: true }));

function virtual(post: HttpPost) {
  let now = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  const log: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void log.push(m), error: (m) => void log.push(m), child: () => logger };
  const deps = {
    now: () => now,
    wall: () => 1_700_000_000_000 + now,
    random: () => 0.5,
    timers: { after: (ms: number, fn: () => void) => { const t = { at: now + ms, fn, live: true }; timers.push(t); return { cancel: () => void (t.live = false) }; } },
    post,
    log: logger,
  };
  const advance = async (ms: number) => {
    const end = now + ms;
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const next = timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      now = next.at;
      next.live = false;
      next.fn();
    }
    now = end;
    await new Promise((r) => setImmediate(r));
  };
  return { deps, advance, log };
}

Q("filters by severity and state; gives up after max_attempts; drops the oldest beyond queue_max", async () => {
  const calls: string[] = [];
  const v = virtual(async (_u, body) => {
    calls.push(JSON.parse(body).id);
    return { status: 500, body: "" };
  });
  const s = new WebhookSender(hook({ minSeverity: "major", states: ["raised"] }), { baseMs: 1000, maxDelayMs: 4000, maxAttempts: 3 }, 2, dir, v.deps);
  assert.is(s.enqueue({ ...N, severity: "minor" }), false);
  assert.is(s.enqueue({ ...N, state: "cleared" }), false);
  assert.is(s.enqueue({ ...N, severity: "critical", id: "a" }), true);
  s.start();
  await v.advance(0);
  assert.equal(calls, ["a"]);
  s.enqueue({ ...N, id: "b" });
  s.enqueue({ ...N, id: "c" }); // over queue_max 2: b, the oldest not in flight, is dropped
  await v.advance(750); // backoff(1) = 750 with random 0.5
  assert.equal(calls, ["a", "a"]);
  await v.advance(1499);
  assert.equal(calls, ["a", "a"]);
  await v.advance(1);
  assert.equal(calls, ["a", "a", "a", "c"], "a given up after 3 attempts; c at once (b was dropped)");
  assert.equal(s.stats, { sent: 0, failed: 4, dropped: 2 });
  assert.equal(readdirSync(dir), ["0000000000000003.json"]);
  assert.ok(v.log.includes("notification given up"));
  await s.stop();
});

Q("min_interval_ms spaces posts (chat bots take 20 a minute)", async () => {
  const at: number[] = [];
  const v = virtual(async () => (at.push(0), { status: 200, body: '{"errcode":0}' }));
  let t = 0;
  const deps = { ...v.deps, now: () => (t = v.deps.now()) };
  const s = new WebhookSender(hook({ template: "wecom", minIntervalMs: 3000 }), { baseMs: 1000, maxDelayMs: 4000, maxAttempts: 0 }, 100, dir, deps);
  s.start();
  for (const id of ["a", "b", "c"]) s.enqueue({ ...N, id });
  await v.advance(0);
  assert.is(at.length, 1);
  await v.advance(2999);
  assert.is(at.length, 1);
  await v.advance(1);
  assert.is(at.length, 2);
  await v.advance(3000);
  assert.is(at.length, 3);
  assert.is(t, 6000);
  await s.stop();
});

B.run();
Q.run();
