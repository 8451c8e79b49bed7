// `bollard vm list|start|stop|restart|migrate|console|backup|restore` (issues 14 §4, 23 §5; docs/vm.md). The changes go
// through the leader as register flags (ha/vm-flags.ts) that its VM manager and the nodes' local
// VM managers carry out; the command then waits (unless --no-wait) until it sees the outcome, or
// the VM alarm that says why not. The console connects to the VM's serial socket on this node.
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { parseArgs } from "node:util";
import type { Command } from "../bus/messages.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { vmRows, vmTable, type VmRow, type VmSnapshot } from "../console/screens-vms.ts";
import type { AlarmRow } from "../console/model.ts";
import { requests } from "../ha/requests.ts";
import { vmPaths } from "../resources/qemu-args.ts";
import { alive, readPid } from "../resources/vm.ts";
import { controlRequest } from "../runtime/control.ts";
import type { CommandContext, SubCommand } from "./types.ts";
import { backupCmd, restoreCmd } from "./vm-backup-cmd.ts";

const USAGE = [
  "vm list [--json]                 every VM: state, node, replica and sync, problems",
  "vm start|stop|restart NAME       start (placing it if need be), stop, restart a VM",
  "vm migrate NAME [--to NODE]      live-migrate a VM with its disks (--no-wait on each)",
  "vm console NAME [--seconds N]    its serial console, on its node (Ctrl-] leaves)",
  "vm backup NAME [--full]          a backup of its disks (incremental when it can), on its node",
  "vm restore NAME --backup ID [--as NEWNAME] [--confirm NAME]   its disks from a backup (stopped VM)",
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function fail(ctx: CommandContext, msg: string, code = 1): number {
  ctx.io.err(`bollard: vm: ${msg}`);
  return code;
}

interface Env {
  config: Config;
  socket: string;
}

function env(ctx: CommandContext): Env | string {
  const r = loadConfig(ctx.configPath, { secrets: false });
  if (!r.ok) return `config ${ctx.configPath}: ${r.errors.join("; ")}`;
  if (!r.config.vms) return `the config (${ctx.configPath}) has no vms: section: this cluster runs no VMs`;
  return { config: r.config, socket: r.config.control.socket };
}

async function snapshot(e: Env): Promise<{ s: VmSnapshot; alarms: AlarmRow[] }> {
  const r = await controlRequest(e.socket, "GET", "/vms", undefined, 5000);
  if (r.code !== 200) throw new Error(`GET /vms: HTTP ${r.code} ${JSON.stringify(r.body).slice(0, 200)}`);
  let alarms: AlarmRow[] = [];
  try {
    const a = await controlRequest(e.socket, "GET", "/alarms", undefined, 3000);
    if (a.code === 200) alarms = (a.body as { active?: AlarmRow[] }).active ?? [];
  } catch { /* the watch may not run: the rows go without */ }
  return { s: r.body as VmSnapshot, alarms };
}

async function send(e: Env, cmd: Command): Promise<{ ok: boolean; text: string }> {
  const r = await controlRequest(e.socket, "POST", "/command", cmd, 15_000);
  const b = r.body as { status?: string; epoch?: number; error?: string };
  return r.code === 200 && b.status === "ok" ? { ok: true, text: `committed in config epoch ${b.epoch}` } : { ok: false, text: b.error ?? `HTTP ${r.code}` };
}

/** Polls the VM's row until `done` says so (a string: the outcome) or `limitMs` passes. */
async function waitFor(e: Env, vm: string, limitMs: number, done: (r: VmRow, s: VmSnapshot) => string | null): Promise<string | null> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    await sleep(500);
    try {
      const { s, alarms } = await snapshot(e);
      const r = vmRows(s, alarms).find((x) => x.name === vm);
      if (r) { const out = done(r, s); if (out) return out; }
    } catch { /* the agent is busy: ask again */ }
  }
  return null;
}

