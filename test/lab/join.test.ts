// Auto-join in the lab, with the real agent (issue 3 §2, §5): a node whose state dir is wiped
// rejoins from its seed alone (bollard.yaml + join token: the HMAC challenge, admission
// through the register, fresh bus credentials that every broker learns); a node with a wrong
// join token is refused, with a clear line on both sides, and nothing in the cluster changes.
// Agents without the data-path sections (LAB_NO_HA=1). Needs root and the lab's packages;
// builds dist/bollard.js if it is missing.
//   node --import tsx test/lab/join.test.ts
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import {
  NODES, agentLog, ensureBundle, findLog, lab, labContext, labOk, nowIso, read, skipReason, sleep, status, until, waitAgreed,
  type Lab, type Register,
} from "./helpers.ts";

const l: Lab = labContext({ env: { LAB_NO_HA: "1" } });
const skip = skipReason();
const others = (n: string) => NODES.filter((m) => m !== n);
let up = false;

/** The leader's committed register, as `bollard status --json` on the leader shows it. */
async function committed(leader: string): Promise<Register> {
  const s = await status(l, leader);
  assert.ok(s.live && s.view, `${leader} answers: ${s.why ?? ""}`);
  return s.view!.committed;
}

/** kill -9 of the node (an OS crash), then its state dir is gone: only the seed is left. */
function wipe(node: string): void {
  labOk(l, "kill", node);
  rmSync(`${l.S}/${node}/state`, { recursive: true, force: true });
  assert.not.ok(existsSync(`${l.S}/${node}/state`), `${node}'s state dir is gone`);
}

const passLine = (node: string, file: string) => read(file).split("\n").find((x) => x.startsWith(`${node}:`)) ?? "";

const J = suite("lab join");

J.before(async () => {
  if (skip) return;
  ensureBundle();
  const clean = lab(l, "check-clean");
  if (clean.code !== 0) throw new Error(`a lab (or its leftovers) is already on this machine; run test/lab/lab down first\n${clean.err}`);
  labOk(l, "up");
  up = true;
  await waitAgreed(l, NODES, 60_000);
});

J.after(() => {
  if (up) lab(l, "down");
  up = false;
});

