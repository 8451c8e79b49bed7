// The web console's pages (issue 24 item 3). Each reads the live Model (main.ts) or, for what
// the stream does not carry (logs, samples, VMs, audit), its API route while it is shown.
// Actions (operator and up) ask first, in words that say what will happen, then go through
// POST /api/action, the same commands the CLI sends (ha/requests.ts).
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { alive, assignments, flags, factsOf, haOf, holdsVip, membersOf, type AlarmRow, type EventLine, type Model } from "../../console/model.ts";
import { api, type Me, type PageName } from "./client.ts";
import { timelines, type Timeline } from "./timeline.ts";
import { Vms } from "./vms.ts";


export interface Ctx {
  me: Me;
  m: Model;
  tick: number;
}

export const can = (me: Me, role: "operator" | "admin") => (role === "operator" ? me.role !== "viewer" : me.role === "admin");
const time = (ms: number | string | null | undefined) => (ms === null || ms === undefined ? "-" : new Date(ms).toISOString().slice(11, 19));

/** A confirmation that states the effect, then the request, then its answer on the page. */
export function useAction(me: Me): { ask(text: string, path: string, body: unknown): void; view: unknown } {
  const [q, setQ] = useState<{ text: string; path: string; body: unknown } | null>(null);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    if (!q) return;
    setBusy(true);
    const r = await api(q.path, me, q.body);
    setBusy(false);
    setQ(null);
    setMsg(r.code === 200 && r.body.status === "ok" ? { ok: true, text: `done${r.body.epoch !== undefined ? ` (config epoch ${String(r.body.epoch)})` : ""}` } : { ok: false, text: `refused: ${String(r.body.error ?? `HTTP ${r.code}`)}` });
  };
  const view = html`${q && html`<div class="modal" role="dialog" aria-modal="true"><div class="box">
      <p data-testid="confirm-text">${q.text}</p>
      <button class="danger" disabled=${busy} onClick=${go}>${busy ? "working…" : "Confirm"}</button> <button onClick=${() => setQ(null)}>Cancel</button>
    </div></div>`}
    ${msg && html`<p class=${msg.ok ? "ok-msg" : "err"} role="status" data-testid="action-result">${msg.text} <button class="link" onClick=${() => setMsg(null)}>×</button></p>`}`;
  return { ask: (text, path, body) => (setMsg(null), setQ({ text, path, body })), view };
}

function Overview({ ctx }: { ctx: Ctx }) {
  const { m } = ctx;
  const v = m.status.body?.view;
  const a = assignments(m);
  const members = membersOf(m);
  const f = flags(m);
  const up = members.filter((n) => alive(m, n) !== false).length;
  const tl = timelines(m.events.lines).slice(-3).reverse();
  return html`<section>
    <h2>Cluster</h2>
    <p>Leader <b data-testid="leader">${v?.leader ?? "none"}</b>, term ${v?.term ?? "-"}, config epoch ${v?.committed.epoch ?? "-"}; HA ${f.ha === "disarmed" ? html`<b class="warn">disarmed</b>` : "armed"};
      N+1: ${up} of ${members.length} nodes up${up >= members.length ? ", one may be lost" : up * 2 > members.length ? ", no more may be lost" : ", no quorum"}.</p>
    <div class="cards">${members.map((n) => html`<div class=${`card ${alive(m, n) === false ? "down" : "up"}`} data-testid=${`node-${n}`}>
      <h3>${n}</h3><p>${alive(m, n) === false ? "DOWN" : "up"}${v?.leader === n ? " · leader" : ""}${a.vip === n || holdsVip(m, n) ? " · VIP" : ""}</p>
      <p>${(["mysql", "redis"] as const).map((s) => a[s] === n ? html`<span class="tag primary" data-testid=${`primary-${s}`}>${s} primary</span> ` : factsOf(m, n, s) ? html`<span class="tag">${s} ${factsOf(m, n, s)!.role}</span> ` : "")}</p>
      ${f[`maint:${n}`] === "on" && html`<p class="warn">maintenance</p>`}
    </div>`)}</div>
    <h2>Active alarms</h2>
    <${AlarmTable} ctx=${ctx} rows=${m.alarms.active.filter((x) => x.state !== "cleared").slice(0, 10)} />
    <h2>Recent failovers</h2>
    ${tl.length ? tl.map((t) => html`<${TimelineView} t=${t} />`) : html`<p class="muted">none in the recent events</p>`}
  </section>`;
}

