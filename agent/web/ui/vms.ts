// The VMs page (issue 24 item 3): every VM as `bollard vm list` shows it (GET /api/vms: state,
// node, mirror state and replica node, group, priority, what is wrong), the operator's start,
// stop, restart and migrate (POST /api/vms/action: the very command `bollard vm` sends, after a
// confirmation that says what will happen), and the VM's serial console in an xterm, over the
// WebSocket of GET /api/vms/console (the CSRF token rides as a subprotocol, server.ts).
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { membersOf } from "../../console/model.ts";
import type { VmRow } from "../../console/screens-vms.ts";
import { api, type Me } from "./client.ts";
import { can, useAction, type Ctx } from "./pages.ts";

function Console({ vm, me, onClose }: { vm: string; me: Me; onClose: () => void }) {
  const el = useRef<HTMLDivElement>(null);
  const [st, setSt] = useState("connecting…");
  useEffect(() => {
    const term = new Terminal({ convertEol: true, fontSize: 13, rows: 24, cols: 100, scrollback: 2000, disableStdin: !can(me, "operator") });
    term.open(el.current!);
    const ws = new WebSocket(`wss://${location.host}/api/vms/console?vm=${encodeURIComponent(vm)}`, ["bollard-console", `csrf.${me.csrf}`]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => (setSt("connected: what you type goes to the guest"), term.focus());
    ws.onmessage = (e) => term.write(new Uint8Array(e.data as ArrayBuffer));
    ws.onclose = (e) => setSt(e.code === 1006 ? "refused or lost: the audit page says why" : `closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`);
    const enc = new TextEncoder();
    const sub = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    return () => (sub.dispose(), ws.close(), term.dispose());
  }, [vm]);
  return html`<div class="console"><h3>${vm}: serial console <span class="muted" data-testid="console-state">${st}</span> <button onClick=${onClose}>close</button></h3>
    <div ref=${el} data-testid="console"></div></div>`;
}

export function Vms({ ctx }: { ctx: Ctx }) {
  const { me } = ctx;
  const act = useAction(me);
  const [r, setR] = useState<{ code: number; body: Record<string, unknown> } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [to, setTo] = useState<Record<string, string>>({});
  useEffect(() => {
    let stop = false;
    const read = () => api("/api/vms", me).then((x) => !stop && setR(x));
    void read();
    const t = setInterval(read, 3000);
    return () => ((stop = true), clearInterval(t));
  }, []);
  const vms = (r?.body.vms as VmRow[] | undefined) ?? [];
  const op = can(me, "operator");
  const members = membersOf(ctx.m);
  const ask = (v: VmRow, action: string) => {
    const node = action === "migrate" ? to[v.name] || null : null;
    const text = {
      start: `Start ${v.name}: it is placed on a node with room (its group's anti-affinity and priority ${v.priority} decide) and boots there.`,
      stop: `Stop ${v.name} on ${v.node ?? "its node"}: the guest is asked to power off, then killed; nothing starts it again until it is started.`,
      restart: `Restart ${v.name}: its QEMU is stopped and started again on ${v.node ?? "its node"}; the guest reboots.`,
      migrate: `Live-migrate ${v.name} from ${v.node ?? "?"} to ${node ?? "the best other node"}, with its disks: the guest keeps running, pausing for a moment at the switch.`,
    }[action]!;
    act.ask(text, "/api/vms/action", { vm: v.name, action, ...(node ? { node } : {}) });
  };
  return html`<section>${act.view}<h2>VMs</h2>
    ${!r ? html`<p>reading…</p>` : r.code !== 200 || vms.length === 0
      ? html`<p data-testid="no-vms">No VMs are defined in this cluster${r.code !== 200 ? ` (${String(r.body.error ?? "this agent runs none")})` : ""}.</p>`
      : html`<p class="muted">QEMU ${r.body.accel ? `under ${String(r.body.accel).toUpperCase()}` : "(accelerator probe under way)"}</p>
        <table><thead><tr><th>name</th><th>state</th><th>node</th><th>mirror</th><th>replica</th><th>group</th><th>priority</th><th>problem</th><th></th></tr></thead><tbody>
        ${vms.map((v) => html`<tr data-testid=${`vm-${v.name}`}><td>${v.name}</td><td>${v.state}</td><td data-testid="vm-node">${v.node ?? "-"}</td><td>${v.mirror}</td><td>${v.replica ?? "-"}${v.replica ? (v.inSync ? " (in sync)" : " (syncing)") : ""}</td><td>${v.group ?? "-"}</td><td>${v.priority}</td><td class="text">${v.problem ?? ""}</td>
          <td>${op && html`${v.state.startsWith("running") ? html`<button onClick=${() => ask(v, "stop")}>stop</button> <button onClick=${() => ask(v, "restart")}>restart</button>
            <select aria-label="migrate to" onChange=${(e: Event) => setTo({ ...to, [v.name]: (e.target as HTMLSelectElement).value })}><option value="">any node</option>${members.filter((n) => n !== v.node).map((n) => html`<option>${n}</option>`)}</select> <button onClick=${() => ask(v, "migrate")}>migrate</button>`
            : html`<button onClick=${() => ask(v, "start")}>start</button>`}`}
            ${op && v.node && html` <button data-testid="open-console" onClick=${() => setOpen(v.name)}>console</button>`}</td></tr>`)}</tbody></table>`}
    ${open && html`<${Console} key=${open} vm=${open} me=${me} onClose=${() => setOpen(null)} />`}
  </section>`;
}
