// A node's bundles (agent/upgrade/bundle.ts) in a temporary directory, agent-exec's choice of
// the bundle to run (overlays/usr/lib/bollard/agent-exec), and the transfer of a bundle in
// pieces between two nodes (agent/upgrade/transfer.ts) wired back to back.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Message } from "../../agent/bus/messages.ts";
import { BundleStore, inspectBundle, sha256 } from "../../agent/upgrade/bundle.ts";
import { BundleTransfer, PIECE } from "../../agent/upgrade/transfer.ts";

const fake = (version: string, pad = 0) => Buffer.from(`#!/usr/bin/env node\n// ${"x".repeat(pad)}\nconsole.log("bollard ${version} (abc123)");\n`);
const AGENT_EXEC = new URL("../../overlays/usr/lib/bollard/agent-exec", import.meta.url).pathname;

const B = suite("bundle store: staged beside the old one, a trial, blessed or undone");

B.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-bundles-"));
});
B.after.each((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

B("inspect: a bollard bundle says its version; anything else is an error that says why", (ctx) => {
  const f = join(ctx.dir, "b.js");
  writeFileSync(f, fake("0.2.0"));
  const r = inspectBundle(f);
  assert.ok(r.ok && r.value.version === "0.2.0" && r.value.rev === "abc123" && r.value.sha === sha256(fake("0.2.0")));
  writeFileSync(f, "hello");
  assert.equal(inspectBundle(f), { ok: false, error: `${f}: not a bollard bundle (it does not start with a node #! line)` });
  writeFileSync(f, "#!/usr/bin/env node\nprocess.exit(3)\n");
  assert.equal(inspectBundle(f), { ok: false, error: `${f}: not a bollard bundle: "node b.js --version" exited 3` });
  assert.equal(inspectBundle(join(ctx.dir, "none.js")), { ok: false, error: `${join(ctx.dir, "none.js")}: no such file` });
});

B("stage checks the sha; a trial points current at it and previous at what ran; bless ends it", (ctx) => {
  const s = new BundleStore(ctx.dir);
  const data = fake("0.2.0");
  const sha = sha256(data);
  assert.equal(s.stage(data, "0".repeat(64)), { ok: false, error: "the bundle received does not match its sha256 000000000000: not staged" });
  const st = s.stage(data, sha);
  assert.ok(st.ok);
  assert.is(s.staged(sha), join(ctx.dir, `0.2.0-${sha.slice(0, 12)}`, "bollard.js"));
  assert.is(s.current(), null, "nothing runs from the store yet: the image's bundle");
  const t = s.startTrial(sha, "0.2.0", 5000, 1000);
  assert.ok(t.ok && t.value.previous === null);
  assert.is(s.current(), join(ctx.dir, `0.2.0-${sha.slice(0, 12)}`));
  assert.equal(s.startTrial(sha, "0.2.0", 5000, 1000), { ok: false, error: "a trial is already running (0.2.0): bless or roll it back first" });
  assert.equal(s.bless("1".repeat(64)), { ok: false, error: `the trial here is of ${sha.slice(0, 12)}, not 111111111111` });
  assert.ok(s.bless(sha).ok);
  assert.is(s.trial(), null);
  assert.equal(s.undo("late", 2000), { ok: false, error: "no trial to undo" }, "a blessed trial cannot be undone");
});

B("undo puts the previous bundle back and says why; a later bless fails", (ctx) => {
  const s = new BundleStore(ctx.dir);
  const a = fake("0.2.0"), b = fake("0.3.0");
  s.stage(a, sha256(a));
  s.startTrial(sha256(a), "0.2.0", 5000, 0);
  s.bless(sha256(a));
  s.stage(b, sha256(b));
  s.startTrial(sha256(b), "0.3.0", 9000, 1000);
  assert.is(readlinkSync(join(ctx.dir, "previous")), join(ctx.dir, `0.2.0-${sha256(a).slice(0, 12)}`));
  const u = s.undo("its gate failed", 3000);
  assert.ok(u.ok);
  assert.is(s.current(), join(ctx.dir, `0.2.0-${sha256(a).slice(0, 12)}`));
  assert.equal(s.rolledBack(), { sha: sha256(b), version: "0.3.0", why: "its gate failed", at: 3000 });
  assert.equal(s.bless(sha256(b)).ok, false);
});

B("agent-exec runs current, or the fallback; an expired trial is undone before it starts", (ctx) => {
  const fb = join(ctx.dir, "fallback.js");
  writeFileSync(fb, fake("0.1.0"));
  const dir = join(ctx.dir, "bundles");
  const run = () => execFileSync(AGENT_EXEC, [dir, fb, "--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  assert.is(run(), "bollard 0.1.0 (abc123)");
  const s = new BundleStore(dir);
  const a = fake("0.2.0");
  s.stage(a, sha256(a));
  s.startTrial(sha256(a), "0.2.0", Date.now() + 600_000, Date.now());
  assert.is(run(), "bollard 0.2.0 (abc123)", "a trial still within its deadline runs");
  s.bless(sha256(a));
  const b = fake("0.3.0");
  s.stage(b, sha256(b));
  s.startTrial(sha256(b), "0.3.0", Date.now() - 1, Date.now() - 60_000);
  assert.is(run(), "bollard 0.2.0 (abc123)", "the expired trial was undone: back on 0.2.0");
  assert.is(s.trial(), null);
  assert.is(s.rolledBack()?.version, "0.3.0");
  assert.match(s.rolledBack()?.why ?? "", /restarted during the trial/);
});

B.run();

const T = suite("transfer: a bundle in pieces over the bus, checked whole");

/** Two nodes whose sends reach each other at once (asynchronously, as the bus does). */
function pair(offered: Map<string, Buffer>) {
  const nodes: Record<string, BundleTransfer> = {};
  const sent: string[] = [];
  const send = (from: string) => (to: string, m: Message) => {
    sent.push(`${from}->${to} ${m.t}`);
    queueMicrotask(() => nodes[to]!.receive(from, m));
  };
  nodes.a = new BundleTransfer(send("a"), (sha) => offered.get(sha) ?? null);
  nodes.b = new BundleTransfer(send("b"), () => null);
  return { nodes, sent };
}

T("fetches a bundle of three pieces; the server counts what it served", async () => {
  const data = fake("0.2.0", 2 * PIECE + 100);
  const sha = sha256(data);
  const { nodes, sent } = pair(new Map([[sha, data]]));
  const got = await nodes.b!.fetch("a", sha);
  assert.ok(got.equals(data));
  assert.is(sent.filter((s) => s === "b->a bundle-get").length, 3);
  assert.is(nodes.a!.counters.served, 3);
  assert.is(nodes.b!.counters.fetched, 3);
});

T("a bundle not offered is an error naming the node; a piece of other bytes fails the sha check", async () => {
  const data = fake("0.2.0");
  const sha = sha256(data);
  const { nodes } = pair(new Map());
  try {
    await nodes.b!.fetch("a", sha);
    assert.unreachable();
  } catch (e) {
    assert.is((e as Error).message, `a: bundle ${sha.slice(0, 12)} is not offered here`);
  }
  const bad = pair(new Map([[sha, fake("0.2.1")]]));
  try {
    await bad.nodes.b!.fetch("a", sha);
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /the bundle from a does not match its sha256/);
  }
});

T.run();

// PIECE must keep a bundle-part under the bus's payload limit (bus/codec.ts MAX_PAYLOAD)
const P = suite("transfer: a piece fits in one bus message");
P("base64 of PIECE bytes and its envelope under 64 KiB", async () => {
  const { encode } = await import("../../agent/bus/codec.ts");
  const data = Buffer.alloc(PIECE, 0xff).toString("base64");
  const e = encode({ v: 1, t: "bundle-part", id: "0123456789abcdef", sha: "f".repeat(64), offset: 1 << 24, total: 1 << 25, data } as Message);
  assert.ok(e.length < 64 * 1024, `${e.length} bytes`);
  assert.ok(existsSync(AGENT_EXEC) && readFileSync(AGENT_EXEC, "utf8").startsWith("#!/bin/sh"));
});
P.run();
