import { useState } from "preact/hooks";
import { api, get, enc } from "../api";
import { useLoad } from "../hooks";
import { Err, Table, act } from "../common";
import { Link, navigate } from "../router";
import { TimeChart } from "../chart";

export function Groups() {
  const l = useLoad(() => get("/groups"), [], 10_000);
  return <div>
    <h1>Consumer groups</h1>
    <Err e={l.error} />
    {l.data && <Table empty="No groups you may describe." head={["group", "state", "protocol type"]}
      rows={l.data.groups.map((g: any) => [<Link href={`/groups/${enc(g.group)}`}>{g.group}</Link>, g.state, g.protocol_type])} />}
  </div>;
}

export function GroupDetail({ name }: { name: string }) {
  const d = useLoad(() => get(`/groups/${enc(name)}`), [name], 10_000);
  const lag = useLoad(() => get(`/groups/${enc(name)}/lag-history`, { since: Date.now() - 3600_000 }), [name], 30_000);
  const [err, setErr] = useState<any>(null);
  const g = d.data;
  const active = g && g.members.length > 0;
  // The total as its own line; per-partition lines only while few.
  const series = lag.data?.series ?? {};
  const shown = Object.keys(series).length <= 9 ? series
    : Object.fromEntries(Object.entries(series).filter(([k]) => k === `group_lag:${name}`));
  return <div>
    <h1>Group {name}</h1>
    <Err e={d.error} /><Err e={err} />
    {g && <>
      <p>State <b data-testid="group-state">{g.state}</b> · protocol type {g.protocol_type || "—"} · protocol {g.protocol || "—"} ·
        total lag <b data-testid="total-lag">{g.total_lag}</b>{" "}
        <button class="danger" disabled={active} title={active ? "members are active" : ""} onClick={() =>
          act(() => api("DELETE", `/groups/${enc(name)}`), setErr, `Delete group ${name} and its committed offsets?`).then((ok) => ok && navigate("/groups"))}>Delete group</button></p>
      {g.warnings?.length > 0 && <ul class="warn">{g.warnings.map((w: string) => <li>{w}</li>)}</ul>}
      <h2>Members</h2>
      <Table empty="No active members." head={["member", "client id", "host", "assignment"]}
        rows={g.members.map((m: any) => [m.member_id, m.client_id, m.host,
          m.assignment.map((a: any) => `${a.topic}-${a.partition}`).join(", ")])} />
      <h2>Lag per partition</h2>
      <Table empty="No committed offsets." head={["topic", "partition", "committed", "log end", "lag", "member"]}
        rows={g.offsets.map((o: any) => [o.topic, o.partition, o.committed_offset ?? "—", o.log_end_offset ?? "—",
          <b>{o.lag ?? "—"}</b>, o.member_id ?? ""])} />
    </>}
    <h2>Lag over time</h2>
    <Err e={lag.error} />
    <TimeChart title="Lag (messages)" unit="messages" series={Object.fromEntries(Object.entries(shown).map(
      ([k, v]) => [k === `group_lag:${name}` ? "total" : k.slice(`group_lag:${name}:`.length), v as any]))} />
    {g && <Reset name={name} group={g} onApplied={d.reload} />}
  </div>;
}

function Reset({ name, group, onApplied }: { name: string; group: any; onApplied: () => void }) {
  const topics: string[] = Array.from(new Set(group.offsets.map((o: any) => o.topic)));
  const [topic, setTopic] = useState("");
  const [to, setTo] = useState("earliest");
  const [offset, setOffset] = useState("0");
  const [time, setTime] = useState("");
  const [shift, setShift] = useState("0");
  const [preview, setPreview] = useState<any>(null);
  const [err, setErr] = useState<any>(null);
  const [done, setDone] = useState<string | null>(null);
  const body = (apply: boolean) => ({
    ...(topic ? { topics: [{ topic }] } : { all_topics: true }), to, apply,
    offset: to === "offset" ? Number(offset) : undefined,
    time: to === "time" ? new Date(time).toISOString() : undefined,
    shift: to === "shift" ? Number(shift) : undefined,
  });
  const run = async (apply: boolean) => {
    try {
      const r = await api("POST", `/groups/${enc(name)}/reset-offsets`, body(apply));
      setPreview(r); setErr(null);
      if (apply) { setDone(`Applied: ${r.partitions.length} partition(s) reset.`); onApplied(); } else setDone(null);
    } catch (e) { setErr(e); setDone(null); }
  };
  const active = group.members.length > 0;
  return <div class="reset">
    <h2>Reset offsets</h2>
    {active && <p class="refused" role="alert">The group has {group.members.length} active member(s) (state {group.state}):
      resets can be previewed but not applied until every consumer has left.</p>}
    <form class="inline" aria-label="reset offsets" onSubmit={(e) => { e.preventDefault(); run(false); }}>
      <label>topic <select name="reset-topic" value={topic} onChange={(e) => { setTopic(e.currentTarget.value); setPreview(null); }}>
        <option value="">all topics</option>{topics.map((t) => <option value={t}>{t}</option>)}</select></label>
      <label>to <select name="reset-to" value={to} onChange={(e) => { setTo(e.currentTarget.value); setPreview(null); }}>
        {["earliest", "latest", "time", "offset", "shift"].map((x) => <option value={x}>{x}</option>)}</select></label>
      {to === "offset" && <input name="reset-offset" type="number" min="0" value={offset} onInput={(e) => setOffset(e.currentTarget.value)} />}
      {to === "time" && <input name="reset-time" type="datetime-local" step="1" value={time} onInput={(e) => setTime(e.currentTarget.value)} required />}
      {to === "shift" && <input name="reset-shift" type="number" value={shift} onInput={(e) => setShift(e.currentTarget.value)} />}
      <button type="submit">Preview</button>
    </form>
    <Err e={err} />
    {preview && <div class="preview">
      <Table head={["topic", "partition", "current offset", "new offset"]}
        rows={preview.partitions.map((p: any) => [p.topic, p.partition, p.current_offset ?? "—", <b>{p.new_offset}</b>])} />
      {preview.applied ? <p class="ok" role="status">{done}</p>
        : <button class="danger" disabled={!preview.can_apply} onClick={() => run(true)}>Apply reset</button>}
      {!preview.can_apply && !preview.applied && <p class="refused">Refused while members are active (state {preview.state}).</p>}
    </div>}
  </div>;
}
