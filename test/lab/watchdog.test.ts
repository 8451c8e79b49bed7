// The lab's supervisor, systemd's stand-in (DESIGN §5): a stalled agent gets its node reset
// as a hardware watchdog would, and an agent that exits is restarted. Runs the lab with
// test/lab/fake-agent (speaks only sd_notify), so it does not depend on the real agent.
// Needs root and the lab's packages; skipped otherwise.
//   node --import tsx test/lab/watchdog.test.ts
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const LAB = fileURLToPath(new URL("./lab", import.meta.url));
const FAKE = fileURLToPath(new URL("./fake-agent", import.meta.url));
const S = process.env.LAB_STATE ?? "/run/bollard-lab";
const ENV: NodeJS.ProcessEnv = { ...process.env, LAB_STATE: S, LAB_AGENT_CMD: FAKE, LAB_WATCHDOG_SEC: "3" };
delete ENV.LAB_NO_AGENT;

const lab = (...args: string[]) => {
  const t0 = performance.now();
  const r = spawnSync(LAB, args, { env: ENV, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? ""), ms: performance.now() - t0 };
};
const ok = (r: { code: number; out: string }, what: string) => assert.is(r.code, 0, `${what}: exit ${r.code}\n${r.out}`);
const read = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : "");
const agentPid = (n: string) => Number(read(`${S}/${n}/run/agent.pid`).split(" ")[0]);
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) assert.unreachable(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const W = suite("lab watchdog");
const skip = process.getuid?.() !== 0 ? "needs root (network namespaces)"
  : spawnSync("sh", ["-c", "command -v ipmi_sim && command -v snmpd && command -v mariadbd"]).status !== 0 ? "needs the lab's packages" : null;
let upDone = false;
W.after(() => { if (upDone) lab("down"); });

if (skip) {
  console.log(`lab watchdog: skipped: ${skip}`);
  W.skip("supervisor and watchdog", () => {});
} else {
  W("up with the fake agent under the supervisor", async () => {
    assert.is(lab("check-clean").code, 0, "a lab (or its leftovers) is already on this machine; run test/lab/lab down first");
    upDone = true;
    ok(lab("up"), "lab up");
    for (const n of ["node1", "node2", "node3"]) {
      await until(`${n}: READY=1`, () => /READY=1 from pid \d+/.test(read(`${S}/${n}/supervisor.log`)), 5000);
    }
  });

  W("an agent that exits is restarted (Restart=always)", async () => {
    const pid = agentPid("node3");
    process.kill(pid, "SIGKILL");
    await until("a new agent on node3", () => agentPid("node3") !== pid && alive(agentPid("node3")), 5000);
    assert.match(read(`${S}/node3/supervisor.log`), new RegExp(`agent pid ${pid} exited with signal 9`));
  });

  W("a stalled agent gets its node reset, as a hardware watchdog would", async () => {
    const pid = agentPid("node2");
    const stall = spawnSync(LAB, ["stall", "node2", "6"], { env: ENV, encoding: "utf8", timeout: 20_000 });
    assert.is(stall.status, 0, stall.stderr);
    assert.match(read(`${S}/events.log`), /node2 reset by watchdog/);
    assert.match(read(`${S}/node2/supervisor.log`), /watchdog: no WATCHDOG=1 for 3\.\d+ s: resetting node2/);
    assert.match(stall.stdout, /is gone/, "the stalled agent did not survive the reset");
    await until("node2's new agent READY", () => agentPid("node2") !== pid && /READY=1/.test(read(`${S}/node2/supervisor.log`).split("watchdog:").pop()!), 5000);
    const ev = read(`${S}/events.log`);
    const at = (re: RegExp) => Date.parse(re.exec(ev)?.[1] ?? "");
    const stopped = at(/^(\S+) node2 agent \d+ stopped/m);
    const reset = at(/^(\S+) node2 reset by watchdog/m);
    const sup = read(`${S}/node2/supervisor.log`).split("\n");
    const clock = (l: string | undefined) => { const m = /^(\d+):(\d+):(\d+\.\d+)/.exec(l ?? ""); return m ? (+m[1]! * 60 + +m[2]!) * 60 + +m[3]! : NaN; };
    const fired = sup.findIndex((l) => l.includes("watchdog: no WATCHDOG=1"));
    const ready = sup.findIndex((l, i) => i > fired && l.includes("READY=1"));
    console.log(`  figure: SIGSTOP to node reset ${((reset - stopped) / 1000).toFixed(2)} s (WatchdogSec 3 s, pings every 1.5 s);` +
      ` reset to the new agent's READY=1 ${(clock(sup[ready]) - clock(sup[fired])).toFixed(2)} s`);
    const redis = spawnSync("ip", ["netns", "exec", "node1", "redis-cli", "-h", "198.18.0.12", "ping"], { encoding: "utf8" });
    assert.is(redis.stdout.trim(), "PONG", "node2's services are back after the reset");
  });

  W("down leaves nothing", () => {
    ok(lab("down"), "lab down");
    upDone = false;
    ok(lab("check-clean"), "check-clean");
  });
}

W.run();
