// agent/console/: the TTY menu, `bollard console` (docs/console.md): the model, the screens,
// keys, VT100 output, and the data source that polls the agent; cli/console-cmd.ts runs it.
//
// The console's controller: keys change the console's state (Ui), the data source keeps the
// Model, and every change redraws the frame through the VT100 writer, which sends only what
// changed. Exits with EXIT_QUIT (q) or EXIT_LOGIN (L: the unit then starts a login).
import { ActionFlow } from "./actions.ts";
import type { HwPoller } from "./hw.ts";
import { KeyDecoder, type Key } from "./keys.ts";
import { cut, membersOf, type Model } from "./model.ts";
import type { PinGate } from "./pin.ts";
import { bodyHeight, renderFrame } from "./render.ts";
import { sortAlarms, visibleEvents } from "./screens-lists.ts";
import { DataSource, POLL_MS, type Request, type Wants } from "./source.ts";
import type { LogLevel, ScreenNo, Ui } from "./ui.ts";
import { Vt100Screen } from "./vt100.ts";

export const EXIT_QUIT = 0;
export const EXIT_LOGIN = 10;

export interface ConsoleTerminal {
  write(bytes: string): void;
  /** the terminal's size, or null when unknown (a serial line): 80x24 then */
  size(): { cols: number; rows: number } | null;
}

export interface ConsoleOptions {
  model: Model;
  request: Request;
  stateDir: string;
  hw: HwPoller | null;
  pin: PinGate;
  diag(progress: (s: string) => void): Promise<string>;
  term: ConsoleTerminal;
  wall?: () => number;
}

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];
const ESC_WAIT_MS = 100;

export class ConsoleApp {
  readonly ui: Ui;
  readonly screen = new Vt100Screen(80, 24);
  readonly source: DataSource;
  readonly flow: ActionFlow;
  private readonly keys = new KeyDecoder();
  private timers: NodeJS.Timeout[] = [];
  private escTimer: NodeJS.Timeout | null = null;
  private pending: NodeJS.Timeout | null = null;
  private finish: ((code: number) => void) | null = null;
  private ackId: string | null = null;

  constructor(private readonly o: ConsoleOptions) {
    this.source = new DataSource(o.model, o.request, o.stateDir, o.hw, () => this.schedule(), o.wall);
    this.ui = {
      screen: 1, sel: { alarms: 0, logs: 0, events: 0 }, logLevel: "info", logNode: o.model.self, eventNode: "all", eventKinds: "timeline",
      message: null, prompt: null, actions: { at: "menu", note: null },
    };
    this.flow = new ActionFlow({
      model: () => this.source.model,
      command: async (cmd) => {
        const r = await o.request("POST", "/command", cmd, 15_000);
        return r.body as { status: "ok" | "error"; epoch?: number; error?: string };
      },
      checkPin: (p) => o.pin.check(p),
      blocked: () => o.pin.blocked(),
      diag: (progress) => o.diag(progress),
      changed: () => this.schedule(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    });
  }

  /** Runs until the operator leaves; resolves with the exit code. */
  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    this.o.term.write(Vt100Screen.enter());
    this.resize();
    this.source.tick(this.wants());
    this.render();
    this.timers.push(setInterval(() => { this.source.tick(this.wants()); this.schedule(); }, POLL_MS));
    return done;
  }

