// Screen 7 (Actions): the few safe things an operator may do from the console. Each is chosen
// with a letter, asks for the node where it needs one, then for confirmation (y) and the
// operator PIN (pin.ts), then shows its progress and its result. The commands are the ones
// `bollard switchover|maintenance|rejoin` send (ha-cmd.ts): flags committed through the
// leader, which the leader's HA manager then carries out.
import type { Command } from "../bus/messages.ts";
import type { CommandResult } from "../runtime/control.ts";
import type { Key } from "./keys.ts";
import { alive, assignments, cut, flags, membersOf, wrap, type Model } from "./model.ts";
import type { PinCheck } from "./pin.ts";
import type { Line } from "./vt100.ts";

export type ActionId = "switchover-mysql" | "switchover-redis" | "maint-on" | "maint-off" | "rejoin" | "diag";

export const ACTIONS: { key: string; id: ActionId; label: string; node: boolean }[] = [
  { key: "a", id: "switchover-mysql", label: "switch over MySQL to another node (planned, no loss)", node: false },
  { key: "b", id: "switchover-redis", label: "switch over Redis to another node", node: false },
  { key: "c", id: "maint-on", label: "maintenance ON for a node (drain it, never fence it)", node: true },
  { key: "d", id: "maint-off", label: "maintenance OFF for a node", node: true },
  { key: "e", id: "rejoin", label: "rejoin a fenced node (power on, ports up)", node: true },
  { key: "f", id: "diag", label: "write a diagnostics bundle (bollard diag)", node: false },
];

export type ActionView =
  | { at: "menu"; note: string | null }
  | { at: "node"; id: ActionId }
  | { at: "confirm"; id: ActionId; node: string | null }
  | { at: "pin"; id: ActionId; node: string | null; typed: number; error: string | null }
  | { at: "running"; id: ActionId; node: string | null; since: number; progress: string }
  | { at: "done"; id: ActionId; node: string | null; ok: boolean; result: string };

export interface ActionDeps {
  model(): Model;
  command(cmd: Command): Promise<CommandResult>;
  checkPin(pin: string): PinCheck;
  /** why actions cannot run now (no PIN file, locked), or null */
  blocked(): string | null;
  /** writes a diagnostics bundle; resolves to its path */
  diag(progress: (s: string) => void): Promise<string>;
  changed(): void;
  sleep(ms: number): Promise<void>;
}

const label = (id: ActionId, node: string | null) => {
  const a = ACTIONS.find((x) => x.id === id)!;
  return id === "maint-on" ? `maintenance ON for ${node}` : id === "maint-off" ? `maintenance OFF for ${node}` : id === "rejoin" ? `rejoin ${node}` : a.label.split(" (")[0]!;
};

export class ActionFlow {
  view: ActionView = { at: "menu", note: null };
  private pin = "";

  constructor(private readonly d: ActionDeps) {}

  /** Whether the flow takes every key (a node, a confirmation or the PIN is being asked). */
  get modal(): boolean {
    return this.view.at === "node" || this.view.at === "confirm" || this.view.at === "pin";
  }

  /** A key on screen 7; returns whether it was used. */
  key(k: Key): boolean {
    const v = this.view;
    const cancel = k === "esc" || k === "ctrl-c" || (k === "x" && v.at !== "pin");
    if (this.modal && cancel) {
      this.pin = "";
      this.view = { at: "menu", note: "cancelled" };
      return true;
    }
    switch (v.at) {
      case "menu":
      case "done": {
        const a = ACTIONS.find((x) => x.key === k);
        if (!a) return false;
        const b = this.d.blocked();
        if (b) return (this.view = { at: "menu", note: b }), true;
        this.view = a.node ? { at: "node", id: a.id } : { at: "confirm", id: a.id, node: null };
        return true;
      }
      case "node": {
        const members = membersOf(this.d.model());
        const i = Number(k) - 1;
        if (/^[1-9]$/.test(k) && members[i]) this.view = { at: "confirm", id: v.id, node: members[i]! };
        return true;
      }
      case "confirm":
        if (k === "y" || k === "Y") {
          this.pin = "";
          this.view = { at: "pin", id: v.id, node: v.node, typed: 0, error: null };
        } else if (k === "n" || k === "N") this.view = { at: "menu", note: "cancelled" };
        return true;
      case "pin":
        if (k === "backspace") this.pin = this.pin.slice(0, -1);
        else if (k === "enter") return this.submit(v.id, v.node), true;
        else if (k.length === 1 && this.pin.length < 64) this.pin += k;
        this.view = { ...v, typed: this.pin.length };
        return true;
      case "running":
        return false;
    }
  }

  private submit(id: ActionId, node: string | null): void {
    const r = this.d.checkPin(this.pin);
    this.pin = "";
    if (!r.ok) {
      this.view = /locked|no operator PIN|PIN file/.test(r.error) ? { at: "menu", note: r.error } : { at: "pin", id, node, typed: 0, error: r.error };
      return;
    }
    const since = Date.now();
    this.view = { at: "running", id, node, since, progress: "starting" };
    const progress = (s: string) => {
      if (this.view.at === "running") this.view = { ...this.view, progress: s };
      this.d.changed();
    };
    void this.perform(id, node, progress).then(
      (r) => (this.view = { at: "done", id, node, ok: r.ok, result: r.text }),
      (e: Error) => (this.view = { at: "done", id, node, ok: false, result: `failed: ${e.message}` }),
    ).finally(() => this.d.changed());
  }

