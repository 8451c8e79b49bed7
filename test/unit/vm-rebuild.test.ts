// When a lost mirror is rebuilt incrementally and when in full (ha/vm-rebuild.ts): pure.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { bitmapName, okName, rebuildChoice, staleBitmaps, type BitmapInfo } from "../../agent/ha/vm-rebuild.ts";

const bm = (name: string, count = 0, o: Partial<BitmapInfo> = {}): BitmapInfo => ({ name, recording: true, busy: false, count, ...o });
const both = (node: string, copy: string, count: number) => [bm(bitmapName(node, copy), count), bm(okName(node, copy), 0, { recording: false })];

const s = suite("rebuildChoice");

s("a bitmap for the node's copy, marked in sync, on every disk: incremental, with the dirty bytes summed", () => {
  const r = rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: both("n2", "c1", 65536) }, { disk: "b", bitmaps: [...both("n2", "c1", 131072), ...both("n3", "c9", 5)] }]);
  assert.equal(r, { mode: "incremental", bitmap: "bollard.n2.c1", dirtyBytes: 196608, why: "n2 holds an older copy: only the 196608 bytes written since are copied (dirty bitmap)" });
});

s("no bitmap (the source QEMU restarted, or never mirrored there): full, said why", () => {
  const r = rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: both("n3", "c1", 1) }]);
  assert.is(r.mode, "full");
  assert.match(r.why, /no dirty bitmap covers a since n2's copy/);
});

s("the node's file made anew (another copy id): full", () => {
  const r = rebuildChoice("n2", "c2", [{ disk: "a", bitmaps: both("n2", "c1", 1) }]);
  assert.is(r.mode, "full");
  assert.match(r.why, /not the one the dirty bitmap covers/);
});

s("the copy never completed its first sync (no in-sync mark): full", () => {
  const r = rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: [bm(bitmapName("n2", "c1"), 10)] }]);
  assert.is(r.mode, "full");
  assert.match(r.why, /never completed its first copy/);
});

s("one disk of two lacks it: full", () => {
  assert.is(rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: both("n2", "c1", 1) }, { disk: "b", bitmaps: [] }]).mode, "full");
});

s("the node does not say which copy it holds, or the bitmap is busy or disabled: full", () => {
  assert.match(rebuildChoice("n2", null, [{ disk: "a", bitmaps: both("n2", "c1", 1) }]).why, /does not say which copy/);
  assert.match(rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: [bm(bitmapName("n2", "c1"), 1, { busy: true }), bm(okName("n2", "c1"))] }]).why, /in use/);
  assert.match(rebuildChoice("n2", "c1", [{ disk: "a", bitmaps: [bm(bitmapName("n2", "c1"), 1, { recording: false }), bm(okName("n2", "c1"))] }]).why, /not recording/);
});
s.run();

const t = suite("staleBitmaps");
t("another copy's bitmaps of the same node go; other nodes' and other names stay", () => {
  const names = ["bollard.n2.c1", "bollard-ok.n2.c1", "bollard.n2.c0", "bollard-ok.n2.c0", "bollard.n3.c0", "bollard.n22.c0", "bk.full"];
  assert.equal(staleBitmaps(names, "n2", "c1"), ["bollard.n2.c0", "bollard-ok.n2.c0"]);
  assert.equal(staleBitmaps(names, "n2", null), ["bollard.n2.c1", "bollard-ok.n2.c1", "bollard.n2.c0", "bollard-ok.n2.c0"]);
});
t.run();