  stop(code: number): void {
    if (!this.finish) return;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.pending) clearTimeout(this.pending);
    if (this.escTimer) clearTimeout(this.escTimer);
    this.o.hw?.close();
    this.o.term.write(Vt100Screen.leave());
    const f = this.finish;
    this.finish = null;
    f?.(code);
  }

  /** The terminal changed size (SIGWINCH): repaint all. */
  resize(): void {
    const s = this.o.term.size();
    const rows = s && s.rows >= 24 ? Math.min(s.rows, 60) : 24;
    this.screen.resize(80, rows);
    this.schedule();
  }

  input(data: Buffer | string): void {
    for (const k of this.keys.feed(data)) this.key(k);
    if (this.escTimer) clearTimeout(this.escTimer);
    this.escTimer = this.keys.waiting ? setTimeout(() => { for (const k of this.keys.flush()) this.key(k); }, ESC_WAIT_MS) : null;
  }

  key(k: Key): void {
    this.schedule();
    if (this.ui.prompt) return this.answer(k);
    if (this.ui.screen === 7 && this.flow.modal) {
      this.flow.key(k);
      this.ui.actions = this.flow.view;
      return;
    }
    this.ui.message = null;
    if (/^[1-8]$/.test(k)) return this.show(Number(k) as ScreenNo);
    if (k === "L") return this.stop(EXIT_LOGIN);
    if (k === "q" || k === "Q" || k === "ctrl-d") return this.stop(EXIT_QUIT);
    if (k === "r" || k === "ctrl-l") return this.screen.invalidate();
    if (this.ui.screen === 7) {
      if (!this.flow.key(k)) this.ui.message = this.flow.view.at === "running" ? "an action is in progress: its result shows here" : "press a letter a-f to choose an action";
      this.ui.actions = this.flow.view;
      return;
    }
    const page = bodyHeight(this.screen.height) - 6;
    const move: Partial<Record<Key, number>> = { j: 1, down: 1, k: -1, up: -1, pgdn: page, " ": page, pgup: -page, b: -page };
    const list = this.ui.screen === 3 ? "alarms" : this.ui.screen === 4 ? "logs" : this.ui.screen === 5 ? "events" : null;
    if (list && move[k] !== undefined) {
      // alarms count from the top; logs and events from the newest, at the bottom
      const d = list === "alarms" ? move[k]! : -move[k]!;
      this.ui.sel[list] = Math.max(0, Math.min(this.listLength(list) - 1, this.ui.sel[list] + d));
      return;
    }
    if (list && (k === "g" || k === "home")) return void (this.ui.sel[list] = list === "alarms" ? 0 : Math.max(0, this.listLength(list) - 1));
    if (list && (k === "G" || k === "end")) return void (this.ui.sel[list] = list === "alarms" ? Math.max(0, this.listLength(list) - 1) : 0);
    if (this.ui.screen === 3 && k === "a") return this.askAck();
    if (this.ui.screen === 4 && k === "n") return this.cycleLogNode();
    if (this.ui.screen === 4 && k === "v") {
      this.ui.logLevel = LEVELS[(LEVELS.indexOf(this.ui.logLevel) + 1) % LEVELS.length]!;
      return this.refreshLists();
    }
    if (this.ui.screen === 5 && k === "n") {
      const all = ["all", ...membersOf(this.source.model)];
      this.ui.eventNode = all[(all.indexOf(this.ui.eventNode) + 1) % all.length]!;
      this.ui.sel.events = 0;
      return;
    }
    if (this.ui.screen === 5 && k === "t") {
      this.ui.eventKinds = this.ui.eventKinds === "all" ? "timeline" : "all";
      this.ui.sel.events = 0;
    }
  }

  private show(n: ScreenNo): void {
    this.ui.screen = n;
    this.refreshLists();
  }

  private refreshLists(): void {
    this.source.refresh();
    this.source.tick(this.wants());
  }

  private cycleLogNode(): void {
    const ms = membersOf(this.source.model);
    this.ui.logNode = ms[(ms.indexOf(this.ui.logNode) + 1) % ms.length] ?? this.source.model.self;
    this.ui.sel.logs = 0;
    this.refreshLists();
  }

  private listLength(list: "alarms" | "logs" | "events"): number {
    const m = this.source.model;
    return list === "alarms" ? m.alarms.active.length : list === "logs" ? m.logs.lines.length : visibleEvents(m, this.ui).length;
  }

  private askAck(): void {
    const xs = sortAlarms(this.source.model.alarms.active);
    const a = xs[Math.min(this.ui.sel.alarms, xs.length - 1)];
    if (!a) return void (this.ui.message = "no alarm selected");
    if (a.ackedBy) return void (this.ui.message = `already acknowledged by ${a.ackedBy}`);
    this.ackId = a.id;
    this.ui.prompt = cut(`acknowledge ${a.id}? y/n`, 60);
  }

  private answer(k: Key): void {
    const id = this.ackId;
    this.ui.prompt = null;
    this.ackId = null;
    if (k !== "y" && k !== "Y") return void (this.ui.message = "not acknowledged");
    this.ui.message = `acknowledging ${id}...`;
    const who = `console@${this.source.model.self}`;
    this.o.request("POST", "/alarms/ack", { id, who }, 10_000).then(
      (r) => {
        const b = r.body as { status?: string; error?: string };
        this.ui.message = r.code === 200 && b.status === "ok" ? `acknowledged ${id}` : `not acknowledged: ${b.error ?? `HTTP ${r.code}`}`;
        void this.source.pollAlarms().then(() => this.schedule());
      },
      (e: Error) => (this.ui.message = `not acknowledged: ${e.message}`),
    ).finally(() => this.schedule());
  }

  private wants(): Wants {
    const s = this.ui.screen;
    return { logs: s === 4 ? { node: this.ui.logNode, level: this.ui.logLevel } : null, events: s === 5, hardware: s === 1 || s === 6 };
  }

  /** Redraw soon (changes that arrive together make one update). */
  schedule(): void {
    if (this.pending || !this.finish) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      this.render();
    }, 15);
  }

  render(): void {
    if (!this.finish) return;
    this.ui.actions = this.flow.view;
    const bytes = this.screen.update(renderFrame({ ...this.source.model, now: (this.o.wall ?? Date.now)() }, this.ui, this.screen.height));
    if (bytes) this.o.term.write(bytes);
  }
}