export const vmCommand: SubCommand = {
  name: "vm",
  usage: USAGE,
  async run(args, ctx) {
    let p;
    try {
      p = parseArgs({ args, allowPositionals: true, strict: true, options: { json: { type: "boolean" }, to: { type: "string" }, "no-wait": { type: "boolean" }, seconds: { type: "string" }, full: { type: "boolean" }, backup: { type: "string" }, as: { type: "string" }, confirm: { type: "string" } } });
    } catch (e) {
      return fail(ctx, `${(e as Error).message}\nrun "bollard vm --help" for usage`, 2);
    }
    const [op, name, ...extra] = p.positionals;
    const json = !!(p.values.json || ctx.json);
    if (!op || !["list", "start", "stop", "restart", "migrate", "console", "backup", "restore"].includes(op)) return fail(ctx, `expected list, start, stop, restart, migrate, console, backup or restore, got ${op ?? "nothing"}\nrun "bollard vm --help" for usage`, 2);
    if (op === "list" ? name !== undefined : !name || extra.length) return fail(ctx, op === "list" ? "list takes no name" : `expected: vm ${op} NAME`, 2);
    const e = env(ctx);
    if (typeof e === "string" && op === "list" && / has no vms: section/.test(e)) {
      ctx.io.out(json ? JSON.stringify({ status: "ok", live: true, vms: [], note: e }) : `no VMs: ${e}`);
      return 0;
    }
    if (typeof e === "string") return fail(ctx, e, 2);
    if (op === "list") return list(ctx, e, json);
    if (!e.config.vms!.catalog.defs.some((d) => d.name === name)) return fail(ctx, `no VM ${JSON.stringify(name)} in vms.machines (${e.config.vms!.catalog.defs.map((d) => d.name).join(", ") || "none"})`, 2);
    if (op === "console") return consoleOf(ctx, e, name!, p.values.seconds);
    if (op === "backup") return backupCmd(ctx, e, name!, !!p.values.full, json);
    if (op === "restore") return restoreCmd(ctx, e, name!, { backup: p.values.backup, as: p.values.as, confirm: p.values.confirm, json });
    if (p.values.full || p.values.backup || p.values.as || p.values.confirm) return fail(ctx, "--full goes with backup; --backup, --as and --confirm with restore", 2);
    const to = p.values.to;
    if (to !== undefined && (op !== "migrate" || !e.config.cluster.members.some((m) => m.name === to))) return fail(ctx, op !== "migrate" ? "--to goes with migrate" : `--to: ${to} is not a member`, 2);
    return change(ctx, e, op as "start" | "stop" | "restart" | "migrate", name!, to, !!p.values["no-wait"]);
  },
};

async function list(ctx: CommandContext, e: Env, json: boolean): Promise<number> {
  let snap;
  try {
    snap = await snapshot(e);
  } catch (err) {
    return fail(ctx, `the agent is not answering: ${(err as Error).message}`);
  }
  const rows = vmRows(snap.s, snap.alarms);
  if (json) ctx.io.out(JSON.stringify({ status: "ok", live: true, node: snap.s.node, accel: snap.s.accel, vms: rows }));
  else ctx.io.out([`${rows.length} VMs (QEMU ${snap.s.accel ? `under ${snap.s.accel.toUpperCase()}: ${snap.s.accelWhy}` : "accelerator probe under way"})`, ...vmTable(rows, 120)].join("\n"));
  return 0;
}

