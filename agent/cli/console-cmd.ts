// `bollard console [--screen N] [--once]`: the full-screen status menu for tty1 and the serial
// console (docs/console.md). The terminal is put in raw mode; the console runs until the
// operator presses q (exit 0) or L (exit 10: the unit starts a login instead), or the line
// hangs up (exit 0). `--once` prints one frame as plain text and exits (0 when the agent
// answered, 1 when it shows the last known state): for scripts and for looking at a screen
// over ssh without a terminal.
import { parseArgs } from "node:util";
import type { SubCommand } from "./types.ts";
import { ConsoleApp, EXIT_LOGIN, EXIT_QUIT } from "../console/app.ts";
import { HwPoller } from "../console/hw.ts";
import { membersOf } from "../console/model.ts";
import { PinGate, pinFile } from "../console/pin.ts";
import { renderFrame } from "../console/render.ts";
import { configErrors, setup } from "../console/setup.ts";
import { DataSource } from "../console/source.ts";
import type { ScreenNo } from "../console/ui.ts";
import { lineText } from "../console/vt100.ts";
import { writeDiagBundle } from "./diag.ts";

export { EXIT_LOGIN, EXIT_QUIT };

export const consoleCommand: SubCommand = {
  name: "console",
  usage: ["console [--screen N] [--once]    full-screen status menu (tty1, ttyS0); L exits 10 (login)"],
  async run(args, ctx) {
    const { io } = ctx;
    let o: { screen?: string; once?: boolean };
    try {
      o = parseArgs({ args, strict: true, allowPositionals: false, options: { screen: { type: "string" }, once: { type: "boolean" } } }).values;
    } catch (e) {
      io.err(`bollard: console: ${(e as Error).message}\nrun "bollard --help" for usage`);
      return 2;
    }
    const screen = Number(o.screen ?? 1);
    if (!Number.isInteger(screen) || screen < 1 || screen > 7) {
      io.err(`bollard: console: --screen: expected 1-7, got ${JSON.stringify(o.screen)}`);
      return 2;
    }
    const s = setup(ctx);
    if (!s.ok) return io.err(configErrors(ctx.configPath, s.errors)), 2;
    const { model, request, stateDir, config } = s.setup;
    const hw = new HwPoller(config, stateDir, model.hw);
    if (o.once) {
      const src = new DataSource(model, request, stateDir, hw, () => undefined);
      await Promise.all([src.pollStatus(), src.pollAlarms()]);
      if (screen === 1 || screen === 6) {
        hw.readLocal();
        await hw.readRemote(Date.now);
      }
      if (screen === 4) await src.pollLogs(model.self, "info");
      if (screen === 5) await Promise.all(membersOf(src.model).map((n) => src.pollEvents(n)));
      hw.close();
      const ui = { screen: screen as ScreenNo, sel: { alarms: 0, logs: 0, events: 0 }, logLevel: "info" as const, logNode: model.self, eventNode: "all", eventKinds: "timeline" as const, message: null, prompt: null, actions: { at: "menu" as const, note: null } };
      io.out(renderFrame({ ...src.model, hw: hw.hw, now: Date.now() }, ui).map((l) => lineText(l).trimEnd()).join("\n"));
      return src.model.status.live ? 0 : 1;
    }
    return runTerminal(ctx.configPath, screen as ScreenNo, s.setup, hw);
  },
};

async function runTerminal(configPath: string, screen: ScreenNo, s: Extract<ReturnType<typeof setup>, { ok: true }>["setup"], hw: HwPoller): Promise<number> {
  const out = process.stdout;
  const inp = process.stdin;
  const app = new ConsoleApp({
    model: s.model,
    request: s.request,
    stateDir: s.stateDir,
    hw,
    pin: new PinGate(pinFile()),
    diag: (progress) => writeDiagBundle({ configPath, progress }).then((r) => r.path),
    term: {
      write: (b) => void out.write(b),
      size: () => (out.isTTY && out.columns > 0 && out.rows > 0 ? { cols: out.columns, rows: out.rows } : null),
    },
  });
  app.ui.screen = screen;
  if (inp.isTTY) inp.setRawMode(true);
  const onData = (d: Buffer) => app.input(d);
  const onResize = () => app.resize();
  const onSignal = () => app.stop(EXIT_QUIT);
  inp.on("data", onData);
  inp.on("end", onSignal); // the line hung up
  out.on("resize", onResize);
  out.on("error", onSignal); // EPIPE/EIO: the terminal is gone
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.on(sig, onSignal);
  inp.resume();
  const code = await app.run();
  inp.off("data", onData);
  inp.off("end", onSignal);
  out.off("resize", onResize);
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.off(sig, onSignal);
  if (inp.isTTY) inp.setRawMode(false);
  inp.pause();
  return code;
}