  private async perform(id: ActionId, node: string | null, progress: (s: string) => void): Promise<{ ok: boolean; text: string }> {
    const self = this.d.model().self;
    if (id === "diag") {
      const path = await this.d.diag(progress);
      return { ok: true, text: `bundle written: ${path}` };
    }
    const why = `${label(id, node)}, from the console on ${self}`;
    let cmd: Command;
    const svc = id === "switchover-redis" ? "redis" : "mysql";
    const before = assignments(this.d.model())[svc];
    if (id === "switchover-mysql" || id === "switchover-redis") cmd = { op: "apply", why, flags: { [`switchover:${svc}`]: "any" } };
    else if (id === "maint-on") cmd = { op: "apply", why, flags: { [`maint:${node}`]: "on" } };
    else if (id === "maint-off") cmd = { op: "apply", why, flags: { [`maint:${node}`]: null } };
    else cmd = { op: "apply", why, flags: { [`rejoin:${node}`]: "requested" } };
    progress("asking the leader to commit it");
    const r = await this.d.command(cmd);
    if (r.status !== "ok") return { ok: false, text: `refused: ${r.error ?? "no reason given"}` };
    const epoch = r.epoch ?? 0;
    const committed = `committed in epoch ${epoch}`;
    if (id === "maint-off") return { ok: true, text: `maintenance OFF for ${node}: ${committed}` };
    if (id === "switchover-mysql" || id === "switchover-redis") {
      return this.watch(`${svc} switchover ${committed}; waiting for the new primary`, 60_000, epoch, progress, (m) => {
        const now = assignments(m)[svc];
        if (`switchover:${svc}` in flags(m)) return null;
        if (now && now !== before) return { ok: true, text: `${svc} switched over from ${before ?? "?"} to ${now}` };
        return { ok: false, text: `${svc} did not move (see screen 5 on the leader)` };
      });
    }
    if (id === "maint-on") {
      return this.watch(`maintenance ON for ${node} ${committed}; draining`, 60_000, epoch, progress, (m) => {
        const held = Object.entries(assignments(m)).filter(([, n]) => n === node).map(([s]) => s);
        return held.length ? null : { ok: true, text: `maintenance ON for ${node}: it holds nothing now` };
      });
    }
    return this.watch(`rejoin of ${node} ${committed}; waiting for it to come back`, 180_000, epoch, progress, (m) =>
      alive(m, node!) && !(`fenced:${node}` in flags(m)) ? { ok: true, text: `${node} is back` } : null,
    );
  }

  /** Polls the model until `done` says so, the config has caught up with `epoch`, or `ms` pass. */
  private async watch(what: string, ms: number, epoch: number, progress: (s: string) => void, done: (m: Model) => { ok: boolean; text: string } | null) {
    const t0 = Date.now();
    for (;;) {
      const m = this.d.model();
      const caught = (m.status.body?.view.committed.epoch ?? -1) >= epoch;
      const r = caught ? done(m) : null;
      const s = ((Date.now() - t0) / 1000).toFixed(1);
      if (r) return { ...r, text: `${r.text} (${s} s)` };
      if (Date.now() - t0 > ms) return { ok: false, text: `${what}: not finished after ${ms / 1000} s; it goes on (screens 2 and 5)` };
      progress(`${what} (${s} s)`);
      await this.d.sleep(250);
    }
  }
}

export function actionsScreen(m: Model, v: ActionView, rows: number): Line[] {
  const out: Line[] = ["Actions: each asks for confirmation and the operator PIN.", ""];
  for (const a of ACTIONS) out.push(`  ${a.key}  ${a.label}`);
  out.push("");
  switch (v.at) {
    case "menu":
      out.push(v.note ? cut(v.note, 80) : "Press a letter to choose.");
      break;
    case "node": {
      out.push(`${label(v.id, "which node")}? press its number (x cancels):`);
      membersOf(m).forEach((n, i) => out.push(`  ${i + 1}  ${n}${n === m.self ? " (this node)" : ""}${alive(m, n) === false ? " (down)" : ""}`));
      break;
    }
    case "confirm":
      out.push({ text: cut(`${label(v.id, v.node)}: are you sure? y/n`, 80), rev: true });
      break;
    case "pin":
      out.push({ text: cut(`${label(v.id, v.node)}: operator PIN: ${"*".repeat(v.typed)}_   (Enter; Esc cancels)`, 80), rev: true });
      if (v.error) out.push(v.error);
      break;
    case "running":
      out.push(`${label(v.id, v.node)}: in progress`);
      out.push(...wrap(v.progress, 78).map((l) => `  ${l}`));
      break;
    case "done":
      out.push(`${label(v.id, v.node)}: ${v.ok ? "DONE" : "FAILED"}`);
      out.push(...wrap(v.result, 78).map((l) => `  ${l}`));
      break;
  }
  return out.slice(0, rows);
}
