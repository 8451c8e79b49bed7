// The cluster in the lab, with the real agent (issue 3 §5): three nodes form one cluster; a
// partitioned node loses quorum and says so while the majority keeps or elects a leader; a
// healed node rejoins without a needless leader change; a BMC power-off really stops a node
// and power-on brings it back; a switch down leaves every node reachable through its bond;
// `down` leaves nothing behind. Then the same lab without root: the loopback mode.
// The agents run without the data-path sections (LAB_NO_HA=1): these are the cluster's
// cases; test/lab/failover.test.ts has the HA ones.
// Needs root and the lab's packages (the loopback suite: mosquitto only); builds
// dist/bollard.js if it is missing. Prints figures: lab up to three nodes joined, and a
// leader's power-off to a new leader.
//   node --import tsx test/lab/cluster.test.ts
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BUNDLE, LAB, NODES, agentLog, agreedLeader, describe, ensureBundle, figure, figures, findLog, lab, labContext, labEvents, labOk,
  msBetween, nowIso, nsPids, ping, read, run, skipReason, sleep, status, statusFast, statuses, until, waitAgreed,
  type Lab, type View,
} from "./helpers.ts";

const l = labContext({ env: { LAB_NO_HA: "1" } });
const DATA: Record<string, string> = { node1: "198.18.0.11", node2: "198.18.0.12", node3: "198.18.0.13" };
const others = (n: string) => NODES.filter((m) => m !== n);
const skip = skipReason();
let up = false;

/** Every node's view over the control sockets, once all three agree on a leader whose own-term config is committed. */
async function joinedFast(lab: Lab): Promise<{ leader: string; term: number } | null> {
  const views = await Promise.all(NODES.map((n) => statusFast(lab, n)));
  if (views.some((v) => !v)) return null;
  const st = Object.fromEntries(NODES.map((n, i) => [n, { live: true, view: views[i]! }]));
  const a = agreedLeader(st, NODES);
  return a && views.every((v) => v!.committed.epoch >= 1 && v!.committed.term === a.term) ? a : null;
}

/** A follower of `leader` (the lowest-numbered). */
const follower = (leader: string) => others(leader)[0]!;

function assertFounders(lab: Lab): boolean {
  let founders = 0;
  for (const n of NODES) {
    const formed = findLog(lab, n, /forming cluster lab as a founder/);
    const joined = findLog(lab, n, /joined cluster lab: admitted by/);
    assert.ok(formed || joined, `${n} neither formed the cluster as a founder nor joined it:\n${agentLog(lab, n).slice(0, 15).map((j) => j.msg).join("\n")}`);
    if (formed) founders++;
  }
  return founders === NODES.length;
}

// ---------------------------------------------------------------------------------------
const Form = suite("lab cluster: formation");

Form.before(() => {
  if (!skip) ensureBundle();
});