async function change(ctx: CommandContext, e: Env, op: "start" | "stop" | "restart" | "migrate", vm: string, to: string | undefined, noWait: boolean): Promise<number> {
  const now = String(Date.now());
  let before: VmRow | undefined;
  try {
    before = vmRows((await snapshot(e)).s, []).find((r) => r.name === vm);
    const r = await send(e, requests.vm(op, vm, Number(now), to ?? null));
    if (!r.ok) return fail(ctx, `refused: ${r.text}`);
    ctx.io.out(`ok: ${r.text}`);
  } catch (err) {
    return fail(ctx, `the agent is not answering: ${(err as Error).message}`);
  }
  if (noWait) return 0;
  const t0 = Date.now();
  const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
  const out = await waitFor(e, vm, op === "migrate" ? 300_000 : 120_000, (r, s) => {
    if (op === "stop") return r.state.startsWith("stopped") || r.state === "unplaced" ? `${vm} stopped in ${secs()} s` : null;
    if (op === "migrate") {
      if (r.node && r.node !== before?.node && !s.committed.flags[`vm-mig:${vm}`]) return `${vm} runs on ${r.node} now (from ${before?.node ?? "?"}), in ${secs()} s`;
      if (!s.committed.flags[`vm-mig:${vm}`] && r.node === before?.node) return `FAILED: ${vm} was not migrated (see 'bollard events --node all' for why)`;
      return null;
    }
    if (op === "restart" && r.state.startsWith("running")) {
      const f = r.node === s.node ? s.facts : s.peers[r.node!];
      const x = f?.vms.find((y) => y.name === vm);
      return x?.startedAt && x.startedAt >= Number(now) - 5000 ? `${vm} restarted on ${r.node} in ${secs()} s` : null;
    }
    if (op === "start" && r.state.startsWith("running")) return `${vm} runs on ${r.node} (${secs()} s)`;
    if (r.problem && /cannot|no node|failed|gave up|refused/i.test(r.problem) && Date.now() - t0 > 3000) return `FAILED: ${r.problem}`;
    return null;
  });
  if (!out) return fail(ctx, `${vm}: no outcome after ${secs()} s; 'bollard vm list' shows where it stands`);
  if (out.startsWith("FAILED")) return fail(ctx, out.slice(8));
  ctx.io.out(out);
  return 0;
}

/** The serial console on this node: raw both ways on a terminal (Ctrl-] leaves); else what arrives, for --seconds. */
async function consoleOf(ctx: CommandContext, e: Env, vm: string, seconds: string | undefined): Promise<number> {
  const paths = vmPaths(e.config.vms!.dir, vm);
  const pid = readPid(paths.pid);
  if (!pid || !alive(pid) || !existsSync(paths.serial)) {
    let where = "";
    try {
      const r = vmRows((await snapshot(e)).s, []).find((x) => x.name === vm);
      where = r?.node ? `; it is placed on ${r.node} (${r.state}): run the command there` : "; it is not placed on any node";
    } catch { /* the agent is not answering */ }
    return fail(ctx, `${vm} does not run on this node${where}`);
  }
  const limit = seconds === undefined ? null : Number(seconds);
  if (limit !== null && !(limit > 0)) return fail(ctx, "--seconds: expected a number of seconds > 0", 2);
  return new Promise<number>((resolve) => {
    const s = connect(paths.serial);
    const tty = process.stdin.isTTY && limit === null;
    const end = (code: number) => {
      if (tty) process.stdin.setRawMode(false);
      process.stdin.pause();
      s.destroy();
      resolve(code);
    };
    s.on("error", (err) => { ctx.io.err(`bollard: vm: ${vm}'s console: ${err.message} (one client at a time: is another console open?)`); end(1); });
    s.on("close", () => end(0));
    s.on("data", (d) => process.stdout.write(d));
    s.on("connect", () => {
      if (limit !== null) return void setTimeout(() => end(0), limit * 1000);
      if (tty) {
        ctx.io.err(`connected to ${vm}'s serial console (Ctrl-] leaves)`);
        process.stdin.setRawMode(true);
      }
      process.stdin.on("data", (d: Buffer) => {
        if (tty && d.includes(0x1d)) return end(0);
        s.write(d);
      });
      process.stdin.on("end", () => setTimeout(() => end(0), 300));
      process.stdin.resume();
    });
  });
}
