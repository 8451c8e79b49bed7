// The web console's front end (issue 24 item 3): preact with htm, no build step of its own
// (esbuild bundles it, ui/build-ui.mjs). One live stream (/api/live, server-sent events)
// feeds a Model of the same shape the serial console keeps (console/model.ts), so the top
// line's judgement (assess) is the very code the console and `bollard status` use.
// Every text from the agent is rendered by preact as text: a `<script>` in an alarm stays text.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import { assess, emptyHardware, type AlarmRow, type Model } from "../../console/model.ts";
import { api, PAGES, type Me, type PageName } from "./client.ts";
import { Page, type Ctx } from "./pages.ts";
import "./style.css";


const emptyModel = (self: string): Model => ({
  now: Date.now(), self, members: [], vip: null, addresses: {},
  status: { live: false, body: null, wall: null, why: "not read yet" },
  alarms: { available: null, active: [], error: null }, logs: { node: "", lines: [], error: null }, events: { lines: [], errors: [] }, hw: emptyHardware(),
});

/** A stream silent this long is dead (a status comes at least every 2 s, live.ts): reopened. */
const SILENT_MS = 5000;

/**
 * The live stream: the Model as the agent last sent it, and when it last spoke. Reached through
 * the VIP, the stream's node may be powered off: no RST comes for a connection to a dead node,
 * so a stream silent for SILENT_MS is closed and opened again, and reaches whichever node holds
 * the address now (sessions hold on every node, auth.ts). The Model is kept meanwhile.
 */
function useLive(me: Me | null, hw: boolean): { m: Model; heardAt: number; open: boolean } {
  const [st, set] = useState({ m: emptyModel(me?.node ?? ""), heardAt: 0, open: false });
  const [gen, setGen] = useState(0);
  const model = useRef<Model | null>(null);
  useEffect(() => {
    if (!me) return;
    let m = (model.current ??= emptyModel(me.node));
    let last = Date.now();
    const es = new EventSource(`/api/live${hw ? "?hw=1" : ""}`);
    const upd = (f: (x: Model) => Model) => {
      m = model.current = f(m);
      last = Date.now();
      set({ m, heardAt: last, open: true });
    };
    es.addEventListener("init", (e) => upd((x) => {
      const d = JSON.parse((e as MessageEvent).data) as { members: string[]; vip: string | null; addresses: Record<string, string> };
      return { ...x, members: d.members, vip: d.vip, addresses: d.addresses };
    }));
    es.addEventListener("status", (e) => upd((x) => ({ ...x, now: Date.now(), status: JSON.parse((e as MessageEvent).data) })));
    es.addEventListener("alarms", (e) => upd((x) => ({ ...x, alarms: JSON.parse((e as MessageEvent).data) as Model["alarms"] })));
    es.addEventListener("events", (e) => upd((x) => ({ ...x, events: JSON.parse((e as MessageEvent).data) as Model["events"] })));
    es.addEventListener("hw", (e) => upd((x) => ({ ...x, hw: JSON.parse((e as MessageEvent).data) as Model["hw"] })));
    es.onmessage = () => upd((x) => x);
    es.onerror = () => set((s) => ({ ...s, open: false }));
    // a comment (keepalive) fires no event: the stream's liveness is the status, sent every 2 s
    const watch = setInterval(() => Date.now() - last > SILENT_MS && (clearInterval(watch), es.close(), setGen((g) => g + 1)), 1000);
    return () => (clearInterval(watch), es.close());
  }, [me, hw, gen]);
  return st;
}

function Login({ onIn }: { onIn: (me: Me) => void }) {
  const [err, setErr] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const r = await api("/api/login", null, { user: f.get("user"), password: f.get("password") });
    if (r.code !== 200) return setErr(String(r.body.error ?? `HTTP ${r.code}`));
    const me = await api("/api/me", null);
    onIn(me.body as unknown as Me);
  };
  return html`<form class="login" onSubmit=${submit}>
    <h1>bollard</h1>
    <label>User <input name="user" autocomplete="username" required /></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
    <button type="submit">Log in</button>
    ${err && html`<p class="err" role="alert">${err}</p>`}
  </form>`;
}


function pageOf(hash: string): PageName {
  const p = hash.replace(/^#\/?/, "").split("?")[0] as PageName;
  return PAGES.includes(p) ? p : "overview";
}

function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);
  const [page, setPage] = useState<PageName>(pageOf(location.hash));
  const [tick, setTick] = useState(0);
  useEffect(() => {
    void api("/api/me", null).then((r) => {
      if (r.code === 200) setMe(r.body as unknown as Me);
      setChecked(true);
    });
    const onHash = () => setPage(pageOf(location.hash));
    addEventListener("hashchange", onHash);
    // the "heard N s ago" figure: a repaint a second, only while the page is shown
    const t = setInterval(() => document.visibilityState === "visible" && setTick((n) => n + 1), 1000);
    return () => (removeEventListener("hashchange", onHash), clearInterval(t));
  }, []);
  const live = useLive(me, page === "nodes");
  if (!checked) return html`<p class="boot">bollard: loading…</p>`;
  if (!me) return html`<${Login} onIn=${setMe} />`;
  const m = live.m;
  const a = assess(m);
  const staleS = live.heardAt ? Math.floor((Date.now() - live.heardAt) / 1000) : null;
  const stale = staleS === null || staleS >= 5 || !m.status.live;
  const logout = async () => {
    await api("/api/logout", me, {});
    setMe(null);
  };
  const ctx: Ctx = { me, m, tick };
  const active = m.alarms.active.filter((x: AlarmRow) => x.state !== "cleared").length;
  return html`<div class="app">
    <header>
      <b class="brand">bollard</b><span class="cluster">${me.cluster} · via ${me.node}</span>
      <nav>${PAGES.filter((p) => p !== "audit" || me.role === "admin").map((p) => html`<a href=${`#/${p}`} class=${p === page ? "on" : ""}>${p}${p === "alarms" && active ? html` <span class="badge">${active}</span>` : ""}</a>`)}</nav>
      <span class="who">${me.user} (${me.role}) <button class="link" onClick=${logout}>log out</button></span>
    </header>
    <div class=${`top ${a.level.toLowerCase()}`} data-testid="top">
      <b>${a.level}</b> ${a.reasons.length ? a.reasons.join(" · ") : "everything is fine"}
      ${stale && html`<span class="stale" data-testid="stale">${staleS === null ? "waiting for the agent…" : !m.status.live ? `agent not answering: last known state (${m.status.why ?? ""})` : `no update for ${staleS} s: data may be stale`}</span>`}
    </div>
    <main><${Page} page=${page} ctx=${ctx} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app")!);