if (skip) {
  console.log(`lab cluster: skipped: ${skip}`);
  Form.skip("the cluster in the lab", () => {});
} else {
  Form("starts from a clean machine", () => {
    const r = lab(l, "check-clean");
    assert.is(r.code, 0, `a lab (or its leftovers) is already on this machine; run test/lab/lab down first\n${r.err}`);
  });

  Form("up: the three nodes form one cluster with exactly one leader, all agree, all have quorum", async () => {
    const t0 = performance.now();
    const r = labOk(l, "up");
    up = true;
    const { value, ms } = await until("three nodes joined (one leader, own-term config committed)", 60_000, () => joinedFast(l), 100);
    const total = (performance.now() - t0) / 1000;
    const formed = /cluster formed \(([^)]*)\) (\d+) ms after the nodes booted/.exec(r.out);
    figure(`lab up to 3 nodes joined: ${total.toFixed(1)} s (lab up returned after ${(r.ms / 1000).toFixed(1)} s` +
      `${formed ? `, agents agreed ${(Number(formed[2]) / 1000).toFixed(1)} s after the nodes booted: the founders' 3 s wait for a leader, election, first commit` : ""};` +
      ` seen here ${(ms / 1000).toFixed(1)} s after up returned)`);
    const { leader, term, st } = await waitAgreed(l, NODES, 10_000);
    assert.is(leader, value.leader, "bollard status --json names the leader the control sockets named");
    assert.is(Object.values(st).filter((s) => s.view!.role === "leader").length, 1, "exactly one leader");
    for (const n of NODES) {
      const v = st[n]!.view!;
      assert.ok(v.quorum && v.member && !v.selfFenced, `${n}: quorum, member, not self-fenced: ${describe(st)}`);
      assert.is(v.term, term);
      assert.equal(v.committed.members.map((m) => m.name), [...NODES], `${n}: members`);
    }
    if (assertFounders(l)) {
      // The lab wrote the brokers' users and ACL exactly as the agent renders them for the
      // founders. Once the cluster has formed, each founder rotates its token-derived password
      // to a random one (docs/bus.md "Password rotation"): the register then holds a hash
      // for each, every broker's passwd has those, and the ACL is the lab's still.
      const t1 = performance.now();
      const { value: rotated } = await until("every founder's bus password rotated", 20_000, async () => {
        const v = await statusFast(l, leader);
        return v && v.committed.members.every((m) => m.pass) ? v.committed : null;
      }, 200);
      figure(`founders' bus passwords rotated ${((performance.now() - t1) / 1000).toFixed(1)} s after the cluster was seen formed (config epoch ${rotated.epoch})`);
      const joinLine = (t: string) => t.split("\n").find((x) => x.startsWith("join:"));
      for (const n of NODES) {
        await until(`${n}'s broker has every new hash`, 10_000, async () =>
          rotated.members.every((m) => read(`${l.S}/${n}/mosquitto/passwd`).split("\n").includes(`${m.name}:${m.pass}`)), 200);
        assert.is(joinLine(read(`${l.S}/${n}/mosquitto/passwd`)), joinLine(read(`${l.S}/secrets/mosquitto.passwd`)), `${n}'s broker keeps the joiners' login`);
        assert.is(read(`${l.S}/${n}/mosquitto/acl`), read(`${l.S}/secrets/mosquitto.acl`), `${n}'s broker acl is the lab's`);
        assert.ok(findLog(l, n, /^bus password rotated at config epoch \d+/), `${n} logs in with its own password`);
        // the token-derived password (the lab's bus.pass) no longer logs in anywhere, even with a certificate
        // (-p: with TLS options mosquitto_pub would otherwise dial 8883)
        const tls = ["-p", "1883", "--cafile", `${l.S}/${n}/tls/ca.crt`, "--cert", `${l.S}/${n}/tls/node.crt`, "--key", `${l.S}/${n}/tls/node.key`];
        for (const b of NODES) {
          const r = run("ip", ["netns", "exec", n, "mosquitto_pub", "-h", DATA[b]!, ...tls, "-u", n, "-P", read(`${l.S}/${n}/bus.pass`).trim(), "-q", "1", "-t", `bollard/v1/lab/${n}/x`, "-m", "x"]);
          assert.is.not(r.code, 0, `${n}'s derived password refused by ${b}'s broker`);
          assert.match(r.err, /not authori[sz]ed|bad user ?name or password/i, `refused by ${b}'s broker for the password (not unreachable): ${r.err}`);
        }
      }
    }
  });
}
Form.run();

// ---------------------------------------------------------------------------------------
const Part = suite("lab cluster: partition and heal");

