// `bollard upgrade` (issue 15, docs/upgrade.md):
//   bollard upgrade BUNDLE [--deadline S] [--settle S]   rolling upgrade of the agent bundle
//   bollard upgrade IMAGE [--deadline S] [--no-reboot]   A/B upgrade of this node's image
//   bollard upgrade status [--json]                      every node's version and step
//   bollard upgrade guard --dir D --sha S                (internal: a trial's guard)
//   bollard upgrade image-gate [--deadline S] [--settle S]  (internal: the boot's health gate)
// A file is an image when it carries a GPT (sector 1 says "EFI PART"), else a bundle.
import { closeSync, openSync, readSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR } from "../config/schema.ts";
import { controlRequest } from "../runtime/control.ts";
import { baselineIds, type AlarmFact } from "../upgrade/gate.ts";
import { DEFAULTS, rollout, type Api, type Info } from "../upgrade/rollout.ts";
import type { CommandContext, SubCommand } from "./types.ts";

const USAGE = [
  "upgrade BUNDLE [--deadline S] [--settle S]      rolling upgrade of the agent, one node at a time, the",
  "                                                leader's last, each behind a health gate (rolled back if it fails)",
  "upgrade IMAGE [--deadline S]                    A/B, node by node, the leader's last: the image into the",
  "                                                inactive root, booted once, kept only if its health gate passes",
  "upgrade IMAGE --this-node [--no-reboot]         the same, this node only",
  "upgrade status [--json]                         every node's version, bundle and upgrade step; the rollouts",
];

const HELP = `usage: bollard upgrade BUNDLE [--deadline S] [--settle S]
       bollard upgrade IMAGE [--deadline S]
       bollard upgrade IMAGE --this-node [--deadline S] [--no-reboot]
       bollard upgrade status [--json]

BUNDLE (a bollard.js): every node not yet on it, the leader's node last, one at a time:
maintenance on (MySQL, Redis and the VIP switched away), the bundle copied to the node over
the bus and installed beside the old one, the agent restarted on it, and the health gate:
back with quorum, its replicas in sync, no new alarm, held --settle seconds (default 3)
within --deadline seconds of the restart (default 90). A node that fails it goes back to its
old bundle by itself and the rollout stops, with an event and the upgrade-failed alarm.
Run it again to go on: nodes already on the bundle are skipped.

IMAGE (a bollard-node-*.img, at the same path on every node): the nodes not on its version,
one at a time, the leader's last and this node after the others: maintenance on, then on the
node its root partition goes into the inactive root slot (read back and checked against the
image's checksums), its kernel onto the ESP, and a boot entry with boot counting (+3) is set as
the next boot, once (bootctl set-oneshot). The node reboots; in the new root the same health
gate must pass within --deadline seconds (default 600), and only then is the entry blessed
(systemd-bless-boot), made the default, and maintenance taken off. Otherwise, or if it does not
boot, the node is back on its old root by itself and the rollout stops (event, alarm).
--this-node: this node only, no drain (a one-node cluster; --no-reboot: reboot later).

options: -c, --config PATH, --json, -h, --help (docs/upgrade.md)`;

function socketOf(ctx: CommandContext): { socket: string; stateDir: string } {
  const r = loadConfig(ctx.configPath, { secrets: false });
  return r.ok ? { socket: r.config.control.socket, stateDir: r.config.stateDir } : { socket: `${DEFAULT_STATE_DIR}/agent.sock`, stateDir: DEFAULT_STATE_DIR };
}

const usageErr = (ctx: CommandContext, msg: string) => {
  ctx.io.err(`bollard: ${msg}\nrun "bollard upgrade --help" for usage`);
  return 2;
};

/** "image" when the file holds a GPT header at LBA 1, "bundle" otherwise, null when unreadable. */
export function fileKind(path: string): { kind: "image" | "bundle" } | { error: string } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    return { error: `${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}` };
  }
  try {
    const b = Buffer.alloc(520);
    const n = readSync(fd, b, 0, 520, 0);
    return { kind: n >= 520 && b.subarray(512, 520).toString("latin1") === "EFI PART" ? "image" : "bundle" };
  } finally {
    closeSync(fd);
  }
}

/** The real Api: the local agent's control socket. */
export function socketApi(socket: string, ctx: CommandContext): Api {
  const req = async (method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 10_000) => {
    const r = await controlRequest(socket, method, path, body, timeoutMs);
    if (r.code >= 500 && r.code !== 504) throw new Error(`HTTP ${r.code}: ${(r.body as { error?: string }).error ?? ""}`);
    return r;
  };
  return {
    info: async () => {
      const r = await req("GET", "/upgrade");
      if (r.code !== 200) throw new Error(`GET /upgrade: HTTP ${r.code}`);
      return r.body as Info;
    },
    alarms: async () => {
      const r = await req("GET", "/alarms");
      if (r.code === 404) return [];
      return ((r.body as { active?: AlarmFact[] }).active ?? []).map((a) => ({ id: a.id, severity: a.severity, text: a.text }));
    },
    baseline: async () => {
      const r = await req("GET", "/alarms");
      if (r.code === 404) return [];
      return baselineIds(r.body);
    },
    offer: async (path) => {
      const r = await req("POST", "/upgrade/offer", { path }, 60_000);
      const b = r.body as { status: string; error?: string; sha: string; version: string; size: number };
      if (b.status !== "ok") throw Object.assign(new Error(b.error ?? `HTTP ${r.code}`), { refused: true });
      return b;
    },
    op: async (node, op, sha, extra) => (await req("POST", "/upgrade/op", { node, op, sha, ...extra }, op === "stage" ? 130_000 : 20_000)).body as { status: "ok" | "error"; error?: string; detail?: string },
    flags: async (why, flags) => (await req("POST", "/command", { op: "apply", why, flags }, 20_000)).body as { status: "ok" | "error"; error?: string },
    report: async (r) => void (await req("POST", "/upgrade/report", r)),
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    say: (line) => ctx.io.out(`${new Date().toISOString().slice(11, 23)} ${line}`),
  };
}

