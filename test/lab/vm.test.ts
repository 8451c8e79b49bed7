// VMs in the lab (issue 14), the whole appliance with LAB_VMS=1 (test/lab/gen-vm.sh): the lab's
// tiny guests under TCG, their disks mirrored write-blocking to a qemu-storage-daemon on another
// node. In one lab session:
//   - three control-plane VMs (hard anti-affinity) land on three nodes; a fourth is refused, with
//     its alarm; four VMs of a soft group are placed on three nodes, two sharing one;
//   - bad definitions (unknown disk, memory above capacity, a cycle in depends_on) are refused,
//     each error naming the key;
//   - the node holding MySQL, db (depends on mysql) and app (depends on db) is powered off: after
//     the fence proof MySQL fails over, then db runs again on its replica's node, then app, and
//     each guest finds every write it had acknowledged;
//   - a mirror target's node is lost: the alarm, the VM keeps writing, its mirror is rebuilt on
//     the third node and the alarm clears;
//   - maintenance on a node live-migrates its VMs away (no write lost: the guest's counter goes
//     on without a gap), stops the control-plane VM that has nowhere to go; off brings it back.
// Needs root and the lab's packages; builds dist/bollard.js and the guest if missing.
//   flock /work/lab.lock node --import tsx test/lab/vm.test.ts
process.env.LAB_VMS = "1";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { buildGuest, diskCounter } from "./guest/guest.ts";
import { NODES, S, bollard, faultAt, healthy, lab, status, until } from "./ha-lab.ts";
import { ensureBundle, skipReason } from "./helpers.ts";
import { acksAcross, alarmSeen, alarmsOf, boots, checkConsistent, firstAck, gapIn, leaderView, row, rows, serialMark, serialOf, timeline } from "./vm-lab.ts";

const s = suite("VMs in the lab");
const skip = skipReason();
const figures: string[] = [];
const TMP = mkdtempSync(join(tmpdir(), "bollard-vm-lab-"));
let up = false;
const startedAt = new Date().toISOString();
const lastAckOf = (node: string, vm: string) => { const a = serialOf(node, vm).acks; return a.length ? a[a.length - 1]! : 0; };

/** Every VM of `vms` running, each with its replica in sync. */
async function settled(vms: string[], ms = 180_000): Promise<Record<string, { node: string; replica: string }>> {
  return until(`${vms.join(", ")} running with a replica in sync`, ms, async () => {
    const rs = await rows();
    if (!rs) return null;
    const out: Record<string, { node: string; replica: string }> = {};
    for (const vm of vms) {
      const r = rs.find((x) => x.name === vm);
      if (!r || r.state !== "running" || !r.node || !r.inSync || !r.replica) return null;
      out[vm] = { node: r.node, replica: r.replica };
    }
    return out;
  }, 500);
}

/**
 * After a case: each running VM has one QEMU, on its node, the others none; replicas in sync hold
 * what their guests saw acknowledged (idle ones: byte for byte). Retried for a while (a mirror may
 * still be syncing); what stays wrong fails the case.
 */
async function consistent(): Promise<void> {
  let last: string[] = [];
  const ok = await until("VMs, their QEMUs and their replicas consistent", 60_000, async () => { last = await checkConsistent(["db", "app"]); return last.length ? null : true; }, 1000).catch(() => null);
  assert.ok(ok, `after the case: ${last.join("; ")}`);
}

async function powerOn(n: string): Promise<void> {
  await lab("power", n, "on");
  await until(`${n}'s agent answers and its fence flags are cleared`, 90_000, async () => {
    const st = await status(n);
    const l = await leaderView();
    return st && l && !Object.keys(l.s.committed.flags).some((k) => k.endsWith(`:${n}`) && k.startsWith("fenc")) ? true : null;
  }, 500);
}

s.before(async () => {
  if (skip) return;
  const g = buildGuest();
  if ("error" in g) throw new Error(g.error);
  ensureBundle();
  // run under the lab's lock: a lab left by an earlier run is ours to take down
  await lab("down");
  const t0 = Date.now();
  await lab("up");
  up = true;
  figures.push(`up with VMs: ${Date.now() - t0} ms`);
});

