// scratch: run one fault under writers and print what happened (not a test)
import { NODES, Writer, ackLastFailover, events, healthy, lab, lostMysql, lostRedis, dataIp, status, until, faultAt } from "./ha-lab.ts";
const args = process.argv.slice(2);
const wait = Number(process.env.WAIT ?? 15000);
const h0 = await until("healthy", 60000, async () => { const m = await healthy("mysql"); const r = await healthy("redis"); return m && r ? m : null; });
const st0 = await status(h0.leader);
if (st0 && await ackLastFailover(h0.leader, st0)) { await new Promise((r) => setTimeout(r, 1000)); const s1 = await status(h0.leader); if (s1) await ackLastFailover(h0.leader, s1); }
console.log("start: leader", h0.leader, "mysql", h0.holder);
const w = new Writer();
w.start({ mysql: true, redis: true, redisWait: !!process.env.RWAIT });
await until("writes", 30000, async () => w.acked("mysql").length > 20 && w.acked("redis").length > 20);
const t0 = new Date(Date.now() - 50).toISOString();
const at = Date.now();
for (const cmd of args.join(" ").replaceAll("HOLDER", h0.holder).split(";")) { console.log("lab", cmd.trim()); console.log((await lab(...cmd.trim().split(/\s+/))).trim()); }
await new Promise((r) => setTimeout(r, wait));
const after = await until("healthy after", 90000, async () => { const m = await healthy("mysql"); const r = await healthy("redis"); return m && r ? { m, r } : null; }, 500).catch((e) => { console.log(String(e)); return null; });
await w.stop();
for (const svc of ["mysql", "redis"] as const) {
  const a = w.acked(svc).filter((x) => x.at >= at - 2000);
  let gap = 0, gapAt = 0;
  for (let i = 1; i < a.length; i++) if (a[i].at - a[i - 1].at > gap) { gap = a[i].at - a[i - 1].at; gapAt = a[i - 1].at - at; }
  console.log(`${svc}: ${w.acked(svc).length} acked, longest gap ${gap} ms starting ${gapAt} ms after the fault`);
}
if (after) {
  console.log("after: mysql", after.m.holder, "redis", after.r.holder, "leader", after.m.leader);
  console.log("lost mysql", (await lostMysql(w, after.m.holder)).length, "lost redis", (await lostRedis(w, after.r.holder, dataIp(after.r.holder))).length);
}
for (const n of NODES) for (const e of events(n).filter((e) => e.ts >= t0 && !/^(commit|propose)$/.test(e.kind))) console.log(n, e.ts.slice(11, 23), `+${Date.parse(e.ts) - at}`, e.kind, e.detail.slice(0, 200));
