// The console's terminal output (issue 6): a screen buffer and a VT100 writer that sends only
// what changed. Every byte costs time on a serial line (115200 baud: ~11.5 KB/s), so a frame
// is compared with what the terminal already shows, row by row, and only the changed runs
// are written, each after the cheapest cursor move. Plain VT100 (ANSI X3.64) only, no
// terminfo: CUP `ESC[r;cH`, CUF/CUB `ESC[nC`/`ESC[nD`, EL `ESC[K`, ED `ESC[2J`, SGR 7
// (reverse) and 0, DECAWM off `ESC[?7l` (so writing the last column never scrolls). Cursor
// hiding `ESC[?25l` is VT220; a VT100 ignores it. ASCII only: anything else becomes '?'.

/** A row of a frame: text, or text in reverse video (the header bar, a selected row). */
export type Line = string | { text: string; rev: true };

interface Row {
  /** exactly `width` printable ASCII characters */
  text: string;
  rev: boolean;
}

const CSI = "\x1b[";
/** equal characters between two changed runs up to which one write is cheaper than a move */
const GAP = 4;
const GAP_REV = 10;

/** Printable ASCII only: tabs become a space, everything else outside 0x20-0x7e a '?'. */
export function ascii(s: string): string {
  return s.replace(/\t/g, " ").replace(/[^\x20-\x7e]/g, "?");
}

export const lineText = (l: Line): string => (typeof l === "string" ? l : l.text);

export class Vt100Screen {
  /** what the terminal shows; null when unknown (the next update is a full repaint) */
  private shown: Row[] | null = null;
  /** cursor position, 0-based; null when unknown */
  private cur: { r: number; c: number } | null = null;

  constructor(
    public width = 80,
    public height = 24,
  ) {}

  /** Sent once when the console starts: autowrap off, cursor hidden. */
  static enter(): string {
    return `${CSI}?7l${CSI}?25l`;
  }

  /** Sent when it exits: attributes off, autowrap and cursor back, screen cleared. */
  static leave(): string {
    return `${CSI}m${CSI}?7h${CSI}?25h${CSI}H${CSI}2J`;
  }

  /** Forget what the terminal shows (after a resize, Ctrl-L, or output from elsewhere). */
  invalidate(): void {
    this.shown = null;
    this.cur = null;
  }

  resize(width: number, height: number): void {
    this.width = width;
    this.height = height;
    this.invalidate();
  }

  /** The bytes that turn what the terminal shows into `lines` (rows past `height` are cut). */
  update(lines: readonly Line[]): string {
    const next = Array.from({ length: this.height }, (_, r) => this.row(lines[r]));
    let prev = this.shown;
    let out = "";
    if (!prev) {
      out += `${CSI}m${CSI}H${CSI}2J`;
      this.cur = { r: 0, c: 0 };
      prev = Array.from({ length: this.height }, () => ({ text: " ".repeat(this.width), rev: false }));
    }
    for (let r = 0; r < this.height; r++) out += this.diff(r, prev[r]!, next[r]!);
    this.shown = next;
    return out;
  }

  /** What the terminal shows now, as text (tests). */
  text(): string[] {
    return (this.shown ?? []).map((r) => r.text.trimEnd());
  }

  private row(l: Line | undefined): Row {
    const t = ascii(l === undefined ? "" : lineText(l)).slice(0, this.width).padEnd(this.width);
    return { text: t, rev: typeof l === "object" && l !== null && l.rev };
  }

  private diff(r: number, a: Row, b: Row): string {
    if (a.text === b.text && a.rev === b.rev) return "";
    const w = this.width;
    const end = (x: Row) => (x.rev ? w : x.text.trimEnd().length);
    if (a.rev !== b.rev) {
      // the whole row: its attribute changes
      if (b.rev) return this.moveTo(r, 0) + this.write(r, 0, b.text, true);
      const t = b.text.slice(0, end(b));
      return this.moveTo(r, 0) + this.write(r, 0, t, false) + (end(b) < w ? this.erase() : "");
    }
    const bEnd = end(b);
    const gap = b.rev ? GAP_REV : GAP;
    let out = "";
    for (let i = 0; i < bEnd; ) {
      if (a.text[i] === b.text[i]) {
        i++;
        continue;
      }
      let last = i;
      for (let k = i + 1; k < bEnd && k - last <= gap; k++) if (a.text[k] !== b.text[k]) last = k;
      out += this.moveTo(r, i) + this.write(r, i, b.text.slice(i, last + 1), b.rev);
      i = last + 1;
    }
    const aEnd = end(a);
    if (!b.rev && aEnd > bEnd) {
      // clear what the old row had past the new one's end: EL, or spaces when shorter
      const n = aEnd - bEnd;
      out += this.moveTo(r, bEnd) + (n > 3 || aEnd >= w ? this.erase() : this.write(r, bEnd, " ".repeat(n), false));
    }
    return out;
  }

  private write(r: number, c: number, s: string, rev: boolean): string {
    // with autowrap off (DECAWM reset) the cursor stays on the last column once it is written
    this.cur = { r, c: Math.min(c + s.length, this.width - 1) };
    return rev ? `${CSI}7m${s}${CSI}m` : s;
  }

  private erase(): string {
    return `${CSI}K`;
  }

  /** The shortest of CUP, CR, CR LF, CUF and CUB that puts the cursor at (r, c). */
  private moveTo(r: number, c: number): string {
    const cur = this.cur;
    this.cur = { r, c };
    if (cur && cur.r === r && cur.c === c) return "";
    const options = [r === 0 && c === 0 ? `${CSI}H` : c === 0 ? `${CSI}${r + 1}H` : `${CSI}${r + 1};${c + 1}H`];
    if (cur && cur.r === r) {
      if (c === 0) options.push("\r");
      if (c > cur.c) options.push(c - cur.c === 1 ? `${CSI}C` : `${CSI}${c - cur.c}C`);
      if (c < cur.c) options.push(cur.c - c === 1 ? `${CSI}D` : `${CSI}${cur.c - c}D`);
    }
    if (cur && cur.r + 1 === r && c === 0) options.push("\r\n");
    return options.reduce((x, y) => (y.length < x.length ? y : x));
  }
}