/** VM_LAB_KEEP=DIR: the agents' merged events and the writers' serial logs are copied there (before the lab goes down). */
let kept = false;
function keep(): void {
  const dir = process.env.VM_LAB_KEEP;
  if (!dir || kept) return;
  kept = true;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "timeline.txt"), timeline(startedAt).join("\n") + "\n");
  for (const n of NODES) for (const vm of ["db", "app"]) writeFileSync(join(dir, `${n}-${vm}.serial`), serialOf(n, vm).text);
}

s.after(async () => {
  if (up) keep();
  if (up) await lab("down").catch(() => undefined);
  rmSync(TMP, { recursive: true, force: true });
  if (figures.length) console.log(`\nfigures:\n  ${figures.join("\n  ")}`);
});

if (skip) {
  console.log(`vm lab: skipped: ${skip}`);
  s.skip("VMs in the lab", () => {});
} else {
  s("three control-plane VMs land on three nodes; a fourth of the hard group is refused, with its alarm", async () => {
    const t0 = Date.now();
    const cps = await settled(["cp1", "cp2", "cp3", "db", "app"]);
    figures.push(`cp1-cp3, db and app running with replicas in sync: ${Date.now() - t0} ms after up`);
    assert.equal(new Set(["cp1", "cp2", "cp3"].map((v) => cps[v]!.node)).size, 3, JSON.stringify(cps));
    const cp4 = await until("cp4's no-capacity alarm", 30_000, async () => (await alarmsOf("node2")).find((a) => a.id === "vm-no-capacity:cp4") ?? null, 500);
    assert.match(cp4.text, /cp4/);
    assert.is((await row("cp4"))?.state, "unplaced");
    const out = await bollard("node3", "vm list");
    assert.match(out, /cp4\s+unplaced/);
    assert.match(out, /no node can take it/);
    const json = JSON.parse(await bollard("node1", "vm list --json")) as { vms: { name: string; node: string | null }[] };
    assert.is(json.vms.length, 10);
    await consistent();
  });

  s("four VMs of a soft group on three nodes: placed, two sharing one node; then stopped", async () => {
    for (const w of ["web1", "web2", "web3", "web4"]) await bollard("node1", `vm start ${w} --no-wait`);
    const placed = await settled(["web1", "web2", "web3", "web4"], 120_000);
    const per = new Map<string, number>();
    for (const w of Object.values(placed)) per.set(w.node, (per.get(w.node) ?? 0) + 1);
    assert.is(per.size, 3, JSON.stringify(placed));
    assert.equal([...per.values()].sort(), [1, 1, 2]);
    for (const w of ["web1", "web2", "web3", "web4"]) await bollard("node2", `vm stop ${w} --no-wait`);
    await until("web1-web4 stopped", 30_000, async () => ((await rows()) ?? []).filter((r) => r.name.startsWith("web") && r.state === "stopped").length === 4 || null, 500);
    await consistent();
  });

  s("bad definitions are refused, each naming the key", async () => {
    const base = readFileSync(join(S, "node1", "bollard.yaml"), "utf8");
    const bad: [string, string, RegExp][] = [
      ["unknown disk", base.replace("disks: [app-d]", "disks: [app-x]"), /vms\.machines\.app\.disks\[0\]: unknown disk "app-x"/],
      ["memory above capacity", base.replace("db: { memory_mb: 128", "db: { memory_mb: 4096"), /vms\.machines\.db\.memory_mb: 4096 MB is more than any node gives to VMs/],
      ["a cycle in depends_on", base.replace("depends_on: [mysql]", "depends_on: [mysql, app]"), /vms\.machines\.app\.depends_on: a cycle: app -> db -> app/],
    ];
    for (const [what, text, re] of bad) {
      assert.is.not(text, base, what);
      const f = join(TMP, `bad-${what.replace(/\W+/g, "-")}.yaml`);
      writeFileSync(f, text);
      const r = await bollard("node1", `config check ${f}`).then((o) => ({ ok: true, o }), (e: Error) => ({ ok: false, o: e.message }));
      assert.not.ok(r.ok, `${what}: refused`);
      assert.match(r.o, re, what);
    }
  });

  s("power off the node of MySQL, db and app: after the fence proof, MySQL, then db, then app run again; no acknowledged write lost", async () => {
    const m = await until("a healthy MySQL", 60_000, () => healthy("mysql"));
    const h = m.holder;
    for (const vm of ["db", "app"]) {
      if ((await row(vm))?.node === h) continue;
      const t0 = Date.now();
      const before = (await row(vm))!.node!;
      const marks = [serialMark(before, vm), serialMark(h, vm)] as const;
      const booted = boots(h, vm);
      const out = await bollard("node1", `vm migrate ${vm} --to ${h}`, 300_000);
      assert.match(out, new RegExp(`${vm} runs on ${h} now`));
      figures.push(`vm migrate ${vm} ${before} -> ${h} (replica moved first): ${Date.now() - t0} ms`);
      await until(`${vm}'s guest writing on ${h}`, 20_000, async () => acksAcross(vm, before, marks[0], h, marks[1]).onDst >= 3 || null, 200);
      // the migrated guest goes on from where it was: no write lost, none twice
      const x = acksAcross(vm, before, marks[0], h, marks[1]);
      assert.ok(x.onSrc > 0, `${vm} wrote on ${before} while it migrated`);
      assert.is(gapIn(x.acks), null, `${vm}'s counter across the migration ${before} -> ${h}`);
      assert.is(boots(h, vm), booted, `${vm} was live-migrated to ${h}, not booted there`);
    }
    await settled(["db", "app"]);
    const before = Object.fromEntries(NODES.map((n) => [n, boots(n, "db")]));
    const beforeApp = Object.fromEntries(NODES.map((n) => [n, boots(n, "app")]));
    const since = new Date().toISOString();
    await lab("power", h, "off");
    try {
      await failedOver(h, since, before, beforeApp);
    } finally {
      await powerOn(h);
    }
    // cp1-cp3: the one of the lost node waited (hard anti-affinity: no other node could take it) and runs there again
    await settled(["cp1", "cp2", "cp3", "db", "app"]);
    await consistent();
  });

  /** After `h` was powered off: db, then app, run again elsewhere after the fence proof and once MySQL is writable, each with every acknowledged write. */
  async function failedOver(h: string, since: string, before: Record<string, number>, beforeApp: Record<string, number>): Promise<void> {
    const fault = faultAt(since, new RegExp(`${h} power off`))!;
    const others = NODES.filter((n) => n !== h);
    const [db, app] = await Promise.all([firstAck("db", others, before, 120_000), firstAck("app", others, beforeApp, 120_000)]);
    assert.ok(db && app, "db and app write again on another node");
    const tl = timeline(since);
    const at = (re: RegExp) => tl.findIndex((l) => re.test(l));
    const fenced = at(new RegExp(`fence.*${h}.*(CONFIRMED|fenced)`));
    // db depends on mysql: it may start once MySQL is writable again, not before: the new
    // primary's own "promote done" (the leader's step line may come after it learns of it)
    const mysql = at(/lrm mysql promote done|step failover mysql step promote done/);
    const dbStart = at(/vm-failover db: .* starting it on/);
    const appStart = at(/vm-failover app: .* starting it on/);
    const order = tl.filter((l) => /fence|failover|vm-failover|vm-placement/.test(l)).slice(0, 30).join("\n");
    assert.ok(fenced >= 0 && mysql >= 0 && dbStart >= 0 && appStart >= 0, `the timeline has the fence, the MySQL failover and both restarts:\n${order}`);
    assert.ok(fenced < dbStart && mysql < dbStart && dbStart < appStart, `fence proof, then MySQL, then db, then app:\n${order}`);
    for (const [vm, w] of [["db", db!], ["app", app!]] as const) {
      const acked = lastAckOf(h, vm);
      const found = serialOf(w.node, vm).found.at(-1)!;
      figures.push(`${vm}: power-off of ${h} -> first acknowledged write on ${w.node} ${w.ackAt - fault.start} ms (guest boot ${w.ackAt - w.bootAt} ms of it); last acknowledged on ${h} ${acked}, found ${found}`);
      assert.ok(found >= acked, `${vm}: the guest on ${w.node} found ${found}, ${acked} was acknowledged on ${h}`);
    }
  }

  s("a mirror target's node is lost: alarm, the VM keeps writing, its mirror is rebuilt on the third node", async () => {
    const { app } = await settled(["app"]);
    const r = app!.replica;
    const third = NODES.find((n) => n !== app!.node && n !== r)!;
    const since = new Date().toISOString();
    const n0 = serialOf(app!.node, "app").acks.length;
    await lab("power", r, "off");
    try {
      await rebuiltElsewhere(app!, r, third, since, n0);
    } finally {
      await powerOn(r);
    }
    await consistent();
  });

  async function rebuiltElsewhere(app: { node: string; replica: string }, r: string, third: string, since: string, n0: number): Promise<void> {
    // the rebuild may take under a second: the alarm may be raised and cleared between two polls
    const alarm = await until("the mirror-degraded alarm of app", 60_000, () => alarmSeen(app!.node, "vm-mirror-degraded:app"), 300);
    assert.match(alarm.text, /app runs without a replica in sync/);
    const rebuilt = await until(`app's replica rebuilt on ${third}`, 90_000, async () => { const x = await row("app"); return x?.replica === third && x.inSync ? x : null; }, 500);
    assert.is(rebuilt.node, app!.node, "app kept running where it was");
    await until("the guest writing on (20 more writes)", 30_000, async () => serialOf(app.node, "app").acks.length > n0 + 20 || null, 200);
    const acks = serialOf(app!.node, "app").acks.slice(n0);
    assert.equal(acks, acks.map((_, i) => acks[0]! + i), "no gap in the guest's counter");
    await until("the alarm cleared", 60_000, async () => !(await alarmsOf(app!.node)).some((a) => a.id === "vm-mirror-degraded:app") || null, 500);
    const t = timeline(since);
    figures.push(`mirror target ${r} lost: ${t.find((l) => /replica on .* outdated/.test(l))?.slice(0, 12) ?? "?"} outdated, ${t.find((l) => /in sync with/.test(l))?.slice(0, 12) ?? "?"} in sync with ${third} (power-off ${since.slice(11, 23)})`);
  }

  s("the mirror target lost again: the mirror goes back to the node that returned, incrementally (dirty bitmap); the guest's counter intact", async () => {
    const { app } = await settled(["app"]);
    const r = app!.replica;
    const back = NODES.find((n) => n !== app!.node && n !== r)!;
    const since = new Date().toISOString();
    const n0 = serialOf(app!.node, "app").acks.length;
    await lab("power", r, "off");
    try {
      const x = await until(`app's replica rebuilt on ${back}`, 90_000, async () => { const y = await row("app"); return y?.replica === back && y.inSync ? y : null; }, 500);
      assert.is(x.node, app!.node, "app kept running where it was");
    } finally {
      await powerOn(r);
    }
    const t = timeline(since);
    const line = t.find((l) => /app/.test(l) && /mirroring to/.test(l) && l.includes(back));
    assert.ok(line, `the mirror to ${back} in the events:\n${t.filter((l) => /app/.test(l)).slice(0, 20).join("\n")}`);
    assert.match(line!, /incremental rebuild: .* only the \d+ bytes written since/);
    figures.push(`mirror back to ${back} after ${r} was lost: ${line!.replace(/^.*incremental rebuild: /, "").slice(0, 120)}`);
    await until("the guest writing on (20 more writes)", 30_000, async () => serialOf(app!.node, "app").acks.length > n0 + 20 || null, 200);
    const acks = serialOf(app!.node, "app").acks.slice(n0);
    assert.is(gapIn(acks), null, "no gap in the guest's counter");
    await consistent();
  });

  s("VM backup: full, more writes, incremental, more writes; stopped and restored: its disk holds the counter as of the backup", async () => {
    const { app } = await settled(["app"]);
    const h = app!.node;
    const full = await bollard(h, "vm backup app --full");
    assert.match(full, /full backup app-\S+ of app/);
    assert.match(full, /crash-consistent: no guest agent/);
    const n0 = serialOf(h, "app").acks.length;
    await until("more writes", 20_000, async () => serialOf(h, "app").acks.length > n0 + 20 || null, 200);
    const before = lastAckOf(h, "app");
    const inc = JSON.parse(await bollard(h, "vm backup app --json")) as { manifest: { id: string; parent: string | null; bytes: number; storedOn: string }; ms: number };
    const after = lastAckOf(h, "app");
    assert.ok(inc.manifest.parent, "incremental");
    assert.is.not(inc.manifest.storedOn, h, "kept on another node");
    figures.push(`VM backup of app (32 MB): ${full.split("\n")[0]!.replace(/^.*: /, "")}; incremental ${inc.manifest.bytes} bytes in ${inc.ms} ms`);
    const n1 = serialOf(h, "app").acks.length;
    await until("writes after the backup", 20_000, async () => serialOf(h, "app").acks.length > n1 + 20 || null, 200);
    await bollard("node1", "vm stop app");
    const last = lastAckOf(h, "app");
    const refused = await bollard(h, `vm restore app --backup ${inc.manifest.id}`).then(() => "", (e: Error) => e.message);
    assert.match(refused, /needs its name typed: --confirm app/);
    const out = await bollard(h, `vm restore app --backup ${inc.manifest.id} --confirm app`);
    assert.match(out, /restored app-\S+ \(2 backups/);
    const c = diskCounter(join(S, h, "vms", "app", "app-d.raw"));
    assert.ok(c >= before && c <= after + 1 && c < last, `restored counter ${c}: acknowledged ${before}..${after} around the backup, ${last} at the stop`);
    const booted = boots(h, "app");
    await bollard("node1", "vm start app");
    await until("app booted from the restored disk", 60_000, async () => serialOf(h, "app").found.length > booted || null, 500);
    const found = serialOf(h, "app").found.at(-1)!;
    assert.is(found, c, "the guest finds the restored counter");
    await settled(["app"]);
  });

  s("maintenance on: its VMs live-migrate away (no write lost), a control-plane VM with nowhere to go stops; off: it runs there again", async () => {
    const { app } = await settled(["app", "cp1", "cp2", "cp3"]);
    const m = app!.node;
    const bootsBefore = Object.fromEntries(NODES.map((n) => [n, boots(n, "app")]));
    const cp = (await rows())!.find((x) => x.name.startsWith("cp") && x.node === m && x.state === "running")!;
    const marks = Object.fromEntries(NODES.map((n) => [n, serialMark(n, "app")]));
    await bollard("node1", `maintenance ${m} on`);
    const moved = await until("app migrated off the node in maintenance", 120_000, async () => { const x = await row("app"); return x && x.node !== m && x.state === "running" ? x : null; }, 500);
    await until(`${cp.name} stopped on ${m} with its no-capacity alarm`, 60_000, async () => {
      const x = await row(cp.name);
      return x?.state === "stopped" && (await alarmsOf("node1")).some((a) => a.id === `vm-no-capacity:${cp.name}`) ? x : null;
    }, 500);
    const to = moved.node!;
    await until(`app writing on ${to}`, 20_000, async () => acksAcross("app", m, marks[m]!, to, marks[to]!).onDst >= 3 || null, 200);
    const x = acksAcross("app", m, marks[m]!, to, marks[to]!);
    assert.ok(x.onSrc > 0, `app wrote on ${m} before it moved`);
    assert.is(gapIn(x.acks), null, `app's counter across the live migration ${m} -> ${to}`);
    assert.is((await row("app"))?.node, to, "app was live-migrated once, not restarted");
    assert.is(boots(to, "app"), bootsBefore[to], `app did not boot again on ${to}`);
    await bollard("node1", `maintenance ${m} off`);
    await until(`${cp.name} running on ${m} again`, 90_000, async () => { const x = await row(cp.name); return x?.state === "running" && x.node === m ? x : null; }, 500);
    await until(`${cp.name}'s no-capacity alarm cleared`, 30_000, async () => !(await alarmsOf("node1")).some((a) => a.id === `vm-no-capacity:${cp.name}`) || null, 500);
    await consistent();
  });

  s("down leaves nothing behind", async () => {
    keep();
    await lab("down");
    up = false;
    await lab("check-clean");
  });
}

s.run();
