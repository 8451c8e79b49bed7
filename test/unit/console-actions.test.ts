// Screen 7's actions: the operator PIN (file mode, constant-time comparison, lock-out) and the
// flow letter -> node -> confirmation -> PIN -> command -> progress -> result.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Command } from "../../agent/bus/messages.ts";
import { ActionFlow, actionsScreen, type ActionDeps } from "../../agent/console/actions.ts";
import type { Model } from "../../agent/console/model.ts";
import { PinGate, pinFile, pinMatches, readPin } from "../../agent/console/pin.ts";
import { lineText } from "../../agent/console/vt100.ts";
import { model } from "./console-fixture.ts";

const P = suite("operator PIN");
let dir = "";
P.before.each(() => void (dir = mkdtempSync(join(tmpdir(), "bollard-pin-"))));
P.after.each(() => rmSync(dir, { recursive: true, force: true }));

P("the file: from BOLLARD_CONSOLE_PIN_FILE or the default; mode 600; 4-64 characters", () => {
  assert.is(pinFile({}), "/etc/bollard/console.pin");
  assert.is(pinFile({ BOLLARD_CONSOLE_PIN_FILE: "/x/pin" }), "/x/pin");
  const f = join(dir, "pin");
  assert.match((readPin(f) as { error: string }).error, /^no operator PIN: .*ENOENT/);
  writeFileSync(f, "4711\n", { mode: 0o644 });
  chmodSync(f, 0o644);
  assert.match((readPin(f) as { error: string }).error, /mode 644: expected 600 \(chmod 600/);
  chmodSync(f, 0o600);
  assert.equal(readPin(f), { ok: true, pin: "4711" });
  writeFileSync(f, "12\n");
  assert.match((readPin(f) as { error: string }).error, /4-64 characters/);
});

P("constant-time comparison of any lengths", () => {
  assert.ok(pinMatches("4711", "4711"));
  assert.not.ok(pinMatches("4712", "4711"));
  assert.not.ok(pinMatches("47111", "4711"));
  assert.not.ok(pinMatches("", ""));
});

P("three wrong PINs lock the actions for a minute", () => {
  const f = join(dir, "pin");
  writeFileSync(f, "4711\n", { mode: 0o600 });
  let now = 1_000_000;
  const g = new PinGate(f, () => now);
  assert.equal(g.check("1"), { ok: false, error: "wrong PIN (2 more tries)" });
  assert.equal(g.check("4711"), { ok: true });
  g.check("1");
  g.check("2");
  assert.equal(g.check("3"), { ok: false, error: "wrong PIN; actions locked for 60 s" });
  assert.match((g.check("4711") as { error: string }).error, /locked for 60 s/);
  now += 60_001;
  assert.is(g.blocked(), null);
  assert.equal(g.check("4711"), { ok: true });
});

P.run();

const A = suite("console actions");
let m: Model;
let sent: Command[];
let flow: ActionFlow;
let blocked: string | null;

function deps(): ActionDeps {
  return {
    model: () => m,
    command: async (cmd) => {
      sent.push(cmd);
      return { status: "ok", epoch: 13 };
    },
    checkPin: (p) => (p === "4711" ? { ok: true } : { ok: false, error: "wrong PIN (2 more tries)" }),
    blocked: () => blocked,
    diag: async (progress) => (progress("collecting versions"), "/var/tmp/bollard-diag-node1.tar.gz"),
    changed: () => undefined,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5))),
  };
}
const keys = (...ks: string[]) => ks.forEach((k) => flow.key(k));
const screen = () => actionsScreen(m, flow.view, 21).map(lineText);
async function settled(): Promise<void> {
  for (let i = 0; i < 200 && flow.view.at === "running"; i++) await new Promise((r) => setTimeout(r, 5));
}

A.before.each(() => {
  m = model();
  sent = [];
  blocked = null;
  flow = new ActionFlow(deps());
});

A("maintenance on: node, confirmation, PIN, command, progress until drained", async () => {
  keys("c");
  assert.ok(flow.modal);
  assert.ok(screen().includes("  2  node2"));
  keys("2");
  assert.match(screen().at(-1)!, /maintenance ON for node2: are you sure\? y\/n/);
  keys("y", "1", "2", "3");
  assert.match(screen().at(-1)!, /operator PIN: \*\*\*_/);
  keys("backspace", "backspace", "backspace", "enter");
  assert.is(flow.view.at, "pin");
  assert.ok(screen().includes("wrong PIN (2 more tries)"));
  keys("4", "7", "1", "1", "enter");
  assert.is(flow.view.at, "running");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(sent, [{ op: "apply", why: "maintenance ON for node2, from the console on node1", flags: { "maint:node2": "on" } }]);
  assert.is(flow.view.at, "running", "node2 still holds redis");
  assert.match(screen().join("\n"), /draining/);
  const v = m.status.body!.view;
  v.committed = { ...v.committed, epoch: 13, flags: { "maint:node2": "on" }, assignments: { mysql: "node1", vip: "node1", redis: "node3" } };
  await settled();
  assert.is(flow.view.at, "done");
  assert.match(screen().join("\n"), /maintenance ON for node2: DONE\n {2}maintenance ON for node2: it holds nothing now \(\d+\.\d s\)/);
});

A("maintenance off and switchover: the commands ha-cmd.ts sends", async () => {
  keys("d", "3", "y", "4", "7", "1", "1", "enter");
  await settled();
  assert.equal(sent[0], { op: "apply", why: "maintenance OFF for node3, from the console on node1", flags: { "maint:node3": null } });
  assert.match(screen().join("\n"), /maintenance OFF for node3: committed in epoch 13/);
  keys("a", "y", "4", "7", "1", "1", "enter");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(sent[1], { op: "apply", why: "switch over MySQL to another node, from the console on node1", flags: { "switchover:mysql": "any" } });
  const v = m.status.body!.view;
  v.committed = { ...v.committed, epoch: 14, assignments: { ...v.committed.assignments, mysql: "node2" } };
  await settled();
  assert.match(screen().join("\n"), /mysql switched over from node1 to node2/);
});

A("x and Esc cancel; the PIN takes any letter; no PIN file: nothing starts", async () => {
  keys("e", "x");
  assert.equal(flow.view, { at: "menu", note: "cancelled" });
  keys("f", "y", "x", "L", "esc");
  assert.equal(flow.view, { at: "menu", note: "cancelled" });
  assert.equal(sent, []);
  blocked = "no operator PIN: /etc/bollard/console.pin: ENOENT";
  keys("c");
  assert.equal(flow.view, { at: "menu", note: blocked });
  assert.not.ok(flow.modal);
});

A("the diagnostics bundle", async () => {
  keys("f", "y", "4", "7", "1", "1", "enter");
  await settled();
  assert.match(screen().join("\n"), /write a diagnostics bundle: DONE\n {2}bundle written: \/var\/tmp\/bollard-diag-node1\.tar\.gz/);
});

A.run();
