// The web console in a real browser (issue 24 "Tests"): playwright-core drives Debian's
// chromium, run inside the lab's client namespace so it reaches the nodes as an operator's
// browser would, through the VIP, trusting the lab's cluster CA and nothing else (an NSS
// database of its own; no certificate error is ignored). Log in; see three nodes and the
// primaries; open the VM's serial console from a node that does not run it and read the guest's
// counter; power off the MySQL primary's node (it holds the VIP) with the lab's fault command and
// watch the failover timeline appear without a reload, the page still working through the VIP
// on its new node with the same session; acknowledge an alarm as operator and be refused as
// viewer; an alarm text holding <script> is shown as text (a VM name cannot hold one: vms.machines
// names are a-z, 0-9 and -, config/vm-schema.ts). Screenshots of each page go to
// test-artifacts/web/. Figures (printed, never asserted): the overview's first paint and bytes,
// fault-to-page times. The lab runs one VM (LAB_VMS=1 LAB_VM_SET=console, gen-vm.sh).
// Needs root (the lab), the bundle and /usr/lib/chromium/chromium (make test installs it).
process.env.LAB_VMS = "1";
process.env.LAB_VM_SET = "console";
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, REPO, S, VIP, dataIp, healthy, lab, until } from "./ha-lab.ts";
import { row as vmRow } from "./vm-lab.ts";

const CHROMIUM = "/usr/lib/chromium/chromium";
const root = process.getuid?.() === 0;
const ready = root && existsSync(CHROMIUM);
const ART = join(REPO, "test-artifacts", "web");
const figures: string[] = [];
const s = suite("the web console in a browser, in the lab");
const PW = { admin: "admin password 1", operator: "operator password 1", viewer: "viewer password 1" };

const st = {} as { browser: Browser; tmp: string; holder: string; via: string; base: string };
/** every context trusts the lab's CA through chromium's NSS database; no error is ignored */
const CTX = { ignoreHTTPSErrors: false, viewport: { width: 1280, height: 900 } };

/** `bollard ARGS` on NODE with `input` on stdin (the users command reads the password there). */
function bollardIn(node: string, args: string[], input: string): string {
  const r = spawnSync("ip", ["netns", "exec", node, "node", `${REPO}/dist/bollard.js`, "--config", `${S}/${node}/bollard.yaml`, ...args], { input, encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`bollard ${args.join(" ")} on ${node}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function login(ctx: BrowserContext, user: keyof typeof PW, base = st.base): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${base}/`);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", PW[user]);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=top]");
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });

s.before(async () => {
  if (!ready) return;
  if (!existsSync(`${REPO}/dist/bollard.js`)) execFileSync("node", ["build.mjs"], { cwd: REPO });
  mkdirSync(ART, { recursive: true });
  // down says what it leaves, and exits 1 when anything is left, even another job's command
  // waiting on the lab's lock: that is no reason not to go on
  await lab("down").catch((e) => console.log(`  lab down: ${String(e.stderr ?? e).trim()}`));
  await lab("up");
  const h = await until("a healthy MySQL", 90_000, () => healthy("mysql"), 300);
  await until("a healthy Redis", 60_000, () => healthy("redis"), 300);
  st.holder = h.holder;
  // the browser comes through the VIP (held with the MySQL primary, whose node the fault powers
  // off); the users are added on a node that survives it
  st.via = NODES.find((n) => n !== h.holder)!;
  st.base = `https://${VIP}`;
  bollardIn(st.via, ["users", "add", "admin", "--role", "admin", "--password-stdin"], `${PW.admin}\n`);
  bollardIn(st.via, ["users", "add", "operator", "--role", "operator", "--password-stdin"], `${PW.operator}\n`);
  bollardIn(st.via, ["users", "add", "viewer", "--role", "viewer", "--password-stdin"], `${PW.viewer}\n`);
  // chromium in the client namespace: playwright talks to it over a pipe, which crosses namespaces
  // and trusting the lab's cluster CA: an NSS database in a HOME of its own (certutil, Debian's
  // libnss3-tools), the way a browser on an operator's station is told to trust it
  st.tmp = mkdtempSync(join(tmpdir(), "bollard-web-"));
  const nss = join(st.tmp, "home", ".pki", "nssdb");
  mkdirSync(nss, { recursive: true });
  execFileSync("certutil", ["-d", `sql:${nss}`, "-N", "--empty-password"]);
  execFileSync("certutil", ["-d", `sql:${nss}`, "-A", "-t", "C,,", "-n", "bollard lab cluster CA", "-i", join(S, "secrets", "tls", "ca.crt")]);
  const wrapper = join(st.tmp, "chromium-in-client");
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec client env HOME=${join(st.tmp, "home")} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  st.browser = await chromium.launch({ executablePath: wrapper, args: ["--no-sandbox", "--disable-dev-shm-usage"], headless: true });
});