if (skip) {
  console.log(`lab join: skipped: ${skip}`);
  J.skip("auto-join in the lab", () => {});
} else {
  J("a node whose state dir is wiped rejoins from its seed alone, then follows the leader with the cluster's config", async () => {
    const { leader } = await waitAgreed(l, NODES, 20_000);
    const f = others(leader)[0]!;
    const before = await committed(leader);
    const t0 = nowIso();
    wipe(f);
    labOk(l, "boot", f);

    const { value: joined, ms } = await until(`${f} logs that it joined`, 30_000, () => findLog(l, f, /^joined cluster lab: admitted by (\S+) at config epoch (\d+)/, t0));
    const [, by, epoch] = /admitted by (\S+) at config epoch (\d+)/.exec(joined.msg)!;
    console.log(`  ${f} rejoined ${(ms / 1000).toFixed(1)} s after boot: "${joined.msg}"`);
    assert.is(by, leader, "admitted by the leader");
    assert.ok(findLog(l, f, /^joining cluster lab as \S+ through /, t0), `${f} went through the join`);
    assert.ok(findLog(l, f, /^challenged by \S+; sending the proof$/, t0), `${f} answered the leader's challenge`);
    assert.ok(findLog(l, leader, new RegExp(`^${f} proved it holds the join token; readmitting it`), t0), `${leader} checked ${f}'s proof`);
    assert.ok(Number(epoch) > before.epoch, "the admission is a new epoch of the register");

    // Its credentials: a fresh password of its own, kept in its state dir; the register holds
    // only the hash, which every member's broker now has.
    const pwFile = `${l.S}/${f}/state/bus.password`;
    assert.ok(existsSync(pwFile), `${pwFile} exists`);
    assert.is(statSync(pwFile).mode & 0o777, 0o600, "bus.password is 0600");
    assert.is.not(readFileSync(pwFile, "utf8").trim(), read(`${l.S}/${f}/bus.pass`).trim(), "not the founder's derived password");
    const { st } = await waitAgreed(l, NODES, 20_000);
    const after = st[leader]!.view!.committed;
    const member = after.members.find((m) => m.name === f);
    assert.ok(member?.pass?.startsWith("$7$"), `the register has a pass (mosquitto hash) for ${f}: ${JSON.stringify(member)}`);
    assert.is.not(member!.pass, before.members.find((m) => m.name === f)?.pass, `${f}'s pass is new`);
    await until(`every broker has ${f}'s new hash`, 10_000, () =>
      NODES.every((n) => passLine(f, `${l.S}/${n}/mosquitto/passwd`) === `${f}:${member!.pass}`));

    // It follows the leader with the cluster's config.
    const fv = st[f]!.view!;
    assert.is(fv.role, "follower");
    assert.is(fv.leader, leader);
    assert.equal(fv.committed, after, `${f} holds the leader's committed config`);
    assert.equal(after.members.map((m) => m.name), [...NODES], "the same three members");
  });

  J("a wrong join token is refused, with a clear line on both sides, and nothing changes", async () => {
    const { leader } = await waitAgreed(l, NODES, 20_000);
    const f = others(leader).at(-1)!;
    const before = await committed(leader);
    const tokenFile = `${l.S}/${f}/join.token`;
    const token = readFileSync(tokenFile, "utf8");
    const passwdBefore = Object.fromEntries(others(f).map((n) => [n, read(`${l.S}/${n}/mosquitto/passwd`)]));
    const t0 = nowIso();
    wipe(f);
    writeFileSync(tokenFile, "not-the-cluster-token-0123456789abcdef\n", { mode: 0o600 });
    try {
      labOk(l, "boot", f);
      const { value: refused } = await until(`${leader} refuses ${f}`, 30_000, () =>
        findLog(l, leader, new RegExp(`^join refused for ${f}: its proof does not match this cluster's join token \\(wrong token\\?\\)$`), t0));
      assert.is(refused.level, "warn");
      const { value: mine } = await until(`${f} says it was refused`, 10_000, () => findLog(l, f, /^join refused: /, t0));
      assert.is(mine.level, "error");
      assert.match(mine.msg, /does not verify with our join token \(wrong token\?\)/);
      // it backs off 10 s before it gives up (identity.ts), so the supervisor's restarts do not hammer the leader
      await until(`${f}'s agent stops its start-up: it could not join`, 25_000, async () =>
        agentLog(l, f, t0).some((j) => /^start-up failed: credentials$/.test(j.msg) && /could not join cluster lab/.test(String(j.err))));
      console.log(`  ${leader}: "${refused.msg}"\n  ${f}: "${mine.msg}"`);

      await sleep(3000); // the supervisor restarts it and it tries again: still nothing changes
      const { st } = await waitAgreed(l, others(f), 10_000);
      const now = st[leader]!.view!.committed;
      assert.is(now.epoch, before.epoch, "no new epoch");
      assert.equal(now.members, before.members, `members unchanged (${f} keeps its old credentials in the register)`);
      for (const n of others(f)) {
        assert.is(read(`${l.S}/${n}/mosquitto/passwd`), passwdBefore[n], `${n}'s broker users unchanged`);
        assert.equal(st[n]!.view!.committed, before, `${n}'s committed config unchanged`);
      }
      assert.not.ok(existsSync(`${l.S}/${f}/state/bus.password`), `${f} was given no credentials`);
      assert.not.ok(findLog(l, f, /^joined cluster/, t0), `${f} never says it joined`);
    } finally {
      // Put the right token back and let it rejoin from a clean state.
      lab(l, "kill", f);
      rmSync(`${l.S}/${f}/state`, { recursive: true, force: true });
      writeFileSync(tokenFile, token, { mode: 0o600 });
      labOk(l, "boot", f);
    }
    const t1 = nowIso();
    await until(`${f} rejoins with the right token`, 30_000, () => findLog(l, f, /^joined cluster lab: admitted by/, t1));
    const back = await waitAgreed(l, NODES, 20_000);
    assert.is(back.st[f]!.view!.leader, back.leader);
  });

  J("down leaves nothing behind", () => {
    labOk(l, "down");
    up = false;
    labOk(l, "check-clean");
  });
}

J.run();