if (!skip) {
  Part("a partitioned follower loses quorum and says so (self-fenced after 3 s); the majority keeps its leader", async () => {
    const { leader, term } = await waitAgreed(l, NODES, 20_000);
    const f = follower(leader);
    const t0 = nowIso();
    labOk(l, "partition", f);
    await until(`${f} says it has no quorum`, 10_000, async () => (await status(l, f)).view?.quorum === false);
    const fenced = await until(`${f} says it is self-fenced`, 10_000, async () => {
      const s = await status(l, f);
      return s.view?.selfFenced ? s.view : null;
    });
    assert.is(fenced.value.quorum, false);
    const lost = findLog(l, f, /^quorum lost$/, t0);
    const sf = findLog(l, f, /^self-fenced: no majority contact for (\d+) ms/, t0);
    assert.ok(lost && sf, `${f}'s log says it lost quorum and self-fenced`);
    const after = Number(/for (\d+) ms/.exec(sf!.msg)![1]);
    assert.ok(after >= 3000, `self-fenced only after quorum_loss_ms (3000): ${after} ms`);
    console.log(`  ${f}: quorum lost ${msBetween(t0, lost!.ts)} ms after the partition, self-fenced ${msBetween(lost!.ts, sf!.ts)} ms later`);
    const maj = await waitAgreed(l, others(f), 10_000);
    assert.is(maj.leader, leader, "the majority keeps its leader");
    assert.is(maj.term, term, "in the same term");
  });

  Part("after heal, the follower rejoins without a leader change (same leader, same term)", async () => {
    const st = await statuses(l);
    const leaderNow = Object.values(st).find((s) => s.view?.role === "leader")?.view;
    assert.ok(leaderNow, `a leader before the heal: ${describe(st)}`);
    const f = follower(leaderNow!.node);
    const t0 = nowIso();
    labOk(l, "heal");
    const { leader, term, ms } = await waitAgreed(l, NODES, 20_000);
    console.log(`  ${f} back with quorum and following ${leader} ${(ms / 1000).toFixed(1)} s after heal`);
    assert.is(leader, leaderNow!.node, "no leader change");
    assert.is(term, leaderNow!.term, "no new term");
    assert.ok(findLog(l, f, /self-fence lifted: quorum regained/, t0), `${f} lifted its self-fence`);
    for (const n of NODES) assert.not.ok(findLog(l, n, /=> candidate|=> leader/, t0), `${n} started no election after the heal`);
  });

  Part("a partitioned leader: the majority elects a new leader; after heal the old one follows it", async () => {
    const old = await waitAgreed(l, NODES, 20_000);
    const t0 = nowIso();
    labOk(l, "isolate-leader");
    assert.ok((await status(l, old.leader)).live, "the isolated leader still answers its operator");
    const maj = await waitAgreed(l, others(old.leader), 15_000);
    assert.is.not(maj.leader, old.leader, "a new leader among the majority");
    assert.ok(maj.term > old.term, "in a later term");
    const { value: v } = await until(`${old.leader} steps down and says it has no quorum`, 10_000, async () => {
      const s = await status(l, old.leader);
      return s.view && s.view.role !== "leader" && !s.view.quorum ? s.view : null;
    });
    assert.ok(findLog(l, old.leader, /status change leader => follower \(lease not renewed/, t0), `${old.leader} stepped down for want of a lease`);
    console.log(`  ${old.leader} isolated: ${maj.leader} elected in term ${maj.term}; ${old.leader} is ${v.role}, quorum ${v.quorum}`);
    const t1 = nowIso();
    labOk(l, "heal");
    const back = await waitAgreed(l, NODES, 20_000);
    assert.is(back.leader, maj.leader, "the new leader stays after the heal");
    assert.is(back.term, maj.term, "no new term after the heal");
    for (const n of NODES) assert.not.ok(findLog(l, n, /=> candidate|=> leader/, t1), `${n} started no election after the heal`);
  });
}
Part.run();

// ---------------------------------------------------------------------------------------
const Power = suite("lab cluster: power");

async function powerOffLeader(round: number): Promise<number> {
  const old = await waitAgreed(l, NODES, 30_000);
  const t0 = nowIso();
  const tPoll = performance.now();
  labOk(l, "power", old.leader, "off");
  const survivors = others(old.leader);
  const { value: nl } = await until(`a new leader among ${survivors.join(", ")}`, 15_000, async () => {
    const vs = await Promise.all(survivors.map((n) => statusFast(l, n)));
    return vs.find((v) => v && v.role === "leader" && v.term > old.term) ?? null;
  }, 50);
  const polled = performance.now() - tPoll;
  const won = findLog(l, nl.node, /^status change candidate => leader \(elected in term \d+ by [^;]+; lease usable in (\d+) ms\)/, t0);
  assert.ok(won, `${nl.node}'s log has its election`);
  const elected = msBetween(t0, won!.ts);
  const usable = Number(/lease usable in (\d+) ms/.exec(won!.msg)![1]);
  const off = labEvents(l).find((e) => e.ts >= t0 && e.what.startsWith(`${old.leader} power off by bmc`));
  figure(`leader power-off to new leader (round ${round}): ${(elected / 1000).toFixed(2)} s from ipmitool power off of ${old.leader}` +
    ` to ${nl.node} elected (term ${nl.term}; processes gone at +${off ? msBetween(t0, off.ts) : "?"} ms; lease usable ${usable} ms later;` +
    ` seen by polling at ${(polled / 1000).toFixed(2)} s)`);
  await waitAgreed(l, survivors, 10_000);
  labOk(l, "power", old.leader, "on");
  const back = await waitAgreed(l, NODES, 40_000);
  assert.is(back.leader, nl.node, `${old.leader} rejoins and follows ${nl.node}`);
  return elected;
}

if (!skip) {
  Power("power off a follower: its processes are gone and its address silent; the others keep their leader", async () => {
    const { leader, term } = await waitAgreed(l, NODES, 20_000);
    const f = follower(leader);
    assert.ok(nsPids(f).length > 0, `${f} runs processes`);
    labOk(l, "power", f, "off");
    assert.equal(nsPids(f), [], `no process left in ${f}`);
    assert.not.ok(ping(others(f)[0]!, DATA[f]!), `${f}'s address no longer answers`);
    assert.match(lab(l, "power", f, "status").out, /Chassis Power is off/);
    const st = await status(l, f);
    assert.is(st.live, false, `${f}'s agent does not answer (bollard status falls back to its last status file)`);
    const maj = await waitAgreed(l, others(f), 10_000);
    assert.equal([maj.leader, maj.term], [leader, term], "the others keep their leader in the same term");
  });

  Power("power on: the node boots and rejoins, following the leader", async () => {
    const st = await statuses(l);
    const off = NODES.find((n) => !st[n]!.live)!;
    const leader = Object.values(st).find((s) => s.live && s.view?.role === "leader")!.view!;
    const t0 = performance.now();
    labOk(l, "power", off, "on");
    const back = await waitAgreed(l, NODES, 40_000);
    console.log(`  ${off} powered on: following ${back.leader} after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal([back.leader, back.term], [leader.node, leader.term], "it follows the leader; no election");
    assert.ok(ping(others(off)[0]!, DATA[off]!), `${off}'s address answers again`);
  });

  Power("power off the leader's node: a new leader (figure, target 3 s); on: the old one rejoins as a follower", async () => {
    const times: number[] = [];
    for (let round = 1; round <= 3; round++) times.push(await powerOffLeader(round));
    times.sort((a, b) => a - b);
    figure(`leader power-off to new leader over ${times.length} rounds: min ${(times[0]! / 1000).toFixed(2)} s,` +
      ` median ${(times[1]! / 1000).toFixed(2)} s, max ${(times[times.length - 1]! / 1000).toFixed(2)} s (target 3 s)`);
  });
}
Power.run();

// ---------------------------------------------------------------------------------------
const Switch = suite("lab cluster: switch");

if (!skip) {
  Switch("switchA down: every node reachable through its bond; the leader and quorum hold everywhere", async () => {
    const { leader, term } = await waitAgreed(l, NODES, 20_000);
    const t0 = nowIso();
    labOk(l, "switch", "switchA", "down");
    try {
      for (const n of NODES) {
        await until(`${n}'s bond0 on eth1`, 3000, () => /Currently Active Slave: eth1/.test(read(`${l.S}/${n}/bond0.status`)) ||
          run("ip", ["netns", "exec", n, "sh", "-c", "grep -q 'Currently Active Slave: eth1' /proc/net/bonding/bond0"]).code === 0);
      }
      for (const a of NODES) for (const b of NODES) if (a !== b) assert.ok(ping(a, DATA[b]!), `${a} -> ${b} with switchA down`);
      for (let i = 0; i < 5; i++) {
        const now = await waitAgreed(l, NODES, 5000);
        assert.equal([now.leader, now.term], [leader, term], `the same leader and term, ${i + 1} s after the switch went down`);
        await sleep(1000);
      }
      for (const n of NODES) {
        assert.not.ok(findLog(l, n, /^quorum lost$|=> candidate|=> follower/, t0), `${n}: no quorum loss, election or step-down`);
      }
    } finally {
      labOk(l, "switch", "switchA", "up");
    }
    const after = await waitAgreed(l, NODES, 10_000);
    assert.equal([after.leader, after.term], [leader, term], "and after switchA is back");
  });
}
Switch.run();

// ---------------------------------------------------------------------------------------
const Down = suite("lab cluster: down");

Down.after(() => {
  if (up) lab(l, "down");
  up = false;
});

if (!skip) {
  Down("down leaves nothing behind (check-clean)", () => {
    const r = labOk(l, "down");
    up = false;
    console.log(`  lab down in ${(r.ms / 1000).toFixed(1)} s`);
    labOk(l, "check-clean");
    labOk(l, "down"); // idempotent
  });
}
Down.run();

// ---------------------------------------------------------------------------------------
// Without root: the loopback mode. As root, the lab is run as `nobody` when that user can
// read the bundle (setpriv); otherwise as root with LAB_MODE=loopback.
const Loop = suite("lab loopback mode");
const loopSkip = skipReason(true);
let loopState = "";
let loopUp = false;
let asUser: string[] = [];
let lb: Lab = labContext({ loopback: true });

/** `lab` in the loopback lab, as the unprivileged user if there is one. */
function lbLab(...args: string[]) {
  const env = Object.entries(lb.env).filter(([k, v]) => v !== undefined && /^(LAB_|PATH$|HOME$)/.test(k)).map(([k, v]) => `${k}=${v}`);
  return asUser.length ? run(asUser[0]!, [...asUser.slice(1), "env", "-i", ...env, LAB, ...args], process.env)
    : lab(lb, ...args);
}
function lbOk(...args: string[]) {
  const r = lbLab(...args);
  assert.is(r.code, 0, `lab ${args.join(" ")} (loopback): exit ${r.code}\n${r.out}${r.err}`);
  return r;
}
async function lbAgreed(nodes: readonly string[], timeoutMs: number): Promise<{ leader: string; term: number }> {
  let seen = "";
  const { value } = await until(`${nodes.join(", ")} agree (loopback)`, timeoutMs, async () => {
    const vs = await Promise.all(nodes.map((n) => statusFast(lb, n)));
    seen = vs.map((v, i) => `${nodes[i]}: ${v ? `${v.role} ${v.term} ${v.leader}` : "-"}`).join("; ");
    if (vs.some((v) => !v)) return null;
    return agreedLeader(Object.fromEntries(nodes.map((n, i) => [n, { live: true, view: vs[i] as View }])), nodes);
  }, 100, () => seen);
  return value;
}

Loop.before(() => {
  if (loopSkip) return;
  ensureBundle();
  loopState = mkdtempSync(join(tmpdir(), "bollard-lab-loop-"));
  if (process.getuid?.() === 0 && run("sh", ["-c", "command -v setpriv"]).code === 0) {
    const nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"];
    if (run(nobody[0]!, [...nobody.slice(1), "test", "-r", BUNDLE]).code === 0 && run("chown", ["nobody:nogroup", loopState]).code === 0) asUser = nobody;
  }
  chmodSync(loopState, 0o700);
  lb = labContext({ loopback: true, state: `${loopState}/lab` });
  lb.env.PATH = process.env.PATH;
  lb.env.HOME = "/nonexistent";
});
Loop.after(() => {
  if (loopUp) lbLab("down");
  if (loopState) rmSync(loopState, { recursive: true, force: true });
});

if (loopSkip) {
  console.log(`lab loopback: skipped: ${loopSkip}`);
  Loop.skip("the loopback mode", () => {});
} else {
  Loop("up without namespaces: says it is the loopback mode and which faults it lacks; three nodes agree", async () => {
    const t0 = performance.now();
    const r = lbOk("up");
    loopUp = true;
    assert.match(r.out, /LOOPBACK MODE/);
    assert.match(r.out, /NOT available: +partition, heal, isolate-leader/);
    const a = await lbAgreed(NODES, 30_000);
    console.log(`  loopback (${asUser.length ? "as nobody" : "as root, LAB_MODE=loopback"}): up to 3 nodes joined in` +
      ` ${((performance.now() - t0) / 1000).toFixed(1)} s; leader ${a.leader}`);
    const st = lbOk("status");
    assert.match(st.out, /LOOPBACK MODE/);
    assert.match(st.out, new RegExp(`${a.leader} +on +leader`));
  });

  Loop("partition is refused and says why", () => {
    const r = lbLab("partition", "node1");
    assert.is(r.code, 1);
    assert.match(r.err, /not available in the loopback mode/);
  });

  Loop("kill the leader: the others elect one; boot: it rejoins as a follower", async () => {
    const old = await lbAgreed(NODES, 10_000);
    lbOk("kill", old.leader);
    const maj = await lbAgreed(others(old.leader), 15_000);
    assert.is.not(maj.leader, old.leader);
    lbOk("boot", old.leader);
    const back = await lbAgreed(NODES, 20_000);
    assert.equal([back.leader, back.term], [maj.leader, maj.term]);
  });

  Loop("power off a follower (no BMC): its processes and port are gone; on: it rejoins", async () => {
    const { leader } = await lbAgreed(NODES, 10_000);
    const f = follower(leader);
    lbOk("power", f, "off");
    assert.match(lbOk("status").out, new RegExp(`${f} +off .* down +down`));
    assert.is.not(run("bash", ["-c", `exec 3<>/dev/tcp/127.0.77.${f.slice(4)}/1883`]).code, 0, `${f}'s broker port is closed`);
    lbOk("power", f, "on");
    const back = await lbAgreed(NODES, 20_000);
    assert.is(back.leader, leader);
  });

  Loop("stall a follower's agent past the watchdog: the supervisor resets its node, which rejoins", async () => {
    const { leader } = await lbAgreed(NODES, 10_000);
    const f = follower(leader);
    const r = lbOk("stall", f, "5");
    assert.match(r.out, /is gone/, "the stalled agent did not survive the reset");
    assert.match(read(`${lb.S}/events.log`), new RegExp(`${f} reset by watchdog`));
    const back = await lbAgreed(NODES, 20_000);
    assert.is(back.leader, leader);
  });

  Loop("broker down on a follower: the leader keeps its majority; up: it is back", async () => {
    const { leader, term } = await lbAgreed(NODES, 10_000);
    const f = follower(leader);
    lbOk("broker", f, "down");
    await sleep(2000);
    const maj = await lbAgreed(others(f), 10_000);
    assert.equal([maj.leader, maj.term], [leader, term]);
    lbOk("broker", f, "up");
    await lbAgreed(NODES, 20_000);
  });

  Loop("down leaves nothing behind", () => {
    lbOk("down");
    loopUp = false;
    lbOk("check-clean");
  });
}
Loop.run();

process.on("exit", () => {
  if (figures.length) console.log(`\nlab cluster figures:\n${figures.map((f) => `  ${f}`).join("\n")}`);
});
