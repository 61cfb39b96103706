import { useState } from "preact/hooks";
import { api, get, enc } from "../api";
import { useLoad } from "../hooks";
import { Err, Table, act } from "../common";

// Alerts: rules (create, enable/disable, delete), alerts firing and
// pending now, the history of firing and resolved alerts, and silences.
// All of it lives in the cluster metadata; the active controller evaluates.

const when = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(".000Z", "Z") : "—");
const num = (v: number | null | undefined) => (v === null || v === undefined ? "—" : Number.isInteger(v) ? String(v) : v.toFixed(2));

export function Alerts() {
  const now = useLoad(() => get("/alerts"), [], 5000);
  const rules = useLoad(() => get("/alerts/rules"), [], 5000);
  const history = useLoad(() => get("/alerts/history", { limit: 50 }), [], 5000);
  const reloadAll = () => { now.reload(); rules.reload(); history.reload(); };
  return <div>
    <h1>Alerts</h1>
    <Current l={now} />
    <Rules l={rules} onChange={reloadAll} />
    <Silences />
    <History l={history} />
  </div>;
}

function Current({ l }: { l: any }) {
  const d = l.data;
  return <section aria-label="current alerts">
    <h2>Firing and pending</h2>
    <Err e={l.error} />
    {d && <p class="muted">{d.evaluated_here
      ? `Evaluated here (node ${d.this_node}, the active controller) every ${d.interval_ms / 1000} s; last ${when(d.last_evaluation)}.`
      : d.message}</p>}
    {d && d.problems?.length > 0 && <p class="error">{d.problems.join("; ")}</p>}
    {d && <Table head={["state", "rule", "subject", "severity", "value", "threshold", "since"]} empty="Nothing firing or pending."
      rows={[
        ...d.firing.map((a: any) => [<span class={`pill ${a.severity}`}>{a.silenced_now ? "firing (silenced)" : "firing"}</span>,
          a.rule, a.subject, a.severity, num(a.value), num(a.threshold), when(a.starts_at)]),
        ...(d.pending ?? []).map((p: any) => [<span class="pill pending">pending</span>, p.rule, p.subject, "", num(p.value), "", when(p.since)]),
      ]} />}
  </section>;
}

const EMPTY = { name: "", kind: "consumer_lag", group: "", topic: "", api: "", threshold: "0", for_s: "0",
  severity: "warning", webhooks: "", description: "" };

function Rules({ l, onChange }: { l: any; onChange: () => void }) {
  const kinds = useLoad(() => get("/alerts/kinds"), []);
  const [err, setErr] = useState<any>(null);
  const [r, setR] = useState({ ...EMPTY });
  const field = (k: keyof typeof EMPTY) => (e: any) => setR({ ...r, [k]: e.currentTarget.value });
  const kind = kinds.data?.kinds.find((k: any) => k.kind === r.kind);
  const takes = (f: string) => kind?.filters.includes(f);
  const submit = (e: Event) => {
    e.preventDefault();
    const body: any = { name: r.name, kind: r.kind, threshold: Number(r.threshold), for_ms: Math.round(Number(r.for_s) * 1000),
      severity: r.severity, webhooks: r.webhooks.split(/[\s,]+/).filter(Boolean), description: r.description };
    for (const f of ["group", "topic", "api"] as const) if (takes(f) && r[f]) body[f] = r[f];
    act(() => api("POST", "/alerts/rules", body), setErr).then((ok) => { if (ok) { setR({ ...EMPTY }); onChange(); } });
  };
  return <section aria-label="alert rules">
    <h2>Rules</h2>
    <form class="inline" aria-label="create alert rule" onSubmit={submit}>
      <input name="rule-name" placeholder="name" value={r.name} onInput={field("name")} required />
      <select name="rule-kind" value={r.kind} onChange={field("kind")}>
        {(kinds.data?.kinds ?? [{ kind: "consumer_lag" }]).map((k: any) => <option value={k.kind}>{k.kind}</option>)}</select>
      {takes("group") && <input name="rule-group" placeholder="group (* glob, empty: all)" value={r.group} onInput={field("group")} />}
      {takes("topic") && <input name="rule-topic" placeholder="topic (* glob, empty: all)" value={r.topic} onInput={field("topic")} />}
      {takes("api") && <input name="rule-api" placeholder="API (e.g. Produce)" value={r.api} onInput={field("api")} />}
      <label>{kind?.fires_below ? "below" : "above"} <input name="rule-threshold" type="number" step="any" class="num" value={r.threshold} onInput={field("threshold")} required /> {kind?.unit}</label>
      <label>for <input name="rule-for" type="number" min="0" step="any" class="num" value={r.for_s} onInput={field("for_s")} /> s</label>
      <select name="rule-severity" value={r.severity} onChange={field("severity")}><option>critical</option><option>warning</option><option>info</option></select>
      <input name="rule-webhooks" placeholder="webhook URLs (http:// or https://…), comma-separated" size={36} value={r.webhooks} onInput={field("webhooks")} />
      <button type="submit">Create rule</button>
    </form>
    {kind && <p class="muted">{kind.kind}: {kind.description}.</p>}
    <Err e={err} /><Err e={l.error} /><Err e={kinds.error} />
    {l.data && <Table head={["name", "kind", "filters", "condition", "for", "severity", "webhooks", "firing", "enabled", ""]} empty="No alert rules."
      rows={l.data.rules.map((x: any) => [x.name, x.kind,
        ["group", "topic", "api"].filter((f) => x[f]).map((f) => `${f}=${x[f]}`).join(" ") || "—",
        `${["disk_free_bytes", "disk_free_percent"].includes(x.kind) ? "<" : ">"} ${x.threshold}`,
        `${x.for_ms / 1000} s`, x.severity, x.webhooks.length ? x.webhooks.join(" ") : "log only", x.firing,
        <label><input type="checkbox" name={`enabled-${x.name}`} checked={x.enabled} onChange={(e) => {
          const enabled = e.currentTarget.checked;
          act(() => api("PATCH", `/alerts/rules/${enc(x.name)}`, { enabled }), setErr).then(onChange);
        }} /> {x.enabled ? "on" : "off"}</label>,
        <button class="link danger" onClick={() => act(() => api("DELETE", `/alerts/rules/${enc(x.name)}`), setErr, `Delete rule ${x.name}?`).then((ok) => ok && onChange())}>delete</button>])} />}
  </section>;
}

