// The operator surfaces in the lab (issue 6 §5): `bollard console` driven in tmux at 80x24 with
// TERM=vt100 on a node, read back with capture-pane; a power-off of the MySQL primary's node
// seen on the console (figures: ms from the agent knowing to the screen showing it); an action
// through the menu with the PIN; the console surviving its agent's death; `bollard logs --node`
// and `bollard diag`. Needs root, tmux, and a bundle that has the console command (BOLLARD_BIN,
// default dist/bollard.js). The lab is shared: it refuses to start if a lab is already up, and
// takes down only the lab it brought up.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { controlRequest } from "../../agent/runtime/control.ts";
import { untar } from "../../agent/cli/diag-tar.ts";
import { NODES, REPO, S, healthy, lab, sh, status, until } from "./ha-lab.ts";

const BIN = resolve(REPO, process.env.BOLLARD_BIN ?? "dist/bollard.js");
const TMP = mkdtempSync(join(tmpdir(), "bollard-console-lab-"));
const PIN = join(TMP, "console.pin");
const PIN_VALUE = "2468";
const A = `bollard-console-${process.pid}-a`;
const B = `bollard-console-${process.pid}-b`;
const figures: string[] = [];
let started = false;
let C = "node2"; // the node whose console is driven: one that holds nothing

function why(): string | null {
  if (process.getuid?.() !== 0) return "needs root (the lab)";
  try { execFileSync("tmux", ["-V"]); } catch { return "needs tmux"; }
  if (!existsSync(BIN)) return `no bundle at ${BIN} (make build)`;
  if (!/^ +console /m.test(execFileSync("node", [BIN, "--help"], { encoding: "utf8" }))) return `${BIN} has no console command yet`;
  const ns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").map((l) => l.split(" ")[0]);
  const lab = ["node1", "node2", "node3", "switchA", "switchB", "mgmt", "client"].filter((n) => ns.includes(n));
  if (lab.length || existsSync(S)) return `a lab is already up (${lab.join(", ") || S}): someone else's? not touching it`;
  return null;
}
const skip = why();

const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
const screen = (s: string) => tmux("capture-pane", "-p", "-t", s).replace(/\n$/, "").split("\n");
const text = (s: string) => screen(s).join("\n");
const press = (s: string, ...keys: string[]) => { for (const k of keys) tmux("send-keys", "-t", s, ...(k === "Enter" ? ["Enter"] : ["-l", k])); };
const bollard = (node: string, args: string, ms = 30_000) => sh(node, `node ${BIN} --config ${S}/${node}/bollard.yaml ${args}; echo "exit=$?"`, ms);

function startConsole(session: string, node: string, args = ""): void {
  const cmd = `env TERM=vt100 BOLLARD_CONSOLE_PIN_FILE=${PIN} ip netns exec ${node} node ${BIN} --config ${S}/${node}/bollard.yaml console ${args}; echo CONSOLE-EXIT=$?; sleep 3600`;
  tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd);
}

/** Waits until the pane shows `re`; returns the wall ms it first did. */
async function shows(session: string, re: RegExp, ms: number, what = String(re)): Promise<number> {
  await until(`${what} on the console:\n${text(session)}`, ms, async () => re.test(text(session)), 50);
  return Date.now();
}

const agentStatus = async (node: string) => {
  const r = await controlRequest(`${S}/${node}/state/agent.sock`, "GET", "/status", undefined, 1000);
  return r.body as { view: { leader: string | null; committed: { assignments: Record<string, string>; flags: Record<string, string> } } };
};

const s = suite("console, views and diag in the lab");

s.before(async () => {
  if (skip) return;
  writeFileSync(PIN, `${PIN_VALUE}\n`, { mode: 0o600 });
  started = true;
  await lab("up");
  await until("a healthy MySQL and Redis", 90_000, async () => (await healthy("mysql")) && (await healthy("redis")), 500);
  const st = await status("node1");
  C = NODES.find((n) => !Object.values(st!.assignments).includes(n)) ?? "node2";
});

s.after(async () => {
  for (const x of [A, B]) try { tmux("kill-session", "-t", x); } catch { /* not running */ }
  if (started) await lab("down");
  rmSync(TMP, { recursive: true, force: true });
  if (figures.length) console.log(`figures:\n  ${figures.join("\n  ")}`);
});

s("the console at 80x24, TERM=vt100: three nodes and the leader; every screen fits 80 columns", async () => {
  if (skip) return console.log(`  skipped: ${skip}`);
  startConsole(A, C);
  await shows(A, /node3 +(leader|follower) +up/, 10_000);
  const lines = screen(A);
  assert.is(lines.length, 24);
  const leader = (await status(C))!.leader!;
  assert.match(lines[0]!, new RegExp(`^ (OK|DEGRADED) .*leader ${leader}`), "the top line names the leader");
  for (const n of NODES) assert.ok(lines.some((l) => l.startsWith(`${n}${n === C ? "*" : " "}`)), `${n} shows`);
  for (let k = 1; k <= 7; k++) {
    const out = await bollard(C, `console --once --screen ${k}`);
    const rows = out.split("\n").slice(0, -2);
    assert.is(rows.length, 24, `screen ${k} has 24 rows`);
    for (const r of rows) assert.ok(r.length <= 80 && /^[\x20-\x7e]*$/.test(r), `screen ${k}: ${r.length} columns: ${r}`);
  }
});