s.after(async () => {
  if (!ready) return;
  await st.browser?.close().catch(() => undefined);
  rmSync(st.tmp, { recursive: true, force: true });
  await lab("down").catch((e) => console.log(`  lab down: ${String(e.stderr ?? e).trim()}`));
  console.log(`figures:\n  ${figures.join("\n  ")}`);
});

s("log in; the overview shows three nodes, the leader and the primaries; its first paint measured", async () => {
  if (!ready) return console.log(`  skipped: needs root and ${CHROMIUM}`);
  const ctx = await st.browser.newContext(CTX);
  const page = await login(ctx, "admin");
  // a fresh load of the overview with the session: first paint and bytes
  const t0 = Date.now();
  await page.goto(`${st.base}/#/overview`);
  await page.waitForSelector(`[data-testid=primary-mysql]`);
  const shown = Date.now() - t0;
  const perf = await page.evaluate(() => {
    const paint = performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null;
    const all = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")] as PerformanceResourceTiming[];
    return { paint, bytes: all.reduce((n, e) => n + (e.transferSize || 0), 0), files: all.length };
  });
  figures.push(`overview: first contentful paint ${perf.paint?.toFixed(0)} ms, ${perf.bytes} bytes transferred in ${perf.files} requests (no cache), nodes and primaries shown ${shown} ms after navigation`);
  for (const n of NODES) assert.match(await page.textContent(`[data-testid=node-${n}]`) ?? "", /up/, n);
  const mysql = await page.locator("[data-testid=primary-mysql]").first().evaluate((e) => e.closest("[data-testid^=node-]")?.getAttribute("data-testid"));
  assert.is(mysql, `node-${st.holder}`);
  assert.ok(await page.locator("[data-testid=primary-redis]").count() === 1);
  assert.match(await page.textContent("[data-testid=leader]") ?? "", /^node[123]$/);
  assert.match(await page.textContent(`[data-testid=node-${st.holder}]`) ?? "", /VIP/, "the VIP is with the MySQL primary");
  await shot(page, "overview");
  for (const p of ["nodes", "services", "vms", "alarms", "events", "logs", "charts", "audit"]) {
    await page.goto(`${st.base}/#/${p}`);
    await page.waitForTimeout(p === "nodes" || p === "charts" || p === "logs" ? 1500 : 400);
    await shot(page, p);
    // the leader's events spell the users' flags out: the page must not
    if (p === "events" || p === "logs") assert.not.match(await page.content(), /\$scrypt\$/, `no password hash on ${p}`);
  }
  await ctx.close();
});