export const upgradeCommand: SubCommand = {
  name: "upgrade",
  usage: USAGE,
  help: HELP,
  async run(args, ctx) {
    let p;
    try {
      p = parseArgs({
        args, allowPositionals: true,
        options: { deadline: { type: "string" }, settle: { type: "string" }, json: { type: "boolean" }, "no-reboot": { type: "boolean" }, "this-node": { type: "boolean" }, undrain: { type: "boolean" }, dir: { type: "string" }, sha: { type: "string" } },
      });
    } catch (e) {
      return usageErr(ctx, (e as Error).message);
    }
    const [what, ...more] = p.positionals;
    if (!what || more.length) return usageErr(ctx, "expected: upgrade BUNDLE|IMAGE, or upgrade status");
    const secs = (v: string | undefined, d: number, name: string): number | string => {
      if (v === undefined) return d;
      const n = Number(v);
      return Number.isFinite(n) && n > 0 && n <= 3600 ? n * 1000 : `--${name}: expected seconds (1-3600), got "${v}"`;
    };
    if (what === "status") return (await import("./upgrade-status.ts")).upgradeStatus(socketOf(ctx).socket, ctx, !!(p.values.json || ctx.json));
    if (what === "guard") {
      if (!p.values.dir || !/^[0-9a-f]{64}$/.test(p.values.sha ?? "")) return usageErr(ctx, "expected: upgrade guard --dir DIR --sha SHA256");
      return (await import("../upgrade/guard.ts")).guard(p.values.dir, p.values.sha!, ctx.io);
    }
    if (what === "image-gate") {
      const d = p.values.deadline === undefined ? null : secs(p.values.deadline, 0, "deadline");
      const s = secs(p.values.settle, DEFAULTS.settleMs, "settle");
      if (typeof d === "string") return usageErr(ctx, d);
      if (typeof s === "string") return usageErr(ctx, s);
      const { socket, stateDir } = socketOf(ctx);
      return (await import("../upgrade/image-gate.ts")).imageGate(socket, stateDir, { deadlineMs: d, settleMs: s }, ctx.io);
    }
    const path = what.startsWith("/") ? what : `${process.cwd()}/${what}`;
    const k = fileKind(path);
    if ("error" in k) {
      ctx.io.err(`bollard: ${k.error}`);
      return 1;
    }
    if (k.kind === "image") {
      const d = secs(p.values.deadline, 600_000, "deadline");
      if (typeof d === "string") return usageErr(ctx, d);
      const { socket, stateDir } = socketOf(ctx);
      if (p.values.sha !== undefined && !/^[0-9a-f]{64}$/.test(p.values.sha)) return usageErr(ctx, "--sha: expected a sha256");
      if (p.values["this-node"]) {
        return (await import("../upgrade/image.ts")).imageUpgrade(path, { deadlineMs: d, reboot: !p.values["no-reboot"], socket, sha: p.values.sha, undrain: !!p.values.undrain }, stateDir, ctx.io);
      }
      return (await import("../upgrade/image-rollout.ts")).imageRolloutCmd(path, socketApi(socket, ctx), { deadlineMs: d, socket, stateDir }, ctx);
    }
    const deadlineMs = secs(p.values.deadline, DEFAULTS.deadlineMs, "deadline");
    const settleMs = secs(p.values.settle, DEFAULTS.settleMs, "settle");
    if (typeof deadlineMs === "string") return usageErr(ctx, deadlineMs);
    if (typeof settleMs === "string") return usageErr(ctx, settleMs);
    const api = socketApi(socketOf(ctx).socket, ctx);
    let r;
    try {
      r = await rollout(api, { ...DEFAULTS, path, deadlineMs, settleMs });
    } catch (e) {
      const err = e as Error & { refused?: boolean };
      ctx.io.err(`bollard: ${err.refused ? "refused" : "the agent is not answering"}: ${err.message}`);
      return 1;
    }
    if (ctx.json) ctx.io.out(JSON.stringify(r));
    if (r.ok) {
      if (!ctx.json && r.upgraded.length) ctx.io.out(`ok: ${r.upgraded.join(", ")} upgraded in ${(r.totalMs / 1000).toFixed(1)} s`);
      return 0;
    }
    ctx.io.err(`bollard: ${r.failed ? "" : "refused: "}${r.why}`);
    return 1;
  },
};
