// The A/B image upgrade's pure decisions (agent/upgrade/image-plan.ts): the running slot, the
// boot-counted entry of the other one, and blessing or rejecting it after the health gate.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { activeSlot, bootAction, parseEntry, planImage } from "../../agent/upgrade/image-plan.ts";

const SLOTS = { a: "819b4dff-cc4a-4da8-918b-ec8421cf5ace", b: "5ebee527-3626-4024-a20d-0a7c10638479" };
const OPTS = `root=PARTUUID=${SLOTS.a} rootfstype=ext4 ro console=ttyS0,115200 panic=10`;

const I = suite("image plan: the slot not running, with a boot counter");

I("the running slot from the kernel command line", () => {
  assert.equal(activeSlot(`BOOT_IMAGE=x ${OPTS}`, SLOTS), { ok: true, slot: "a" });
  assert.equal(activeSlot(`root=PARTUUID=${SLOTS.b.toUpperCase()} ro`, SLOTS), { ok: true, slot: "b" });
  assert.match((activeSlot("root=/dev/sda3 ro", SLOTS) as { error: string }).error, /names no root=PARTUUID=/);
  assert.match((activeSlot("root=PARTUUID=00000000-0000-0000-0000-000000000000", SLOTS) as { error: string }).error, /neither root slot A nor B/);
});

I("entry names: id and boot counter (systemd Automatic Boot Assessment)", () => {
  assert.equal(parseEntry("bollard-b+3.conf"), { id: "bollard-b.conf", left: 3, done: null });
  assert.equal(parseEntry("bollard-b+0-3.conf"), { id: "bollard-b.conf", left: 0, done: 3 });
  assert.equal(parseEntry("bollard-a.conf"), { id: "bollard-a.conf", left: null, done: null });
  assert.is(parseEntry("loader.txt"), null);
});

I("running A: the image goes to B, entry bollard-b+3.conf with B's root; an old B entry is replaced", () => {
  const r = planImage({ cmdline: OPTS, slots: SLOTS, entries: ["bollard-a.conf", "bollard-b+0-3.conf"], defaultId: "bollard-a.conf", version: "0.2.0", tries: 3, options: OPTS });
  assert.ok(r.ok);
  const p = (r as { plan: import("../../agent/upgrade/image-plan.ts").ImagePlan }).plan;
  assert.equal([p.from, p.to, p.entryFile, p.entryId, p.entryGlob, p.espDir, p.remove], ["a", "b", "bollard-b+3.conf", "bollard-b.conf", "bollard-b*.conf", "bollard/b", ["bollard-b+0-3.conf"]]);
  assert.ok(p.entryText.includes(`options root=PARTUUID=${SLOTS.b} rootfstype=ext4 ro console=ttyS0,115200 panic=10\n`), p.entryText);
  assert.ok(p.entryText.includes("linux   /bollard/b/vmlinuz\n"));
});

I("refused: the slot to overwrite is the loader's default; tries out of range", () => {
  assert.match((planImage({ cmdline: OPTS, slots: SLOTS, entries: [], defaultId: "bollard-b.conf", version: "0.2.0", tries: 3, options: OPTS }) as { error: string }).error, /default is bollard-b\.conf/);
  assert.match((planImage({ cmdline: OPTS, slots: SLOTS, entries: [], defaultId: "bollard-b*.conf", version: "0.2.0", tries: 3, options: OPTS }) as { error: string }).error, /default is bollard-b\*\.conf/);
  assert.ok(planImage({ cmdline: OPTS, slots: SLOTS, entries: [], defaultId: "bollard-a*.conf", version: "0.2.0", tries: 3, options: OPTS }).ok);
  assert.match((planImage({ cmdline: OPTS, slots: SLOTS, entries: [], defaultId: null, version: "0.2.0", tries: 0, options: OPTS }) as { error: string }).error, /tries: expected 1-9/);
});

I.run();

const B = suite("image plan: at boot, bless or reject what was booted");

B("an entry on trial is blessed when the gate passes, rejected when it fails; a blessed one is left alone", () => {
  const entries = ["bollard-a.conf", "bollard-b+2-1.conf"];
  assert.equal(bootAction({ selectedId: "bollard-b.conf", entries, gate: "pass", why: "held 3 s" }), { do: "bless", entryId: "bollard-b.conf", why: "health gate passed: held 3 s" });
  assert.equal(bootAction({ selectedId: "bollard-b.conf", entries, gate: "fail", why: "no quorum" }), { do: "reject", entryId: "bollard-b.conf", why: "health gate failed: no quorum" });
  assert.equal(bootAction({ selectedId: "bollard-a.conf", entries, gate: "fail", why: "x" }).do, "nothing");
  assert.equal(bootAction({ selectedId: null, entries, gate: "pass", why: "x" }).do, "nothing");
  assert.equal(bootAction({ selectedId: "bollard-c.conf", entries, gate: "pass", why: "x" }).do, "nothing");
  // systemd-boot 252 reports the id as it found the file, counter included
  assert.equal(bootAction({ selectedId: "bollard-b+3.conf", entries, gate: "pass", why: "x" }).do, "bless");
  assert.equal(bootAction({ selectedId: "bollard-a.conf", entries: ["bollard-a+1-2.conf"], gate: "fail", why: "x" }).do, "reject");
});

B.run();
