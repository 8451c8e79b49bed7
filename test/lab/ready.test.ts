// N+1 readiness in the lab (issue 17 item 3, docs/readiness.md), with the real agents, the
// data path (gen-ha.sh), the BMCs and the switches:
//   - once the data path is healthy and every fence path has been checked, `bollard ready`
//     on every node says the cluster can lose any one node, with the fence paths proven
//     (IPMI power status, the ports' write access) and an in-sync replica of each service;
//     the checks changed nothing: every node powered on, every port up;
//   - node3 powered off: losing either of the other two would stop the cluster, the not-ready
//     alarm is raised (major) and shows in `bollard alarms`; power on: yes again, cleared;
//   - node2's BMC down: it holds nothing, so losing it is still fine, but the IPMI path of
//     node2 is reported as not proven.
// Needs root and the lab's packages; refuses to start while a lab is up.
//   node --import tsx test/lab/ready.test.ts
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, ensureBundle, figure, figures, lab, labContext, labOk, run, skipReason, until, waitAgreed } from "./helpers.ts";

// every fence path checked every 10 s instead of every minute: the test waits for the first
// round and for a failed check (the judgement and the alarms are the same at any period)
const l = labContext({ env: { LAB_FENCE_CHECK_MS: "10000" } });
const skip = skipReason();
let up = false;

interface Ready {
  ok: boolean | null;
  line: string;
  nodes: { node: string; verdict: string; notes: string[]; blocks: { effect: string; why: string }[] }[];
}

/** `lab exec NODE bollard ready --json`, as an operator would ask. */
async function readyOf(node: string): Promise<{ live: boolean; ready: Ready | null } | null> {
  const r = lab(l, "exec", node, "bollard", "ready", "--json");
  try {
    return JSON.parse(r.out) as { live: boolean; ready: Ready | null };
  } catch {
    return null;
  }
}

const s = suite("lab: N+1 readiness");

s.before(() => {
  if (!skip) ensureBundle();
});
s.after(() => {
  if (up) lab(l, "down");
  up = false;
  if (figures.length) console.log(figures.map((f) => `  figure: ${f}`).join("\n"));
});

if (skip) {
  console.log(`lab readiness: skipped: ${skip}`);
  s.skip("N+1 readiness in the lab", () => {});
} else {
  s("up, healthy: every node says the cluster can lose any one node; the checks changed nothing", async () => {
    assert.is(lab(l, "check-clean").code, 0, "a lab (or its leftovers) is already on this machine; run test/lab/lab down first");
    labOk(l, "up");
    up = true;
    await waitAgreed(l, NODES, 60_000);
    const t0 = performance.now();
    // the first round of fence checks takes up to readiness.fence_check_ms (10 s here)
    const got = await until("every node: can lose any one node, every fence path proven", 60_000, async () => {
      const all = await Promise.all(NODES.map((n) => readyOf(n)));
      if (all.some((x) => !x?.ready || x.ready.ok !== true)) return null;
      const proven = all.every((x) => x!.ready!.nodes.every((n) => n.notes.some((t) => /fence: IPMI power status and switch ports' SNMP write access proven/.test(t))));
      return proven ? all : null;
    }, 2000);
    figure(`readiness judged yes with every fence path proven ${((performance.now() - t0) / 1000).toFixed(0)} s after the cluster formed`);
    const text = lab(l, "exec", "node1", "bollard", "ready");
    console.log(text.out.split("\n").map((x) => `  ${x}`).join("\n"));
    assert.match(text.out, /^can lose any one node: yes/);
    const n1 = got.value[0]!.ready!;
    assert.ok(n1.nodes.some((n) => n.notes.some((t) => /^MySQL: in-sync replica on node\d(, node\d)?$/.test(t))), "an in-sync MySQL replica is named");
    for (const n of NODES) {
      assert.match(lab(l, "power", n, "status").out, /\bon\b/i, `${n} still powered on`);
      for (const sw of ["switchA", "switchB"]) {
        const link = run("ip", ["-n", sw, "-o", "link", "show", `swp${n.slice(-1)}`]).out;
        assert.match(link, /<[^>]*\bUP\b[^>]*>/, `${sw} swp${n.slice(-1)} still up: ${link}`);
      }
    }
  });

  s("node3 powered off: losing either other node would stop the cluster; the not-ready alarm; back: yes", async () => {
    labOk(l, "power", "node3", "off");
    const r = await until("node1: losing a node would stop the cluster", 30_000, async () => {
      const x = await readyOf("node1");
      return x?.ready?.ok === false && /^losing node[12] would stop the cluster: 1 of 3 members would be left/.test(x.ready.line) ? x.ready : null;
    }, 1000);
    console.log(`  ${r.value.line}`);
    assert.equal(r.value.nodes.map((n) => n.verdict), ["no", "no", "down"]);
    const alarm = await until("the not-ready alarm in bollard alarms", 40_000, async () => {
      const a = lab(l, "exec", "node1", "bollard", "alarms", "--json");
      try {
        const j = JSON.parse(a.out) as { active: { id: string; severity: string; text: string }[] };
        return j.active.find((x) => x.id === "not-ready:node1" && x.severity === "major") ?? null;
      } catch {
        return null;
      }
    }, 2000);
    assert.is(alarm.value.text, "losing node1 would stop the cluster");
    labOk(l, "power", "node3", "on");
    await until("node1: yes again", 90_000, async () => (await readyOf("node1"))?.ready?.ok === true || null, 2000);
  });

  s("node2's BMC down: its IPMI path is reported not proven; holding nothing, it can still be lost", async () => {
    labOk(l, "bmc", "node2", "down");
    try {
      const r = await until("node2's IPMI path not proven", 60_000, async () => {
        const x = await readyOf("node1");
        const n2 = x?.ready?.nodes.find((n) => n.node === "node2");
        return n2 && n2.notes.some((t) => /fence: IPMI power status: node\d: .*(no answer|unreachable)/i.test(t)) ? x!.ready! : null;
      }, 2000);
      const n2 = r.value.nodes.find((n) => n.node === "node2")!;
      console.log(`  node2: ${n2.verdict}; ${n2.notes.join("; ")}`);
      assert.ok(["yes", "slower"].includes(n2.verdict), n2.verdict);
    } finally {
      labOk(l, "bmc", "node2", "up");
    }
  });

  s("down: nothing left", () => {
    labOk(l, "down");
    up = false;
    assert.is(lab(l, "check-clean").code, 0);
  });
}

s.run();
