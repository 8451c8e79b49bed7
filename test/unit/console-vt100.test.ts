// The console's VT100 writer: what a full repaint and a one-field change cost in bytes, and
// that the bytes, played on a small VT100 model, put exactly the frame on the screen.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { renderFrame } from "../../agent/console/render.ts";
import type { ScreenNo, Ui } from "../../agent/console/ui.ts";
import { ascii, lineText, Vt100Screen, type Line } from "../../agent/console/vt100.ts";
import { model } from "./console-fixture.ts";

/** A VT100 subset: CUP, CUF, CUB, CR, LF, EL, ED 2, SGR (ignored), DECAWM off. */
class Terminal {
  grid = Array.from({ length: 24 }, () => Array<string>(80).fill(" "));
  r = 0;
  c = 0;
  play(bytes: string): void {
    for (let i = 0; i < bytes.length; i++) {
      const ch = bytes[i]!;
      if (ch === "\x1b") {
        const m = /^\x1b\[([?0-9;]*)([A-Za-z])/.exec(bytes.slice(i))!;
        assert.ok(m, `an escape sequence at ${i}: ${JSON.stringify(bytes.slice(i, i + 8))}`);
        i += m[0].length - 1;
        const p = m[1]!.split(";").map((x) => Number(x || "0"));
        if (m[2] === "H") [this.r, this.c] = [(p[0] || 1) - 1, (p[1] || 1) - 1];
        else if (m[2] === "C") this.c = Math.min(79, this.c + (p[0] || 1));
        else if (m[2] === "D") this.c = Math.max(0, this.c - (p[0] || 1));
        else if (m[2] === "K") for (let k = this.c; k < 80; k++) this.grid[this.r]![k] = " ";
        else if (m[2] === "J") this.grid.forEach((row) => row.fill(" "));
        continue;
      }
      if (ch === "\r") this.c = 0;
      else if (ch === "\n") this.r = Math.min(23, this.r + 1);
      else {
        this.grid[this.r]![this.c] = ch;
        this.c = Math.min(79, this.c + 1); // autowrap off: the last column is overwritten
      }
    }
  }
  text(): string[] {
    return this.grid.map((r) => r.join("").trimEnd());
  }
}

const ui = (screen: ScreenNo): Ui => ({ screen, sel: { alarms: 0, logs: 0, events: 0 }, logLevel: "info", logNode: "node1", eventNode: "all", eventKinds: "timeline", message: null, prompt: null, actions: { at: "menu", note: null } });
const plain = (f: Line[]) => f.map((l) => ascii(lineText(l)).slice(0, 80).trimEnd());

const V = suite("vt100 writer");

V("a full repaint of every screen is at most 2 KB, and draws the frame", () => {
  const figures: string[] = [];
  for (const s of [1, 2, 3, 4, 5, 6, 7] as ScreenNo[]) {
    const f = renderFrame(model(), ui(s));
    const bytes = new Vt100Screen().update(f);
    const t = new Terminal();
    t.play(bytes);
    assert.equal(t.text(), plain(f), `screen ${s} as drawn`);
    assert.ok(bytes.length <= 2048, `screen ${s}: ${bytes.length} bytes`);
    figures.push(`${s}:${bytes.length}`);
  }
  console.log(`  full repaint, bytes per screen: ${figures.join(" ")}`);
});

V("the worst case, 24 full rows of text, is still under 2 KB", () => {
  const f: Line[] = Array.from({ length: 24 }, (_, r) => (r === 0 ? { text: "x".repeat(80), rev: true as const } : String.fromCharCode(65 + r).repeat(80)));
  const bytes = new Vt100Screen().update(f);
  const t = new Terminal();
  t.play(bytes);
  assert.equal(t.text(), plain(f));
  console.log(`  full repaint, 24 rows of 80 characters: ${bytes.length} bytes`);
  assert.ok(bytes.length <= 2048);
});

V("a one-field change is one cursor move and the new text", () => {
  const v = new Vt100Screen();
  const m = model();
  v.update(renderFrame(m, ui(1)));
  const m2 = model();
  m2.hw.nodes.node3!.power = "off";
  m2.hw.nodes.node3!.tempC = null;
  const bytes = v.update(renderFrame(m2, ui(1)));
  // row 6 (node3): POWER "on" -> "off" at column 39 (0-based), TEMP "39C" -> "-" at 46; one run
  assert.is(bytes, "\x1b[6;41Hff   -  ");
  console.log(`  one field changed (power on -> off, temp 39C -> -): ${bytes.length} bytes`);
  const same = v.update(renderFrame(m2, ui(1)));
  assert.is(same, "", "nothing changed: nothing sent");
});

V("a shorter line is cleared with EL, a row turning reverse is redrawn whole", () => {
  const v = new Vt100Screen(20, 3);
  v.update(["hello world", "abc", ""]);
  assert.is(v.update(["hello", "abc", ""]), "\x1b[1;6H\x1b[K");
  assert.is(v.update(["hello", { text: "abc", rev: true }, ""]), "\r\n\x1b[7mabc                 \x1b[m");
});

V("random frame sequences: what the terminal shows is always the last frame", () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  const v = new Vt100Screen();
  const t = new Terminal();
  let f: Line[] = [];
  for (let round = 0; round < 300; round++) {
    f = Array.from({ length: 24 }, (_, r) => {
      const prev = f[r] === undefined ? "" : lineText(f[r]!);
      const keep = rnd(3) > 0;
      const text = keep ? prev : Array.from({ length: rnd(81) }, () => " abcdef  XYZ-0123456789"[rnd(23)]).join("");
      const edited = rnd(4) === 0 ? text.slice(0, rnd(80)) + "Q" + text.slice(rnd(80)) : text;
      return rnd(10) === 0 ? { text: edited, rev: true as const } : edited;
    });
    if (rnd(25) === 0) v.invalidate();
    t.play(v.update(f));
    assert.equal(t.text(), plain(f), `round ${round}`);
  }
});

V("ascii: only printable ASCII reaches the terminal", () => {
  assert.is(ascii("temp 41\u00b0C\tok\x1b[2J"), "temp 41?C ok?[2J");
});

V.run();