s("the VM page and its serial console, opened through a node that does not run the VM: the guest's counter goes on", async () => {
  if (!ready) return;
  // the VM boots while the case above runs (TCG: ~10-30 s on a loaded machine)
  const vm = await until("con1 running", 240_000, async () => { const r = await vmRow("con1"); return r?.state.startsWith("running") && r.node ? r : null; }, 1000);
  const other = NODES.find((n) => n !== vm.node && n !== st.holder) ?? NODES.find((n) => n !== vm.node)!;
  const ctx = await st.browser.newContext(CTX);
  const page = await login(ctx, "operator", `https://${dataIp(other)}`);
  await page.goto(`https://${dataIp(other)}/#/vms`);
  const r = page.locator("[data-testid=vm-con1]");
  await r.waitFor();
  assert.match((await r.textContent()) ?? "", /running/);
  assert.is(await r.locator("[data-testid=vm-node]").textContent(), vm.node);
  const t0 = Date.now();
  await r.locator("[data-testid=open-console]").click();
  const acks = async () => [...((await page.textContent("[data-testid=console]")) ?? "").matchAll(/ack (\d+)/g)].map((m) => Number(m[1]));
  const first = await until("an ack on the console", 30_000, async () => { const a = await acks(); return a.length ? a[a.length - 1]! : null; }, 200);
  const shownMs = Date.now() - t0;
  // the live output, not only the log's tail: a later value of the counter arrives
  const later = await until("a later ack on the console", 30_000, async () => { const a = await acks(); return a.some((x) => x > first) ? Math.max(...a) : null; }, 200);
  assert.ok(later > first);
  assert.match((await page.textContent("[data-testid=console-state]")) ?? "", /connected/);
  figures.push(`VM console: con1 on ${vm.node} opened through ${other}, its counter on screen ${shownMs} ms after the click (ack ${first}, then ${later})`);
  await shot(page, "vm-console");
  await ctx.close();
});

s("power off the MySQL primary's node (it holds the VIP): the page through the VIP shows it down, the timeline appears, the session goes on, without a reload", async () => {
  if (!ready) return;
  const ctx = await st.browser.newContext(CTX);
  const overview = await login(ctx, "operator");
  const eventsPage = await ctx.newPage();
  await eventsPage.goto(`${st.base}/#/events`);
  await eventsPage.waitForSelector("[data-testid=top]");
  const before = await eventsPage.locator("[data-testid=timeline]").count();
  await Promise.all([overview, eventsPage].map((p) => p.evaluate(() => ((window as unknown as { __noReload: number }).__noReload = 1))));
  const t0 = Date.now();
  await lab("power", st.holder, "off");
  const down = overview.waitForFunction((n) => /DOWN/.test(document.querySelector(`[data-testid=node-${n}]`)?.textContent ?? ""), st.holder, { timeout: 60_000 }).then(() => Date.now() - t0);
  const done = eventsPage.waitForFunction(([n]) => [...document.querySelectorAll("[data-testid=timeline]")].length > n && [...document.querySelectorAll("[data-testid=timeline]")].some((e) => /of mysql/.test(e.textContent ?? "") && /done/.test(e.textContent ?? "")), [before], { timeout: 90_000 }).then(() => Date.now() - t0);
  const [downMs, doneMs] = await Promise.all([down, done]);
  figures.push(`fault to page, through the VIP: ${st.holder} powered off -> shown DOWN on the overview after ${downMs} ms, the finished MySQL failover timeline after ${doneMs} ms`);
  // the VIP moved with MySQL: the same session is good on the node that holds it now (sessions
  // are signed with a cluster-wide key), no new login, and the data is fresh again
  const after = await healthy("mysql", NODES.filter((n) => n !== st.holder));
  const me = await overview.evaluate(async () => { const r = await fetch("/api/me"); return { code: r.status, body: await r.json() }; });
  assert.is(me.code, 200, JSON.stringify(me.body));
  assert.is(me.body.user, "operator");
  if (after) assert.is(me.body.node, after.holder, "answered by the VIP's new node");
  await overview.waitForFunction(() => !document.querySelector("[data-testid=stale]"), undefined, { timeout: 30_000 });
  for (const p of [overview, eventsPage]) assert.is(await p.evaluate(() => (window as unknown as { __noReload?: number }).__noReload), 1, "no reload");
  const tl = eventsPage.locator("[data-testid=timeline]", { hasText: "of mysql" }).first();
  assert.match((await tl.textContent()) ?? "", /promote/);
  await shot(eventsPage, "failover-timeline");
  await tl.screenshot({ path: join(ART, "failover-timeline-one.png") });
  await shot(overview, "overview-after-failover");
  await ctx.close();
});

