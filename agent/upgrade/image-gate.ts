// `bollard upgrade image-gate`: the health gate of a root slot on trial (docs/upgrade.md "Image
// upgrade"), run at boot by units/bollard-boot-gate.service, which systemd starts only when
// systemd-boot booted a boot-counted entry (the LoaderBootCountPath EFI variable is set) and
// orders before boot-complete.target: systemd-bless-boot.service marks the entry good only
// once this has exited 0. The gate is the rolling upgrade's (gate.ts), on this node: its agent
// runs the image's own bundle, has quorum and a leader, its replicas are in sync, no alarm that
// was not active before the upgrade, held --settle, within the deadline the upgrade set.
//   pass  loader.conf's default becomes this entry (the next boots keep this root), result
//         "blessed", exit 0 (then systemd-bless-boot good)
//   fail  result "rolled-back" with why, exit 1: the unit's OnFailure= runs bollard-boot-bad
//         (systemd-bless-boot bad, reboot), and the loader's default, the old root, boots
// Not on trial (no trial file, or the entry booted carries no counter): exit 0, nothing done.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Io } from "../cli/types.ts";
import { controlRequest } from "../runtime/control.ts";
import { Gate, type AlarmFact, type NodeFacts } from "./gate.ts";
import { ESP_DIR, mountEsp } from "./image.ts";
import { LOADER_GUID, SLOTS, activeSlot, bootAction, efiString, entryGlob, withDefault, type ImageResult, type ImageTrial } from "./image-plan.ts";
import { holderPos, type Info } from "./rollout.ts";

export const IMAGE_BUNDLE = "/usr/lib/bollard/bollard.js";

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return null;
  }
}

export function writeResult(stateDir: string, r: ImageResult): void {
  const p = join(stateDir, "image-result.json");
  writeFileSync(`${p}.tmp`, `${JSON.stringify(r)}\n`);
  renameSync(`${p}.tmp`, p);
}

export async function imageGate(socket: string, stateDir: string, o: { deadlineMs: number | null; settleMs: number }, io: Io): Promise<number> {
  const t0 = Date.now();
  const say = (s: string) => io.out(`image-gate: ${s}`);
  const trial = readJson<ImageTrial>(join(stateDir, "image-trial.json"));
  let selected: string | null = null;
  try {
    selected = efiString(readFileSync(`/sys/firmware/efi/efivars/LoaderEntrySelected-${LOADER_GUID}`));
  } catch { /* not booted by systemd-boot */ }
  mountEsp();
  const entries = readdirSync(join(ESP_DIR, "loader/entries"));
  const slot = activeSlot(readFileSync("/proc/cmdline", "utf8"), SLOTS);
  const probe = bootAction({ selectedId: selected, entries, gate: "pass", why: "" });
  if (probe.do === "nothing") {
    say(`nothing to judge: ${probe.why}`);
    return 0;
  }
  const version = trial?.version ?? "?";
  const deadlineMs = o.deadlineMs ?? trial?.deadlineMs ?? 600_000;
  const baseline = new Set(trial?.baseline ?? []);
  let sha: string;
  try {
    sha = createHash("sha256").update(readFileSync(realpathSync(IMAGE_BUNDLE))).digest("hex");
  } catch (e) {
    sha = "";
    say(`cannot read the image's bundle: ${(e as Error).message}`);
  }
  const to = slot.ok ? slot.slot : trial?.to ?? "a";
  if (probe.do !== "bless") return 0;
  say(`judging ${probe.entryId} (${version}, slot ${to.toUpperCase()}) within ${deadlineMs / 1000} s`);
  const gate = new Gate({ deadline: t0 + deadlineMs, settleMs: o.settleMs, maxRecvAgoMs: 3000, maxLagMs: 2000 });
  let last = "";
  let verdict;
  let self: string | null = null;
  for (;;) {
    try {
      const [u, a] = await Promise.all([controlRequest(socket, "GET", "/upgrade", undefined, 5000), controlRequest(socket, "GET", "/alarms", undefined, 5000)]);
      if (u.code !== 200) throw new Error(`GET /upgrade: HTTP ${u.code}`);
      const i = u.body as Info;
      self = i.self;
      const alarms = a.code === 200 ? ((a.body as { active?: AlarmFact[] }).active ?? []) : [];
      const target = i.nodes.find((n: NodeFacts) => n.node === i.self);
      const holders = { mysql: i.assignments.mysql, redis: i.assignments.redis };
      verdict = target
        ? gate.step({ now: Date.now(), target, sha, holders, replicas: i.replicas[i.self] ?? { mysql: null, redis: null }, holderPos: holderPos(i, holders), alarms, baseline })
        : gate.noFacts(Date.now(), `${i.self} is not a member of its own view`);
    } catch (e) {
      verdict = gate.noFacts(Date.now(), `the agent does not answer: ${(e as Error).message}`);
    }
    if (verdict.verdict !== "wait") break;
    const w = verdict.unmet.join("; ");
    if (w !== last) say(`waiting (${Math.round((Date.now() - t0) / 1000)} s): ${w}`);
    last = w;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const act = bootAction({ selectedId: selected, entries, gate: verdict.verdict, why: verdict.why });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (act.do === "bless") {
    const conf = join(ESP_DIR, "loader/loader.conf");
    writeFileSync(`${conf}.tmp`, withDefault(readFileSync(conf, "utf8"), entryGlob(to)));
    renameSync(`${conf}.tmp`, conf);
    writeResult(stateDir, { step: "blessed", version, slot: to, why: `${act.why} after ${secs} s`, at: Date.now() });
    say(`PASSED in ${secs} s: ${act.entryId} (${entryGlob(to)}) is the default now; systemd-bless-boot marks it good`);
    if (trial?.undrain && self) {
      const r = await controlRequest(socket, "POST", "/command", { op: "apply", why: `image upgrade of ${self}: maintenance off`, flags: { [`maint:${self}`]: null } }, 20_000).catch((e: Error) => ({ code: 0, body: { error: e.message } }));
      say(r.code === 200 ? `maintenance off for ${self}` : `maintenance NOT taken off (${JSON.stringify(r.body).slice(0, 200)}): 'bollard maintenance ${self} off'`);
    }
    return 0;
  }
  if (act.do === "nothing") return 0;
  writeResult(stateDir, { step: "rolled-back", version, slot: to, why: `${act.why} (after ${secs} s)`, at: Date.now() });
  say(`FAILED after ${secs} s: ${act.why}; marking ${act.entryId} bad and rebooting into the default`);
  return 1;
}
