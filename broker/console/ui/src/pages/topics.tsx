import { useState } from "preact/hooks";
import { api, get, enc, fmtBytes, fmtMs } from "../api";
import { useLoad } from "../hooks";
import { Err, Table, act } from "../common";
import { Link, navigate } from "../router";

export function Topics() {
  const [internal, setInternal] = useState(false);
  const l = useLoad(() => get("/topics", { internal: internal ? "true" : undefined }), [internal]);
  const [err, setErr] = useState<any>(null);
  const [name, setName] = useState("");
  const [parts, setParts] = useState("1");
  const [rf, setRf] = useState("");
  const [ret, setRet] = useState("");
  const create = (e: Event) => {
    e.preventDefault();
    const configs: Record<string, string> = {};
    if (ret) configs["retention.ms"] = String(Math.round(Number(ret) * 3600_000));
    act(() => api("POST", "/topics", { name, partitions: Number(parts),
      replication_factor: rf ? Number(rf) : undefined, configs }), setErr)
      .then((ok) => { if (ok) { setName(""); l.reload(); } });
  };
  return <div>
    <h1>Topics</h1>
    <form class="inline" onSubmit={create} aria-label="create topic">
      <input name="topic-name" placeholder="new topic name" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
      <label>partitions <input name="partitions" type="number" min="1" value={parts} onInput={(e) => setParts(e.currentTarget.value)} /></label>
      <label>replicas <input name="replication-factor" type="number" min="1" placeholder="default" value={rf} onInput={(e) => setRf(e.currentTarget.value)} /></label>
      <label>retention (h) <input name="retention-hours" type="number" min="0" step="any" placeholder="default" value={ret} onInput={(e) => setRet(e.currentTarget.value)} /></label>
      <button type="submit">Create topic</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    <label><input type="checkbox" checked={internal} onChange={(e) => setInternal(e.currentTarget.checked)} /> internal topics</label>
    {l.data && <Table empty="No topics you may describe." head={["topic", "partitions", "replicas", "size", "retention", "cleanup", ""]}
      rows={l.data.topics.map((t: any) => [<Link href={`/topics/${enc(t.name)}`}>{t.name}</Link>, t.partitions,
        t.replication_factor, fmtBytes(t.size_bytes),
        fmtMs(t.retention_ms) + (t.retention_bytes && t.retention_bytes > 0 ? ` / ${fmtBytes(t.retention_bytes)}` : ""),
        t.cleanup_policy ?? "", <Link href={`/messages?topic=${enc(t.name)}`}>messages</Link>])} />}
  </div>;
}

export function TopicDetail({ name }: { name: string }) {
  const d = useLoad(() => get(`/topics/${enc(name)}`), [name]);
  const cf = useLoad(() => get(`/topics/${enc(name)}/configs`), [name]);
  const [err, setErr] = useState<any>(null);
  const [count, setCount] = useState("");
  const [editing, setEditing] = useState<Record<string, string>>({});
  const [newKey, setNewKey] = useState("");
  const [newVal, setNewVal] = useState("");
  const reload = () => { d.reload(); cf.reload(); };
  const setConf = (set: Record<string, string>, del: string[] = []) =>
    act(() => api("PATCH", `/topics/${enc(name)}/configs`, { set, delete: del }), setErr).then((ok) => { if (ok) { setEditing({}); reload(); } });
  return <div>
    <h1>Topic {name}</h1>
    <p><Link href={`/messages?topic=${enc(name)}`}>Browse messages</Link> · <button class="danger" onClick={() =>
      act(() => api("DELETE", `/topics/${enc(name)}`), setErr, `Delete topic ${name} and all its messages?`).then((ok) => ok && navigate("/topics"))}>Delete topic</button></p>
    <Err e={err} /><Err e={d.error} />
    {d.data && <>
      <h2>Partitions</h2>
      <Table head={["partition", "leader", "replicas", "ISR", "log start", "log end", "size", ""]}
        rows={d.data.partitions.map((p: any) => [p.partition, p.leader, p.replicas.join(", "),
          <span class={p.under_replicated ? "warn" : ""}>{p.isr.join(", ")}</span>, p.log_start_offset ?? "—", p.log_end_offset ?? "—",
          fmtBytes(p.size_bytes), p.error ?? <Link href={`/messages?topic=${enc(name)}&partition=${p.partition}`}>browse</Link>])} />
      <form class="inline" onSubmit={(e) => { e.preventDefault(); act(() => api("POST", `/topics/${enc(name)}/partitions`, { count: Number(count) }), setErr).then((ok) => ok && reload()); }}>
        <label>partitions in all <input name="partition-count" type="number" min={d.data.partitions.length + 1} value={count} onInput={(e) => setCount(e.currentTarget.value)} required /></label>
        <button type="submit">Add partitions</button>
      </form>
    </>}
    <h2>Configs</h2>
    <Err e={cf.error} />
    <form class="inline" onSubmit={(e) => { e.preventDefault(); setConf({ [newKey]: newVal }); }}>
      <input placeholder="config name" value={newKey} onInput={(e) => setNewKey(e.currentTarget.value)} required />
      <input placeholder="value" value={newVal} onInput={(e) => setNewVal(e.currentTarget.value)} />
      <button type="submit">Set</button>
    </form>
    {cf.data && <Table head={["config", "value", "override", ""]}
      rows={cf.data.configs.map((c: any) => [c.name,
        c.name in editing ? <input value={editing[c.name]} onInput={(e) => setEditing({ ...editing, [c.name]: e.currentTarget.value })} />
          : (c.sensitive ? "(sensitive)" : c.value ?? ""),
        c.override ? "yes" : "",
        c.read_only ? "" : c.name in editing
          ? <><button onClick={() => setConf({ [c.name]: editing[c.name] })}>Save</button><button class="link" onClick={() => setEditing({})}>Cancel</button></>
          : <><button class="link" onClick={() => setEditing({ [c.name]: c.value ?? "" })}>Edit</button>
              {c.override && <button class="link" onClick={() => setConf({}, [c.name])}>Reset to default</button>}</>])} />}
  </div>;
}
