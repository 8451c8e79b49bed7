// The replicated cluster config register (DESIGN §4): ordering, majorities, and the pure
// application of a command to a config. Nothing here has state or does I/O.
import type { CfgId, ClusterConfig, Command } from "../bus/messages.ts";

export function idOf(c: ClusterConfig): CfgId {
  return { term: c.term, epoch: c.epoch };
}

/** Order of configs: by the term of the leader that proposed them, then by epoch (Raft §5.4.1). */
export function cmpId(a: CfgId, b: CfgId): number {
  return a.term !== b.term ? a.term - b.term : a.epoch - b.epoch;
}

export function sameId(a: CfgId, b: CfgId): boolean {
  return a.term === b.term && a.epoch === b.epoch;
}

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

export function isMember(c: ClusterConfig, node: string): boolean {
  return c.members.some((m) => m.name === node);
}

export function bootstrapConfig(members: ClusterConfig["members"]): ClusterConfig {
  return { epoch: 0, term: 0, members: [...members], assignments: {}, flags: {} };
}

/**
 * The config that follows `c` once `cmd` is applied, proposed in `term`, or an error text.
 * Membership changes one node at a time (DESIGN §4): the caller proposes only when nothing
 * else is pending, so every two successive configs' majorities overlap.
 */
export function applyCommand(c: ClusterConfig, cmd: Command, term: number): ClusterConfig | string {
  const next: ClusterConfig = {
    epoch: c.epoch + 1,
    term,
    members: c.members.map((m) => ({ ...m })),
    assignments: { ...c.assignments },
    flags: { ...c.flags },
  };
  switch (cmd.op) {
    case "assign":
      if (!isMember(c, cmd.node)) return `cannot assign ${cmd.service} to "${cmd.node}": not a member`;
      if (c.assignments[cmd.service] === cmd.node) return `${cmd.service} is already on ${cmd.node}`;
      next.assignments[cmd.service] = cmd.node;
      return next;
    case "unassign":
      if (!(cmd.service in c.assignments)) return `${cmd.service} is not assigned`;
      delete next.assignments[cmd.service];
      return next;
    case "add":
      if (isMember(c, cmd.member.name)) return `"${cmd.member.name}" is already a member`;
      next.members.push({ ...cmd.member });
      return next;
    case "apply": {
      for (const [svc, node] of Object.entries(cmd.assign ?? {})) {
        if (!isMember(c, node)) return `cannot assign ${svc} to "${node}": not a member`;
        next.assignments[svc] = node;
      }
      for (const [k, v] of Object.entries(cmd.flags ?? {})) {
        if (v === null) delete next.flags[k];
        else next.flags[k] = v;
      }
      if (JSON.stringify(next.assignments) === JSON.stringify(c.assignments) && JSON.stringify(next.flags) === JSON.stringify(c.flags)) return `nothing to change (${cmd.why})`;
      return next;
    }
    case "readmit": {
      const i = next.members.findIndex((m) => m.name === cmd.member.name);
      if (i < 0) return `"${cmd.member.name}" is not a member; add it instead`;
      next.members[i] = { ...cmd.member };
      return next;
    }
    case "rekey": {
      const i = next.members.findIndex((m) => m.name === cmd.node);
      if (i < 0) return `"${cmd.node}" is not a member`;
      next.members[i] = { ...next.members[i]!, pass: cmd.pass };
      return next;
    }
    case "remove": {
      if (!isMember(c, cmd.node)) return `"${cmd.node}" is not a member`;
      if (c.members.length <= 1) return "cannot remove the last member";
      next.members = next.members.filter((m) => m.name !== cmd.node);
      for (const [svc, holder] of Object.entries(next.assignments)) if (holder === cmd.node) delete next.assignments[svc];
      return next;
    }
  }
}
