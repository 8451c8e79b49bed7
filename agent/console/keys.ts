// The console's input (issue 6): bytes from a raw terminal to key names. The console is driven
// by digits and letters, because serial lines mangle function keys; arrows and Page Up/Down
// are understood when they arrive whole (VT100 `ESC [ A`, `ESC O A`; VT220 `ESC [ 5 ~`), and
// any other escape sequence (F-keys, mouse, answers) is swallowed, never read as letters.
// A sequence split across reads (slow serial lines) is kept until its end arrives; a lone ESC
// is a key of its own once `flush()` is called (the console calls it 100 ms later).

export type Key =
  | "up" | "down" | "left" | "right" | "pgup" | "pgdn" | "home" | "end"
  | "enter" | "esc" | "backspace" | "tab" | "ctrl-c" | "ctrl-d" | "ctrl-l"
  /** a printable ASCII character, as itself */
  | string;

const CSI_FINAL: Record<string, Key> = { A: "up", B: "down", C: "right", D: "left", H: "home", F: "end" };
const TILDE: Record<string, Key> = { "1": "home", "7": "home", "4": "end", "8": "end", "5": "pgup", "6": "pgdn" };
const CONTROL: Record<number, Key> = { 0x03: "ctrl-c", 0x04: "ctrl-d", 0x0c: "ctrl-l", 0x09: "tab", 0x7f: "backspace", 0x08: "backspace" };

export class KeyDecoder {
  private pending = "";
  private lastCr = false;

  /** The keys in `data`; an unfinished escape sequence is kept for the next call. */
  feed(data: Buffer | string): Key[] {
    const s = this.pending + (typeof data === "string" ? data : data.toString("latin1"));
    this.pending = "";
    const keys: Key[] = [];
    let i = 0;
    while (i < s.length) {
      const ch = s[i]!;
      const code = ch.charCodeAt(0);
      if (code === 0x1b) {
        const n = sequenceLength(s, i);
        if (n === 0) {
          this.pending = s.slice(i);
          break;
        }
        const k = decodeSequence(s.slice(i, i + n));
        if (k) keys.push(k);
        i += n;
        this.lastCr = false;
        continue;
      }
      i++;
      if (code === 0x0d || code === 0x0a) {
        // CR LF (and LF after CR in another read) is one Enter
        if (!(code === 0x0a && this.lastCr)) keys.push("enter");
        this.lastCr = code === 0x0d;
        continue;
      }
      this.lastCr = false;
      if (CONTROL[code]) keys.push(CONTROL[code]!);
      else if (code >= 0x20 && code <= 0x7e) keys.push(ch);
      // other control characters and 8-bit bytes are ignored
    }
    return keys;
  }

  /** Whether an escape sequence is waiting for its end. */
  get waiting(): boolean {
    return this.pending.length > 0;
  }

  /** What is pending, given up on: a lone ESC is the Esc key; a broken sequence is dropped. */
  flush(): Key[] {
    const p = this.pending;
    this.pending = "";
    return p === "\x1b" ? ["esc"] : [];
  }
}

/** Length of the escape sequence at s[i] (ESC), or 0 when it is not finished yet. */
function sequenceLength(s: string, i: number): number {
  if (i + 1 >= s.length) return 0;
  const second = s[i + 1]!;
  if (second === "[") {
    // CSI: parameters and intermediates 0x20-0x3f, then a final byte 0x40-0x7e
    for (let k = i + 2; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c >= 0x40 && c <= 0x7e) return k - i + 1;
      if (c < 0x20 || c > 0x3f) return k - i; // broken: drop up to here
    }
    return s.length - i > 16 ? s.length - i : 0;
  }
  if (second === "O") return i + 2 < s.length ? 3 : 0; // SS3: one final byte
  if (second === "\x1b") return 1; // ESC ESC: the first is a lone Esc
  return 2; // ESC x (Meta-x): swallowed
}

function decodeSequence(seq: string): Key | null {
  if (seq === "\x1b") return "esc";
  if (seq.startsWith("\x1bO")) return CSI_FINAL[seq[2]!] ?? null;
  if (!seq.startsWith("\x1b[")) return null;
  const final = seq[seq.length - 1]!;
  const params = seq.slice(2, -1);
  if (final === "~") return TILDE[params] ?? null;
  if (params === "" || params === "1") return CSI_FINAL[final] ?? null;
  return null;
}
