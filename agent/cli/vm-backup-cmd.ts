// `bollard vm backup NAME [--full]` and `bollard vm restore NAME --backup ID [--as NEWNAME]
// [--confirm NAME]` (issue 23 §5, docs/vm.md "Backups"). Backups are taken on the node that runs
// the VM, through its QEMU's second QMP monitor (the agent keeps the first), into vms.backup.dir
// (resources/vm-backup.ts). A restore writes raw disks on this node, which must be where the
// register places the VM restored into, and that VM must be stopped (`bollard vm stop`); over the
// VM the backup was taken of only with its name typed as confirmation. Its replica is then
// outdated (vm-synced and vm-replica cleared): the next start copies the restored disks to a
// replica in full, and no node restarts the VM from the old copy.
import { existsSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "../bus/messages.ts";
import type { Config } from "../config/schema.ts";
import { vmPaths } from "../resources/qemu-args.ts";
import { Qmp } from "../resources/qmp.ts";
import { restoreChain } from "../resources/vm-backup-manifest.ts";
import { readBackups, restoreDisks, takeBackup } from "../resources/vm-backup.ts";
import { alive, readPid } from "../resources/vm.ts";
import { controlRequest } from "../runtime/control.ts";
import type { CommandContext } from "./types.ts";

interface Env {
  config: Config;
  socket: string;
}

function fail(ctx: CommandContext, msg: string, code = 1): number {
  ctx.io.err(`bollard: vm: ${msg}`);
  return code;
}

const runningHere = (dir: string, vm: string) => { const p = readPid(vmPaths(dir, vm).pid); return !!p && alive(p); };

async function committed(e: Env): Promise<{ assignments: Record<string, string>; flags: Record<string, string> } | null> {
  try {
    const r = await controlRequest(e.socket, "GET", "/vms", undefined, 5000);
    return r.code === 200 ? (r.body as { committed: { assignments: Record<string, string>; flags: Record<string, string> } }).committed : null;
  } catch {
    return null;
  }
}

export async function backupCmd(ctx: CommandContext, e: Env, vm: string, full: boolean, json: boolean): Promise<number> {
  const v = e.config.vms!;
  if (!v.backup) return fail(ctx, "no vms.backup in the config: where backups go is not set (docs/vm.md)", 2);
  const def = v.catalog.defs.find((d) => d.name === vm)!;
  const paths = vmPaths(v.dir, vm);
  if (!runningHere(v.dir, vm) || !existsSync(paths.ctl)) {
    const c = await committed(e);
    const at = c?.assignments[`vm:${vm}`];
    return fail(ctx, `${vm} does not run on this node${at ? `; it is placed on ${at}: run the command there` : ""}`);
  }
  const self = e.config.cluster.node;
  const storedOn = v.backup.node ?? self;
  let q: Qmp;
  try {
    q = await Qmp.connect(paths.ctl, { timeoutMs: 5000 });
  } catch (err) {
    return fail(ctx, `${vm}'s QEMU does not answer on ${paths.ctl}: ${(err as Error).message}`);
  }
  try {
    const r = await takeBackup(q, { def, paths, root: v.backup.dir, node: self, storedOn, full, fullEvery: v.backup.fullEvery, qemuVersion: q.version });
    const m = r.manifest;
    if (json) ctx.io.out(JSON.stringify({ status: "ok", ms: r.ms, why: r.plan.why, manifest: m }));
    else {
      ctx.io.out(`${m.parent ? "incremental" : "full"} backup ${m.id} of ${vm}: ${m.bytes} bytes in ${r.ms} ms (${r.plan.why})${m.parent ? `, on top of ${m.parent}` : ""}`);
      ctx.io.out(m.detail.consistency === "guest-frozen" ? `guest-consistent: ${m.detail.consistencyWhy}` : `crash-consistent: no guest agent (${m.detail.consistencyWhy})`);
      ctx.io.out(`stored in ${v.backup.dir}/vm/${m.id} on ${storedOn}${storedOn === self ? " (this node: vms.backup.node names none other; not a backup against its loss)" : ""}`);
    }
    return 0;
  } catch (err) {
    return fail(ctx, `backup of ${vm} failed: ${(err as Error).message}`);
  } finally {
    q.close();
  }
}

async function typed(ctx: CommandContext, want: string, given: string | undefined): Promise<boolean> {
  if (given !== undefined) return given === want;
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const a = await new Promise<string>((r) => rl.question(`this overwrites ${want}'s disks on this node; type its name to go on: `, r));
  rl.close();
  return a.trim() === want;
}

export async function restoreCmd(ctx: CommandContext, e: Env, vm: string, o: { backup?: string; as?: string; confirm?: string; json: boolean }): Promise<number> {
  const v = e.config.vms!;
  if (!v.backup) return fail(ctx, "no vms.backup in the config: where backups are is not set (docs/vm.md)", 2);
  if (!o.backup) return fail(ctx, "expected --backup ID ('bollard vm restore NAME --backup ID [--as NEWNAME]')", 2);
  const into = o.as ?? vm;
  const dst = v.catalog.defs.find((d) => d.name === into);
  if (!dst) return fail(ctx, `--as: no VM ${JSON.stringify(into)} in vms.machines: define it (its disks as the backup's) first`, 2);
  const { manifests, bad } = readBackups(v.backup.dir);
  const ch = restoreChain(manifests, o.backup);
  if (!ch.ok) return fail(ctx, `${ch.error}${bad.some((b) => b.id === o.backup) ? ` (its manifest is bad: ${bad.find((b) => b.id === o.backup)!.error})` : ""}`);
  const top = ch.chain.at(-1)!;
  if (top.name !== vm) return fail(ctx, `backup ${top.id} is of ${top.name}, not of ${vm}`, 2);
  const disks = top.detail.disks;
  if (disks.length !== dst.disks.length || disks.some((d, i) => d.sizeMb !== dst.disks[i]!.sizeMb)) {
    return fail(ctx, `${into}'s disks (${dst.disks.map((d) => `${d.name} ${d.sizeMb} MB`).join(", ")}) are not the backup's (${disks.map((d) => `${d.name} ${d.sizeMb} MB`).join(", ")})`, 2);
  }
  if (runningHere(v.dir, into)) return fail(ctx, `${into} runs on this node: stop it first ('bollard vm stop ${into}')`);
  const c = await committed(e);
  if (!c) return fail(ctx, "the agent is not answering: a restore needs the register (where the VM is placed, that it is stopped)");
  const self = e.config.cluster.node;
  const at = c.assignments[`vm:${into}`] ?? null;
  if (at && at !== self) return fail(ctx, `${into} is placed on ${at}: run the restore there`);
  if (at && !(`vm-stop:${into}` in c.flags)) return fail(ctx, `${into} is not stopped: 'bollard vm stop ${into}' first`);
  const paths = vmPaths(v.dir, into);
  const over = dst.disks.some((d) => existsSync(paths.disk(d.name)));
  if (over && !(await typed(ctx, into, o.confirm))) return fail(ctx, `restoring over ${into}'s disks needs its name typed: --confirm ${into}`, 2);
  let r: { ms: number; bytes: number };
  try {
    mkdirSync(paths.dir, { recursive: true, mode: 0o750 });
    const map = new Map(disks.map((d, i) => [d.name, paths.disk(dst.disks[i]!.name)]));
    r = restoreDisks(v.backup.dir, top, (d) => map.get(d)!);
  } catch (err) {
    return fail(ctx, `restore failed: ${(err as Error).message}`);
  }
  // the replica holds the disks as they were: outdated, so that nobody restarts the VM from it
  const cmd: Command = { op: "apply", why: `operator: vm restore ${vm} --backup ${top.id}${o.as ? ` --as ${into}` : ""}: its replica is outdated`, flags: { [`vm-synced:${into}`]: null, [`vm-replica:${into}`]: null } };
  let note = "";
  try {
    const x = await controlRequest(e.socket, "POST", "/command", cmd, 15_000);
    const b = x.body as { status?: string; error?: string };
    if (x.code !== 200 || b.status !== "ok") note = `; WARNING: the replica could not be outdated (${b.error ?? `HTTP ${x.code}`}): do not start ${into} before it is`;
  } catch (err) {
    note = `; WARNING: the replica could not be outdated (${(err as Error).message}): do not start ${into} before it is`;
  }
  const msg = `restored ${top.id} (${ch.chain.length} backup${ch.chain.length > 1 ? "s" : ""}: ${ch.chain.map((m) => m.id).join(" <- ")}) into ${into}'s disks on ${self}: ${r.bytes} bytes in ${r.ms} ms${note}`;
  if (o.json) ctx.io.out(JSON.stringify({ status: note ? "warning" : "ok", backup: top.id, chain: ch.chain.map((m) => m.id), into, bytes: r.bytes, ms: r.ms, consistency: top.detail.consistency }));
  else ctx.io.out(`${msg}\n${top.detail.consistency === "crash-consistent" ? "crash-consistent: the guest checks its filesystems as after a power cut" : "guest-consistent"}; start it with 'bollard vm start ${into}'`);
  return note ? 1 : 0;
}