s("power off the MySQL primary's node: the new primary and the failover events reach the screen", async () => {
  if (skip) return;
  startConsole(B, C, "--screen 5");
  press(A, "2");
  const p = (await status(C))!.assignments.mysql!;
  await shows(A, new RegExp(`MySQL: primary ${p}, writable`), 5000);
  // what C's agent knows, polled every 50 ms: the new holder, it writable, the leader's done event
  const knows = { primary: 0, writable: 0, event: 0 };
  let np = "";
  const watching = (async () => {
    for (const end = Date.now() + 90_000; Date.now() < end && !(knows.writable && knows.event); await new Promise((r) => setTimeout(r, 50))) {
      const v = (await agentStatus(C).catch(() => null)) as { view: { leader: string | null; committed: { assignments: Record<string, string> } }; ha?: { facts: { mysql?: { writable: boolean } }; peers: Record<string, { mysql?: { writable: boolean } }> } } | null;
      const m = v?.view.committed.assignments.mysql;
      if (!knows.primary && m && m !== p) [knows.primary, np] = [Date.now(), m];
      const f = np === C ? v?.ha?.facts.mysql : v?.ha?.peers[np]?.mysql;
      if (knows.primary && !knows.writable && f?.writable) knows.writable = Date.now();
      if (knows.primary && !knows.event && v?.view.leader) {
        const e = await controlRequest(`${S}/${C}/state/agent.sock`, "GET", `/events?n=20&node=${v.view.leader}`, undefined, 3000).catch(() => null);
        if ((e?.body as { events?: { detail: string }[] })?.events?.some((x) => /^failover of mysql from .* done in \d+ ms/.test(x.detail))) knows.event = Date.now();
      }
    }
  })();
  const t0 = Date.now();
  await lab("power", p, "off");
  const primaryOn = await shows(A, new RegExp(`MySQL: primary (?!${p}[ ,])node\\d`), 90_000, "a new primary");
  const writableOn = await shows(A, new RegExp(`MySQL: primary (?!${p},)node\\d, writable`), 90_000, "the new primary writable");
  const eventOn = await shows(B, /failover +\d+ms failover of mysql from node\d to node\d/, 90_000, "the failover done event");
  await watching;
  assert.ok(knows.primary && knows.writable && knows.event, `the agent learnt it all: ${JSON.stringify(knows)}`);
  const ms = { primary: primaryOn - knows.primary, writable: writableOn - knows.writable, event: eventOn - knows.event };
  figures.push(`power-off of ${p}: ${C}'s agent knew the new primary ${np} ${knows.primary - t0} ms after the power-off, it writable ${knows.writable - t0} ms, the leader's done event ${knows.event - t0} ms`);
  figures.push(`on screen after the agent knew: new primary ${ms.primary} ms, writable ${ms.writable} ms, failover done event ${ms.event} ms`);
  for (const [k, v] of Object.entries(ms)) assert.ok(v <= 2000, `${k} on screen ${v} ms after the agent knew`);
  const tl = text(B);
  assert.match(tl, /step +\d+ms mysql (confirmFence|pickCandidate|commitConfig|applyRelayLog|promote|repointOthers|switchPortal|moveVip)/, `steps with their durations:\n${tl}`);
  tmux("kill-session", "-t", B);
  await lab("power", p, "on");
  await until("three healthy nodes again", 120_000, async () => {
    const st = await status(C);
    return (await healthy("mysql")) && (await healthy("redis")) && st && !Object.keys(st.flags).some((k) => k.startsWith("fenc"));
  }, 500);
});

s("maintenance on and off through the menu, with the PIN", async () => {
  if (skip) return;
  const st = (await status(C))!;
  const members = NODES;
  const target = members.find((n) => n !== C && !Object.values(st.assignments).includes(n)) ?? members.find((n) => n !== C)!;
  const idx = String(members.indexOf(target) + 1);
  press(A, "7", "c", idx, "y");
  await shows(A, /operator PIN: _/, 3000);
  press(A, "1111", "Enter");
  await shows(A, /wrong PIN/, 3000);
  const t0 = Date.now();
  press(A, PIN_VALUE, "Enter");
  await shows(A, new RegExp(`maintenance ON for ${target}: DONE`), 70_000);
  figures.push(`maintenance ON for ${target} through the menu: done in ${Date.now() - t0} ms`);
  assert.is((await agentStatus(C)).view.committed.flags[`maint:${target}`], "on");
  press(A, "d", idx, "y", PIN_VALUE, "Enter");
  await shows(A, new RegExp(`maintenance OFF for ${target}: DONE`), 30_000);
  assert.not.ok(`maint:${target}` in (await agentStatus(C)).view.committed.flags);
});