function Nodes({ ctx }: { ctx: Ctx }) {
  const { m, me } = ctx;
  const act = useAction(me);
  const v = m.status.body?.view;
  const f = flags(m);
  const watch = m.status.body?.watch as { bmc?: { sensors: { name: string; value: number | null; unit: string; status: string }[] } | null; host?: { cpuUsedRatio: number | null; memUsedRatio: number | null; load1: number; bonds: { name: string; active: string | null; slaves: { name: string; mii: string }[] }[] } | null } | null;
  return html`<section>${act.view}
    <h2>Nodes</h2>
    <table><thead><tr><th>node</th><th>state</th><th>role</th><th>heard</th><th>clock skew</th><th>BMC</th><th>power</th><th>temp</th><th>fans</th><th>PSUs</th><th></th></tr></thead><tbody>
    ${membersOf(m).map((n) => {
      const p = v?.peers.find((x) => x.name === n);
      const hw = m.hw.nodes[n];
      const maint = f[`maint:${n}`] === "on";
      return html`<tr data-testid=${`row-${n}`}><td>${n}</td><td class=${alive(m, n) === false ? "bad" : ""}>${alive(m, n) === false ? "down" : "up"}${maint ? " (maintenance)" : ""}</td>
        <td>${n === v?.node ? v?.role : p?.role ?? "-"}</td><td>${n === v?.node ? "self" : p?.lastHeardMs === null || p === undefined ? "never" : `${p.lastHeardMs} ms ago`}</td><td>${p?.skewMs ?? "-"}</td>
        <td>${hw?.bmc ?? "-"}</td><td>${hw?.power ?? "-"}</td><td>${hw?.tempC ?? "-"}</td><td>${hw?.fans ?? "-"}</td><td>${hw?.psus ?? "-"}</td>
        <td>${can(me, "operator") && html`<button onClick=${() => act.ask(maint ? `End maintenance of ${n}: it may hold primaries again and HA watches it as before.` : `Put ${n} in maintenance: its primaries are switched over to other nodes first, then nothing is placed on it and it is not fenced while it is worked on.`, "/api/action", { action: "maintenance", node: n, on: !maint })}>maintenance ${maint ? "off" : "on"}</button>`}</td></tr>`;
    })}</tbody></table>
    <h3>Switch ports</h3>
    <table><thead><tr><th>switch</th><th>port</th><th>node</th><th>oper</th><th>admin</th></tr></thead><tbody>
    ${m.hw.ports.map((p) => html`<tr><td>${p.switch}</td><td>${p.port}</td><td>${p.node}</td><td class=${p.oper === "up" ? "" : "bad"}>${p.oper ?? "-"}</td><td>${p.admin ?? "-"}</td></tr>`)}</tbody></table>
    <h3>${m.self}: host and BMC sensors</h3>
    <p>CPU ${pct(watch?.host?.cpuUsedRatio)}, memory ${pct(watch?.host?.memUsedRatio)}, load ${watch?.host?.load1 ?? "-"}; bonds: ${(watch?.host?.bonds ?? []).map((b) => `${b.name} active ${b.active ?? "-"} (${b.slaves.map((s) => `${s.name} ${s.mii}`).join(", ")})`).join("; ") || "none"}</p>
    <table><thead><tr><th>sensor</th><th>value</th><th>status</th></tr></thead><tbody>
    ${(watch?.bmc?.sensors ?? []).map((s) => html`<tr><td>${s.name}</td><td>${s.value ?? "-"} ${s.unit}</td><td>${s.status}</td></tr>`)}</tbody></table>
  </section>`;
}
const pct = (r: number | null | undefined) => (r === null || r === undefined ? "-" : `${Math.round(r * 100)} %`);