function Silences() {
  const l = useLoad(() => get("/alerts/silences"), [], 10000);
  const [err, setErr] = useState<any>(null);
  const [s, setS] = useState({ rule: "", subject: "", minutes: "60", comment: "" });
  const field = (k: keyof typeof s) => (e: any) => setS({ ...s, [k]: e.currentTarget.value });
  return <section aria-label="silences">
    <h2>Silences</h2>
    <form class="inline" aria-label="create silence" onSubmit={(e) => { e.preventDefault();
      act(() => api("POST", "/alerts/silences", { rule: s.rule || undefined, subject: s.subject || undefined,
        duration_ms: Math.round(Number(s.minutes) * 60000), comment: s.comment }), setErr)
        .then((ok) => { if (ok) { setS({ rule: "", subject: "", minutes: "60", comment: "" }); l.reload(); } }); }}>
      <input name="silence-rule" placeholder="rule (* glob)" value={s.rule} onInput={field("rule")} />
      <input name="silence-subject" placeholder="subject, e.g. group=billing (* glob)" value={s.subject} onInput={field("subject")} />
      <label>for <input name="silence-minutes" type="number" min="1" step="any" class="num" value={s.minutes} onInput={field("minutes")} required /> min</label>
      <input name="silence-comment" placeholder="comment" value={s.comment} onInput={field("comment")} />
      <button type="submit">Silence</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    {l.data && <Table head={["state", "rule", "subject", "from", "until", "comment", "by", ""]} empty="No silences."
      rows={l.data.silences.map((x: any) => [x.state, x.rule ?? "*", x.subject ?? "*", when(x.starts_at), when(x.ends_at), x.comment, x.created_by,
        x.state === "expired" ? "" : <button class="link danger" onClick={() => act(() => api("DELETE", `/alerts/silences/${enc(x.id)}`), setErr, "Expire this silence now?").then((ok) => ok && l.reload())}>expire</button>])} />}
  </section>;
}

function History({ l }: { l: any }) {
  return <section aria-label="alert history">
    <h2>History</h2>
    <Err e={l.error} />
    {l.data && <Table head={["status", "rule", "subject", "severity", "value", "threshold", "started", "resolved", "notified"]} empty="No alerts yet."
      rows={l.data.events.map((e: any) => [<span class={`pill ${e.status === "firing" ? e.severity : "resolved"}`}>{e.status}</span>,
        e.rule, e.subject, e.severity, num(e.value), num(e.threshold), when(e.starts_at), when(e.ends_at), e.silenced ? "silenced" : "yes"])} />}
    {l.data && <p class="muted">The last {l.data.kept_at_most} events are kept, in the cluster metadata.</p>}
  </section>;
}