s("an alarm is acknowledged by an operator; a viewer has no button and the API refuses it 403", async () => {
  if (!ready) return;
  const ctx = await st.browser.newContext(CTX);
  const op = await login(ctx, "operator");
  await op.goto(`${st.base}/#/alarms`);
  await op.waitForSelector("[data-testid=ack]", { timeout: 60_000 });
  const row = op.locator("[data-testid=alarm-row]", { has: op.locator("[data-testid=ack]") }).first();
  const text = (await row.locator("td.text").textContent()) ?? "";
  await row.locator("[data-testid=ack]").click();
  assert.match((await op.textContent("[data-testid=confirm-text]")) ?? "", /Acknowledge/);
  await op.click("text=Confirm");
  await op.waitForSelector("[data-testid=action-result]");
  assert.match((await op.textContent("[data-testid=action-result]")) ?? "", /^done/);
  await op.waitForFunction((t) => [...document.querySelectorAll("[data-testid=alarm-row]")].some((r) => r.querySelector("td.text")?.textContent === t && /by operator/.test(r.textContent ?? "")), text, { timeout: 10_000 });
  await shot(op, "alarm-acked");
  await ctx.close();
  const vctx = await st.browser.newContext(CTX);
  const v = await login(vctx, "viewer");
  await v.goto(`${st.base}/#/alarms`);
  await v.waitForSelector("[data-testid=alarm-row]", { timeout: 30_000 });
  assert.is(await v.locator("[data-testid=ack]").count(), 0);
  const refused = await v.evaluate(async () => {
    const me = await (await fetch("/api/me")).json();
    const r = await fetch("/api/alarms/ack", { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": me.csrf }, body: JSON.stringify({ id: "anything" }) });
    return { code: r.status, body: await r.json() };
  });
  assert.is(refused.code, 403);
  assert.match(refused.body.error, /viewer/);
  await vctx.close();
});

s("an alarm text holding <script> is shown as text and runs nothing", async () => {
  if (!ready) return;
  // A node clears retained alarms of its own it does not hold, so the text is put where the
  // agent reads it from disk: a cleared alarm in the history of the node the browser reads
  // (<state_dir>/alarms/history.jsonl), served by GET /alarms?all=1 as it would be any other.
  const n = st.via;
  const now = Date.now();
  const text = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> business rule`;
  const alarm = { id: "repl-lag:web-test", rule: "repl-lag", severity: "major", node: n, reporter: n, text, detail: null, state: "cleared", occurrence: 1, raisedAt: now - 5000, updatedAt: now, ackedBy: null, ackedAt: null, clearedAt: now, flaps: 0, flapping: false, until: null };
  appendFileSync(join(S, n, "state", "alarms", "history.jsonl"), `${JSON.stringify({ v: 1, at: now, kind: "cleared", alarm })}\n`);
  const ctx = await st.browser.newContext(CTX);
  const page = await login(ctx, "viewer");
  await page.goto(`${st.base}/#/alarms`);
  await page.waitForFunction((t) => [...document.querySelectorAll("[data-testid=alarm-row] td.text")].some((c) => c.textContent?.startsWith(t)), text, { timeout: 30_000 });
  assert.is(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
  assert.is(await page.locator("[data-testid=alarm-row] td.text script, [data-testid=alarm-row] td.text img").count(), 0);
  await shot(page, "alarm-script-as-text");
  await ctx.close();
});

s.run();