function Services({ ctx }: { ctx: Ctx }) {
  const { m, me } = ctx;
  const act = useAction(me);
  const a = assignments(m);
  const f = flags(m);
  const ha = haOf(m);
  const members = membersOf(m);
  return html`<section>${act.view}
    <h2>Services</h2>
    ${can(me, "operator") && html`<p>${f.ha === "disarmed"
      ? html`<button onClick=${() => act.ask("Arm HA: bollard fails over automatically again when a primary is lost.", "/api/action", { action: "ha-arm" })}>arm HA</button>`
      : html`<button onClick=${() => act.ask("Disarm HA: no automatic failover until it is armed again (for network work). A lost primary stays lost.", "/api/action", { action: "ha-disarm" })}>disarm HA</button>`}</p>`}
    ${(["mysql", "redis"] as const).map((s) => html`<div class="svc">
      <h3>${s}: primary <span data-testid=${`svc-primary-${s}`}>${a[s] ?? "none"}</span>${ha?.procedures.filter((p) => p.includes(s)).map((p) => html` <span class="warn">${p}</span>`)}</h3>
      <table><thead><tr><th>node</th><th>up</th><th>role</th><th>writable</th><th>source</th><th>received</th><th>applied</th><th></th></tr></thead><tbody>
      ${members.map((n) => {
        const x = factsOf(m, n, s);
        return html`<tr><td>${n}</td><td class=${x?.up === false ? "bad" : ""}>${x ? (x.up ? "up" : "down") : "-"}</td><td>${x?.role ?? "-"}</td><td>${x ? String(x.writable) : "-"}</td><td>${x?.source ?? "-"}</td><td class="pos">${x?.received ?? "-"}</td><td class="pos">${x?.applied ?? "-"}</td>
          <td>${can(me, "operator") && a[s] !== n && alive(m, n) !== false && html`<button onClick=${() => act.ask(`Switch ${s} over to ${n}: ${a[s] ?? "the primary"} is made read-only, ${n} catches up to its exact position and is promoted; writes pause for under a second, nothing is lost.`, "/api/action", { action: "switchover", svc: s, to: n })}>switch over here</button>`}</td></tr>`;
      })}</tbody></table>
      ${can(me, "operator") && html`<button onClick=${() => act.ask(`Acknowledge the last failover of ${s}: another automatic failover is allowed within the anti-flapping period.`, "/api/action", { action: "ha-ack", svc: s })}>ack failover of ${s}</button>`}
    </div>`)}
    <h3>Portal routes</h3>
    <p>${m.self} routes MySQL writes to ${ha?.facts.portal?.mysql ?? "nowhere"}, Redis to ${ha?.facts.portal?.redis ?? "nowhere"}; VIP ${a.vip ?? "unassigned"}${m.vip ? ` (${m.vip})` : ""}.</p>
  </section>`;
}

function AlarmTable({ ctx, rows }: { ctx: Ctx; rows: AlarmRow[] }) {
  const act = useAction(ctx.me);
  if (!rows.length) return html`<p class="muted">none</p>`;
  return html`<div>${act.view}<table class="alarms"><thead><tr><th>severity</th><th>node</th><th>alarm</th><th>state</th><th>raised</th><th></th></tr></thead><tbody>
    ${rows.map((x) => html`<tr class=${`sev-${x.severity}`} data-testid="alarm-row"><td>${x.severity}</td><td>${x.node}</td><td class="text">${x.text}${x.stale ? " (stale: its node is unreachable)" : ""}</td><td>${x.state}${x.ackedBy ? ` by ${x.ackedBy}` : ""}</td><td>${time(x.raisedAt)}</td>
      <td>${can(ctx.me, "operator") && !x.ackedBy && x.state !== "cleared" && html`<button data-testid="ack" onClick=${() => act.ask(`Acknowledge "${x.text}": it stays listed until it clears, marked as seen by ${ctx.me.user}; its notifications stop.`, "/api/alarms/ack", { id: x.id })}>ack</button>`}</td></tr>`)}
  </tbody></table></div>`;
}

