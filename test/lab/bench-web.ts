// What the web console costs an idle agent with nobody watching (issue 24 "Figures"), in one
// lab run: the same node's agent (a replica that neither leads nor holds a primary) measured
// over SECONDS with web.enabled, then killed, booted again with web.enabled false, and
// measured again. RSS (mean of 1 s samples of VmRSS) and CPU (utime+stime+cutime+cstime over
// the span) from /proc, as bench-idle.ts reads them. Prints figures; asserts nothing.
//   make bench-web [SECONDS_IDLE=30]
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NODES, S, healthy, lab, status, until } from "./ha-lab.ts";

const SECONDS = Number(process.env.SECONDS_IDLE ?? 30);
const SETTLE_MS = 20_000;
const CLK_TCK = 100;

function agentPid(n: string): number {
  return Number(readFileSync(join(S, n, "run", "agent.pid"), "utf8").trim().split(/\s+/)[0]);
}

function ticks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

async function measure(pid: number): Promise<{ rssMb: number; cpuPct: number }> {
  const t0 = ticks(pid);
  const w0 = performance.now();
  const rss: number[] = [];
  for (let i = 0; i < SECONDS; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(rssKb(pid));
  }
  const cpu = (ticks(pid) - t0) / CLK_TCK / ((performance.now() - w0) / 1000);
  return { rssMb: rss.reduce((a, b) => a + b, 0) / rss.length / 1024, cpuPct: cpu * 100 };
}

// BENCH_LAB_UP=0: measure the lab that is up (and leave it up)
const own = process.env.BENCH_LAB_UP !== "0";
if (own) {
  await lab("down");
  await lab("up");
}
const h = await until("a healthy MySQL", 120_000, () => healthy("mysql"), 500);
await until("a healthy Redis", 60_000, () => healthy("redis"), 500);
const x = NODES.find((n) => n !== h.holder && n !== h.leader)!;
const r = await until("redis holder", 10_000, () => healthy("redis"), 500);
console.log(`measuring ${x} (leader ${h.leader}, mysql on ${h.holder}, redis on ${r.holder}), ${SECONDS} s each`);
await new Promise((res) => setTimeout(res, SETTLE_MS));
const on = await measure(agentPid(x));
// the agent alone restarted with the console off (its supervisor restarts it, Restart=always):
// `lab kill` took the node's MariaDB with it, and a replica killed mid-relay-log stayed out of
// replication on 2026-12-06 (its relay log not replayed), which is no idle agent to measure
const cfg = join(S, x, "bollard.yaml");
writeFileSync(cfg, readFileSync(cfg, "utf8").replace(/^web:\n  enabled: true/m, "web:\n  enabled: false"));
const was = agentPid(x);
process.kill(was, "SIGTERM");
await until(`${x}'s agent restarted`, 60_000, async () => { try { const p = agentPid(x); return p !== was ? p : null; } catch { return null; } }, 500);
await until(`${x} back`, 120_000, async () => (await status(x))?.quorum === true && (await healthy("mysql")) !== null, 500);
await new Promise((res) => setTimeout(res, SETTLE_MS));
const off = await measure(agentPid(x));
console.log("figures:");
console.log(`  idle agent on ${x}, web console on, nobody watching: ${on.rssMb.toFixed(1)} MB RSS, ${on.cpuPct.toFixed(2)} % of a core`);
console.log(`  idle agent on ${x}, web console off:                  ${off.rssMb.toFixed(1)} MB RSS, ${off.cpuPct.toFixed(2)} % of a core`);
console.log(`  difference: ${(on.rssMb - off.rssMb).toFixed(1)} MB RSS, ${(on.cpuPct - off.cpuPct).toFixed(2)} points of CPU`);
if (own) await lab("down");
