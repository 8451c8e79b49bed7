// The register's rounds (DESIGN §4, R3 and R4): every node's heartbeat, the leader's carrying
// the register, its commit and a lease round; followers' acks renewing the lease and
// counting toward a commit; proposals one epoch at a time; and commands, which reach the
// leader from any node and are answered once committed or refused.
import type { Ack, CmdReq, CmdResp, Command, Hb } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { applyCommand, cmpId, idOf, isMember, majority, sameId } from "./register.ts";
import type { CommandResult, Done, NodeState } from "./state.ts";

const FORWARD_TIMEOUT_MS = 5000;

export function sendHb(n: NodeState, now: number): void {
  n.lastHbSent = now;
  const hb: Hb = {
    v: PROTOCOL_VERSION, t: "hb", term: n.term, role: n.role, leader: n.leader,
    cfg: idOf(n.config), committed: n.committed.epoch, quorum: n.hasQuorum(now),
    tilt: n.tilt, wall: n.env.wall(),
  };
  if (n.role === "leader") {
    hb.seq = n.lease.round(now);
    hb.config = n.config;
    hb.commit = idOf(n.committed);
  }
  n.env.send("*", hb);
  if (n.role === "leader" && n.config.members.length === 1) {
    // A one-member cluster is its own majority: renew and commit without acks.
    n.lease.ack(n.id, hb.seq!, [n.id], n.id, now);
    tryCommit(n);
  }
}

export function leaderTick(n: NodeState, now: number): void {
  if (n.tilt) return n.stepDown("TILT");
  if (now - n.lease.lastRenewal > n.t.leaseMs) return n.stepDown(`lease not renewed for ${Math.round(now - n.lease.lastRenewal)} ms`);
  if (now - n.lastHbSent >= n.t.heartbeatMs) sendHb(n, now);
  proposeNext(n, now);
}

export function onAck(n: NodeState, from: string, m: Ack): void {
  if (m.term > n.term) return n.adoptTerm(m.term, `ack from ${from}`);
  if (n.role !== "leader" || m.term !== n.term || !isMember(n.config, from)) return;
  const now = n.env.now();
  const voters = n.config.members.map((x) => x.name);
  n.lease.ack(from, m.seq, voters, n.id, now);
  const prev = n.cfgAcks.get(from);
  if (!prev || cmpId(m.cfg, prev) > 0) n.cfgAcks.set(from, m.cfg);
  tryCommit(n);
}

/** R4: the leader's config is committed once a majority of its members has persisted it. */
function tryCommit(n: NodeState): void {
  const want = idOf(n.config);
  if (sameId(want, idOf(n.committed))) return;
  const have = n.config.members.filter((x) => x.name === n.id || cmpId(n.cfgAcks.get(x.name) ?? { term: 0, epoch: -1 }, want) >= 0).length;
  if (have < majority(n.config.members.length)) return;
  n.commit(n.config);
  for (const d of n.inFlight) d({ status: "ok", epoch: n.committed.epoch });
  n.inFlight = [];
  if (!isMember(n.config, n.id)) return n.stepDown("removed from the cluster");
  // Tell the followers now rather than at the next heartbeat: a failover waits for this.
  const now = n.env.now();
  if (n.queue.length) proposeNext(n, now);
  else sendHb(n, now);
}

function proposeNext(n: NodeState, now: number): void {
  if (n.role !== "leader" || !n.lease.valid(now) || n.tilt) return;
  if (!sameId(idOf(n.config), idOf(n.committed))) return; // one change at a time
  while (n.queue.length) {
    const { cmd, done } = n.queue.shift()!;
    const next = applyCommand(n.config, cmd, n.term);
    if (typeof next === "string") { done({ status: "error", error: next }); continue; }
    n.config = next;
    n.persist();
    n.inFlight.push(done);
    n.emit("propose", `proposing epoch ${next.epoch}: ${describe(cmd)}`);
    return sendHb(n, now);
  }
}

// ---- commands: to the leader from anywhere ----------------------------------------------

/** Runs a command through the leader; `done` is called once, when committed or refused. */
export function command(n: NodeState, cmd: Command, done: Done): void {
  if (n.role === "leader") {
    n.queue.push({ cmd, done });
    return proposeNext(n, n.env.now());
  }
  if (!n.leader) return done({ status: "error", error: "no leader known; try again in a few seconds" });
  const id = `${n.id}-${++n.cmdSeq}`;
  n.forwarded.set(id, { done, deadline: n.env.now() + FORWARD_TIMEOUT_MS });
  n.env.send(n.leader, { v: PROTOCOL_VERSION, t: "cmd", id, cmd });
}

export function onCmd(n: NodeState, from: string, m: CmdReq): void {
  const answer = (r: CommandResult) => {
    const resp: CmdResp = { v: PROTOCOL_VERSION, t: "cmd-result", id: m.id, status: r.status };
    if (r.epoch !== undefined) resp.epoch = r.epoch;
    if (r.error !== undefined) resp.error = r.error;
    n.env.send(from, resp);
  };
  if (n.role !== "leader") return answer({ status: "error", error: `${n.id} is not the leader` });
  // A member's bus password is its own: only it may change it (the sender is the broker the
  // command came from, which the ACL and TLS vouch for: bus/inbox.ts).
  if (m.cmd.op === "rekey" && m.cmd.node !== from) return answer({ status: "error", error: `only ${m.cmd.node} may change its own bus password (asked by ${from})` });
  command(n, m.cmd, answer);
}

export function onCmdResult(n: NodeState, m: CmdResp): void {
  const f = n.forwarded.get(m.id);
  if (!f) return;
  n.forwarded.delete(m.id);
  f.done({ status: m.status, epoch: m.epoch, error: m.error });
}

export function expireForwarded(n: NodeState, now: number): void {
  for (const [id, f] of n.forwarded) {
    if (now < f.deadline) continue;
    n.forwarded.delete(id);
    f.done({ status: "error", error: "no answer from the leader" });
  }
}

function describe(cmd: Command): string {
  switch (cmd.op) {
    case "assign": return `assign ${cmd.service} to ${cmd.node}`;
    case "unassign": return `unassign ${cmd.service}`;
    case "add": return `add member ${cmd.member.name} (${cmd.member.bus})`;
    case "remove": return `remove member ${cmd.node}`;
    case "apply": return `${cmd.why}: ${[...Object.entries(cmd.assign ?? {}).map(([k, v]) => `${k}=${v}`), ...Object.entries(cmd.flags ?? {}).map(([k, v]) => (v === null ? `-${k}` : `${k}=${v}`))].join(", ")}`;
    case "readmit": return `readmit member ${cmd.member.name} (${cmd.member.bus}) with new credentials`;
    case "rekey": return `a new bus password for ${cmd.node} (its own request)`;
  }
}
