// A console frame, as a pure function of the Model and the console's own state (Ui): the top
// line (OK / DEGRADED / CRITICAL, why, leader, term, VIP, this node), the screen tabs, the
// screen's body and the bottom line (how fresh the data is, the keys, a message or a prompt).
// Width 80; height 24 unless the terminal says it has more rows.
import { actionsScreen } from "./actions.ts";
import { ago, assess, assignments, cut, type Assessment, type Model } from "./model.ts";
import { nodesScreen, networkScreen } from "./screens-cluster.ts";
import { alarmsScreen, eventsScreen, logsScreen } from "./screens-lists.ts";
import { servicesScreen } from "./screens-services.ts";
import { vmsScreen } from "./screens-vms.ts";
import { SCREENS, type ScreenNo, type Ui } from "./ui.ts";
import { ascii, type Line } from "./vt100.ts";

export const WIDTH = 80;
/** The screen's body rows: between the two top lines and the bottom line. */
export const bodyHeight = (height: number) => height - 3;

export function renderFrame(m: Model, ui: Ui, height = 24): Line[] {
  const a = assess(m);
  const rows = bodyHeight(height);
  const body = screenBody(m, ui, rows, a).slice(0, rows);
  while (body.length < rows) body.push("");
  return [topLine(m, a), tabs(ui.screen), ...body, bottomLine(m, ui)].map(clean);
}

/** ASCII only, at most WIDTH columns: what a VT100 on a serial line can show. */
function clean(l: Line): Line {
  return typeof l === "string" ? ascii(l).slice(0, WIDTH) : { text: ascii(l.text).slice(0, WIDTH), rev: true };
}

function screenBody(m: Model, ui: Ui, rows: number, a: Assessment): Line[] {
  switch (ui.screen) {
    case 1:
      return nodesScreen(m, rows, a);
    case 2:
      return servicesScreen(m, rows);
    case 3:
      return alarmsScreen(m, ui, rows);
    case 4:
      return logsScreen(m, ui, rows);
    case 5:
      return eventsScreen(m, ui, rows);
    case 6:
      return networkScreen(m, rows);
    case 7:
      return actionsScreen(m, ui.actions, rows);
    case 8:
      return vmsScreen(m, rows);
  }
}

/** `DEGRADED node3 down (+2)   leader node1 term 7  VIP 198.18.0.10@node1  [node2]` */
export function topLine(m: Model, a: Assessment): Line {
  const v = m.status.body?.view;
  const leader = v ? (v.leader ?? "none") : "?";
  const term = v ? String(v.term) : "?";
  const vipAddr = m.vip ? m.vip.replace(/\/\d+$/, "") : null;
  const holder = assignments(m).vip;
  const vip = vipAddr ? `${vipAddr}${holder ? `@${holder}` : " unheld"}` : null;
  const rights = [
    `leader ${leader}  term ${term}${vip ? `  VIP ${vip}` : ""}  node ${m.self}`,
    `leader ${leader} term ${term}${vip ? ` VIP ${vip}` : ""} [${m.self}]`,
    `ldr ${leader} t${term}${vip ? ` ${vip}` : ""} [${m.self}]`,
  ];
  const more = a.reasons.length > 1 ? ` (+${a.reasons.length - 1})` : "";
  const left = `${a.level}${a.reasons.length ? ` ${a.reasons[0]}${more}` : ""}`;
  const right = rights.find((r) => left.length + 2 + r.length <= WIDTH - 2) ?? rights[rights.length - 1]!;
  const room = WIDTH - 2 - right.length - 1;
  const l = left.length <= room ? left : `${cut(a.reasons.length ? `${a.level} ${a.reasons[0]}` : a.level, room - more.length)}${more}`;
  return { text: ` ${l.padEnd(room)} ${right} `, rev: true };
}

export function tabs(screen: ScreenNo): string {
  return SCREENS.map(([n, name]) => (n === screen ? `[${n} ${name}]` : ` ${n} ${name} `)).join("");
}

/** How fresh the data is, the screen's keys or a message/prompt, and the way out. */
export function bottomLine(m: Model, ui: Ui): Line {
  const s = m.status;
  const fresh = !s.body
    ? "NO STATE"
    : !s.live
      ? `AGENT DOWN, last known ${ago(m.now - (s.wall ?? m.now))} old`
      : !s.body.view.quorum
        ? "NO QUORUM: view may be stale"
        : m.now - (s.wall ?? m.now) < 2000
          ? "live"
          : `live, ${ago(m.now - (s.wall ?? m.now))} old`;
  const tail = "L login";
  if (ui.prompt) return { text: cut(`${fresh} | ${ui.prompt}`, WIDTH).padEnd(WIDTH), rev: true };
  const middle = ui.message ?? KEYS[ui.screen];
  const room = WIDTH - fresh.length - tail.length - 6;
  return `${fresh} | ${cut(middle, room).padEnd(room)} | ${tail}`;
}

const KEYS: Record<ScreenNo, string> = {
  1: "1-8 screens  r redraw",
  2: "1-8 screens  r redraw",
  3: "j/k select  a ack  1-8 screens",
  4: "j/k g/G scroll  n node  v level",
  5: "j/k g/G scroll  n node  t all/timeline",
  6: "1-8 screens  r redraw",
  7: "letter: choose  x cancel",
  8: "1-8 screens  r redraw",
};