s("bollard logs --node and bollard diag", async () => {
  if (skip) return;
  const r = C === "node3" ? "node1" : "node3";
  const out = await bollard(C, `logs --node ${r} --json -n 50`);
  assert.match(out, /exit=0\n$/, out);
  const lines = out.split("\n").filter((l) => l.startsWith("{"));
  assert.ok(lines.length > 0, out);
  const theirs = readFileSync(`${S}/${r}/agent.log`, "utf8");
  assert.ok(lines.some((l) => theirs.includes(l)), `${r}'s lines are in ${r}'s agent.log`);
  const bundle = join(TMP, "diag.tar.gz");
  const d = await bollard(C, `diag --out ${bundle}`, 60_000);
  assert.match(d, /exit=0\n$/, d);
  const files = untar(readFileSync(bundle));
  const names = [...files.keys()].map((n) => n.replace(/^[^/]+\//, ""));
  const want = ["config/bollard.yaml", "versions.txt", "status.json", "status.txt", ...NODES.map((n) => `events/${n}.jsonl`), "logs/agent.jsonl", "replication/facts.json", "replication/mysql.txt", "replication/redis.txt", "hw/bmc-sel.txt", "hw/switch-switchA.txt", "hw/switch-switchB.txt"];
  const errors = [...files].find(([k]) => k.endsWith("/ERRORS.txt"))?.[1].toString() ?? "";
  for (const w of want) assert.ok(names.includes(w), `${w} in the bundle: ${names.join(" ")}\nERRORS.txt: ${errors}`);
  for (const svc of ["mysql/error.log", "redis/redis.log", "mosquitto/mosquitto.log", "agent.log"]) assert.ok(names.some((n) => n.endsWith(`/${C}/${svc}`)), `the service log ${svc}`);
  const get = (n: string) => [...files].find(([k]) => k.endsWith(`/${n}`))![1].toString("utf8");
  assert.match(get("replication/mysql.txt"), /SHOW SLAVE STATUS/);
  assert.match(get("replication/redis.txt"), /role:/);
  assert.match(get("hw/switch-switchA.txt"), /swp1/);
  assert.match(get("hw/bmc-sel.txt"), /power: on/);
  const raw = Buffer.concat([...files.values()]).toString("latin1");
  const secretFiles = [`${S}/${C}/bus.pass`, `${S}/${C}/bmc.pass`, `${S}/${C}/join.token`, `${S}/secrets/mysql-bollard.pass`, `${S}/secrets/mysql-repl.pass`, PIN];
  for (const f of secretFiles) {
    const v = readFileSync(f, "utf8").trim();
    assert.not.ok(raw.includes(v), `the secret of ${f} is in the bundle`);
  }
  figures.push(`diag on ${C}: ${names.length} files, ${readFileSync(bundle).length} bytes`);
});

s("the console survives its agent being stopped: agent down, last known state and its age", async () => {
  if (skip) return;
  // the node must hold nothing, or the leader fences it (a power-off would take the console too)
  for (const svc of ["mysql", "redis"]) {
    const st = (await status(C))!;
    if (st.assignments[svc] === C) {
      const other = NODES.find((n) => n !== C)!;
      await bollard(other, `switchover ${svc} --to ${NODES.find((n) => n !== C && n !== other) ?? other}`, 90_000);
    }
  }
  press(A, "2");
  await shows(A, /MySQL: primary node\d, writable/, 5000);
  const sup = readFileSync(`${S}/${C}/run/supervisor.pid`, "utf8").split(" ")[0]!;
  const agent = readFileSync(`${S}/${C}/run/agent.pid`, "utf8").split(" ")[0]!;
  process.kill(Number(sup), "SIGSTOP"); // no restart while we look
  try {
    process.kill(Number(agent), "SIGKILL");
    const t0 = Date.now();
    const seen: string[] = [];
    await until("agent down on the console", 5000, async () => {
      const t = text(A);
      seen.push(`${Date.now() - t0} ${t.split("\n").at(-1)}`);
      return /^AGENT DOWN, last known \d/m.test(t);
    }, 50);
    if (Date.now() - t0 > 1000) console.log(seen.join("\n"));
    figures.push(`agent of ${C} killed: the console says so ${Date.now() - t0} ms later`);
    const first = text(A);
    assert.match(first.split("\n")[0]!, /CRITICAL agent down on /);
    assert.match(first, /MySQL: primary node\d/, "the last known state still shows");
    const ageOf = (t: string) => {
      const m = /last known ([\d.]+)(ms|s) old/.exec(t);
      return m ? Number(m[1]) * (m[2] === "s" ? 1000 : 1) : NaN;
    };
    const age1 = ageOf(first);
    await new Promise((r) => setTimeout(r, 1500));
    const age2 = ageOf(text(A));
    assert.ok(age2 > age1, `its age grows: ${age1} -> ${age2} ms`);
    press(A, "5");
    await shows(A, /Events of all nodes/, 3000);
    assert.not.match(text(A), /CONSOLE-EXIT/);
  } finally {
    process.kill(Number(sup), "SIGCONT");
  }
  await shows(A, /^live/m, 30_000, "live again once the agent is back");
  press(A, "L");
  await shows(A, /CONSOLE-EXIT=10/, 3000, "L exits with 10");
});

s.run();