function Alarms({ ctx }: { ctx: Ctx }) {
  const [sev, setSev] = useState("");
  const [text, setText] = useState("");
  const [hist, setHist] = useState<AlarmRow[] | null>(null);
  useEffect(() => void api("/api/alarms?all=1", ctx.me).then((r) => setHist((r.body.cleared ?? []) as AlarmRow[])), []);
  const keep = (x: AlarmRow) => (!sev || x.severity === sev) && (!text || `${x.text} ${x.node}`.toLowerCase().includes(text.toLowerCase()));
  return html`<section><h2>Alarms</h2>
    <p><label>severity <select onChange=${(e: Event) => setSev((e.target as HTMLSelectElement).value)}><option value="">all</option>${["critical", "major", "minor", "warning"].map((s) => html`<option>${s}</option>`)}</select></label>
      <label> text <input onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} /></label></p>
    <h3>Active</h3><${AlarmTable} ctx=${ctx} rows=${ctx.m.alarms.active.filter(keep)} />
    <h3>Cleared, most recent first</h3><${AlarmTable} ctx=${ctx} rows=${(hist ?? []).filter(keep)} />
  </section>`;
}

function TimelineView({ t }: { t: Timeline }) {
  const total = Math.max(1, t.totalMs ?? t.steps.reduce((n, s) => n + s.ms, 0));
  return html`<div class="timeline" data-testid="timeline">
    <h4>${t.title} <span class=${t.result === "done" ? "ok-msg" : t.result === "failed" ? "err" : "warn"}>${t.result}${t.totalMs !== null ? ` in ${t.totalMs} ms` : ""}</span> <span class="muted">${t.start.slice(0, 19).replace("T", " ")} UTC</span></h4>
    <div class="bar">${t.steps.map((s) => html`<span class="step" style=${`flex-grow:${Math.max(s.ms, total / 50)}`} title=${s.detail}>${s.step} ${s.ms} ms</span>`)}</div>
    ${t.notes.length ? html`<ul>${t.notes.map((n) => html`<li>${n}</li>`)}</ul>` : ""}
  </div>`;
}

function Events({ ctx }: { ctx: Ctx }) {
  const [all, setAll] = useState(false);
  const tl = timelines(ctx.m.events.lines).reverse();
  const lines = ctx.m.events.lines.slice(-200).reverse();
  return html`<section><h2>Failovers</h2>
    ${ctx.m.events.errors.length ? html`<p class="warn">${ctx.m.events.errors.join("; ")}</p>` : ""}
    ${tl.length ? tl.map((t) => html`<${TimelineView} t=${t} />`) : html`<p class="muted">no failover in the recent events</p>`}
    <h2>Events <label><input type="checkbox" checked=${all} onChange=${() => setAll(!all)} /> every kind</label></h2>
    <table><tbody>${lines.filter((e: EventLine) => all || e.kind !== "audit").slice(0, 200).map((e: EventLine) => html`<tr><td>${e.ts.slice(11, 23)}</td><td>${e.node}</td><td>${e.kind}</td><td class="text">${e.detail}</td></tr>`)}</tbody></table>
  </section>`;
}

function Logs({ ctx }: { ctx: Ctx }) {
  const members = membersOf(ctx.m);
  const [node, setNode] = useState(ctx.m.self);
  const [level, setLevel] = useState("info");
  const [text, setText] = useState("");
  const [follow, setFollow] = useState(true);
  const [r, setR] = useState<{ lines: { ts: string; level: string; ns: string; msg: string }[]; error?: string }>({ lines: [] });
  useEffect(() => {
    let stop = false;
    const read = () => api(`/api/logs?node=${node}&level=${level}&n=300`, ctx.me).then((x) => !stop && setR(x.code === 200 ? { lines: (x.body.lines as typeof r.lines) ?? [] } : { lines: [], error: String(x.body.error) }));
    void read();
    const t = follow ? setInterval(read, 2000) : null;
    return () => ((stop = true), t && clearInterval(t));
  }, [node, level, follow]);
  const shown = r.lines.filter((l) => !text || JSON.stringify(l).toLowerCase().includes(text.toLowerCase())).reverse();
  return html`<section><h2>Logs</h2>
    <p><label>node <select value=${node} onChange=${(e: Event) => setNode((e.target as HTMLSelectElement).value)}>${members.map((n) => html`<option>${n}</option>`)}</select></label>
    <label> level <select value=${level} onChange=${(e: Event) => setLevel((e.target as HTMLSelectElement).value)}>${["debug", "info", "warn", "error"].map((n) => html`<option>${n}</option>`)}</select></label>
    <label> text <input onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} /></label>
    <label><input type="checkbox" checked=${follow} onChange=${() => setFollow(!follow)} /> follow</label></p>
    ${r.error && html`<p class="err">${r.error}</p>`}
    <pre class="logs">${shown.map((l) => `${l.ts.slice(11, 23)} ${l.level.padEnd(5)} ${l.ns} ${l.msg}${Object.entries(l).filter(([k]) => !["ts", "level", "ns", "msg"].includes(k)).map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join("")}\n`)}</pre>
  </section>`;
}

