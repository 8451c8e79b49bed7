// The console's input decoder: letters, digits, Enter, Backspace, arrows whole or split across
// reads, and escape sequences it does not use (F-keys) swallowed, never read as letters.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { KeyDecoder } from "../../agent/console/keys.ts";

const K = suite("console keys");

K("letters, digits, Enter (CR, LF, CR LF), Backspace, control keys", () => {
  const d = new KeyDecoder();
  assert.equal(d.feed("1aL"), ["1", "a", "L"]);
  assert.equal(d.feed("\r\n\r\n"), ["enter", "enter"]);
  assert.equal(d.feed("\n"), ["enter"]);
  assert.equal(d.feed("\x7f\x08\x03\x0c\x04\t"), ["backspace", "backspace", "ctrl-c", "ctrl-l", "ctrl-d", "tab"]);
  assert.equal(d.feed(Buffer.from([0x01, 0xe9, 0x41])), ["A"], "other control bytes and 8-bit bytes are ignored");
});

K("arrows and paging keys, VT100 and VT220 forms", () => {
  const d = new KeyDecoder();
  assert.equal(d.feed("\x1b[A\x1b[B\x1bOC\x1bOD"), ["up", "down", "right", "left"]);
  assert.equal(d.feed("\x1b[5~\x1b[6~\x1b[1~\x1b[4~\x1b[H\x1b[F"), ["pgup", "pgdn", "home", "end", "home", "end"]);
});

K("F-keys and other sequences are swallowed", () => {
  const d = new KeyDecoder();
  assert.equal(d.feed("\x1bOP\x1b[15~\x1b[1;5A\x1b[?1;2cq"), ["q"]);
});

K("a sequence split across reads waits for its end; a lone ESC is Esc on flush", () => {
  const d = new KeyDecoder();
  assert.equal(d.feed("j\x1b"), ["j"]);
  assert.ok(d.waiting);
  assert.equal(d.feed("["), []);
  assert.equal(d.feed("B"), ["down"]);
  assert.equal(d.feed("\x1b"), []);
  assert.equal(d.flush(), ["esc"]);
  assert.not.ok(d.waiting);
  assert.equal(d.feed("\x1b\x1b[A"), ["esc", "up"]);
});

K.run();