function Chart({ title, t, series }: { title: string; t: number[]; series: { label: string; data: (number | null)[] }[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const u = new uPlot({ title, width: Math.min(900, el.current.clientWidth || 600), height: 180, series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"][i % 6] }))] }, [t.map((x) => x / 1000), ...series.map((s) => s.data)] as uPlot.AlignedData, el.current);
    return () => u.destroy();
  }, [t, series]);
  return html`<div class="chart" ref=${el}></div>`;
}

function Charts({ ctx }: { ctx: Ctx }) {
  const [node, setNode] = useState(ctx.m.self);
  const [c, setC] = useState<Record<string, (number | null)[]> | null | string>(null);
  useEffect(() => {
    const read = () => api(`/api/samples?node=${node}`, ctx.me).then((x) => setC(x.code === 200 ? ((x.body.samples as Record<string, (number | null)[]>) ?? "no samples from that node") : String(x.body.error)));
    void read();
    const t = setInterval(read, 10_000);
    return () => clearInterval(t);
  }, [node]);
  const t = typeof c === "object" && c ? (c.t as number[]) : [];
  const nic = (pre: string) => (typeof c === "object" && c ? Object.keys(c).filter((k) => k.startsWith(pre)).map((k) => ({ label: k, data: c[k]! })) : []);
  return html`<section><h2>Charts: the last hour</h2>
    <p><label>node <select value=${node} onChange=${(e: Event) => setNode((e.target as HTMLSelectElement).value)}>${membersOf(ctx.m).map((n) => html`<option>${n}</option>`)}</select></label> <span class="muted">a sample each host reading (hw.host_every_ms)</span></p>
    ${typeof c === "string" ? html`<p class="err">${c}</p>` : !c ? html`<p>reading…</p>` : !t.length ? html`<p class="muted">no samples yet</p>` : html`
      <${Chart} title="CPU, memory, fullest disk (ratio)" t=${t} series=${[{ label: "cpu", data: c.cpu! }, { label: "mem", data: c.mem! }, { label: "disk", data: c.disk! }]} />
      <${Chart} title="NIC receive (bytes/s)" t=${t} series=${nic("rx:")} />
      <${Chart} title="NIC transmit (bytes/s)" t=${t} series=${nic("tx:")} />
      <${Chart} title="MySQL replication lag (s behind the primary)" t=${t} series=${[{ label: "mysql", data: c.mysqlLag! }]} />
      <${Chart} title="Redis replication lag (bytes behind the primary's offset)" t=${t} series=${[{ label: "redis", data: c.redisLag! }]} />`}
  </section>`;
}

function Audit({ ctx }: { ctx: Ctx }) {
  const [r, setR] = useState<Record<string, unknown> | null>(null);
  useEffect(() => void api("/api/audit", ctx.me).then((x) => setR(x.body)), []);
  const rows = (r?.records as { ts: string; node: string; user: string; from: string; what: string; result: string; detail?: string }[] | undefined) ?? [];
  return html`<section><h2>Audit log</h2>${r?.error ? html`<p class="err">${String(r.error)}</p>` : ""}
    <table><thead><tr><th>when (UTC)</th><th>node</th><th>user</th><th>from</th><th>what</th><th>result</th><th>detail</th></tr></thead><tbody>
    ${rows.map((x) => html`<tr><td>${x.ts.slice(0, 19).replace("T", " ")}</td><td>${x.node}</td><td>${x.user}</td><td>${x.from}</td><td>${x.what}</td><td>${x.result}</td><td class="text">${x.detail ?? ""}</td></tr>`)}</tbody></table></section>`;
}

export function Page({ page, ctx }: { page: PageName; ctx: Ctx }) {
  const P = { overview: Overview, nodes: Nodes, services: Services, vms: Vms, alarms: Alarms, events: Events, logs: Logs, charts: Charts, audit: Audit }[page];
  return html`<${P} ctx=${ctx} />`;
}
