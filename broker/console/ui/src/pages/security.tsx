import { useState } from "preact/hooks";
import { api, get, enc } from "../api";
import { useLoad } from "../hooks";
import { Err, Table, act } from "../common";

const OPS = ["all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
  "describe_configs", "alter_configs", "idempotent_write"];

export function Security() {
  return <div>
    <h1>Security</h1>
    <Users /><Acls /><Quotas /><Tenants />
  </div>;
}

function Users() {
  const l = useLoad(() => get("/users"), []);
  const [err, setErr] = useState<any>(null);
  const [name, setName] = useState("");
  const [pw, setPw] = useState("");
  const [mech, setMech] = useState("both");
  return <section>
    <h2>Users (SCRAM)</h2>
    <form class="inline" aria-label="create user" onSubmit={(e) => { e.preventDefault();
      act(() => api("POST", "/users", { name, password: pw, mechanism: mech }), setErr).then((ok) => { if (ok) { setName(""); setPw(""); l.reload(); } }); }}>
      <input name="user-name" placeholder="user" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
      <input name="user-password" type="password" placeholder="password" value={pw} onInput={(e) => setPw(e.currentTarget.value)} required />
      <select value={mech} onChange={(e) => setMech(e.currentTarget.value)}>
        <option value="both">SCRAM-SHA-256 and -512</option><option>SCRAM-SHA-256</option><option>SCRAM-SHA-512</option></select>
      <button type="submit">Create or set password</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    {l.data && <Table head={["user", "mechanisms", ""]} empty="No SCRAM users."
      rows={l.data.users.map((u: any) => [u.user, u.credentials.map((c: any) => `${c.mechanism} (${c.iterations})`).join(", "),
        <button class="link danger" onClick={() => act(() => api("DELETE", `/users/${enc(u.user)}`), setErr, `Delete user ${u.user}?`).then((ok) => ok && l.reload())}>delete</button>])} />}
  </section>;
}

function Acls() {
  const l = useLoad(() => get("/acls"), []);
  const [err, setErr] = useState<any>(null);
  const [a, setA] = useState({ resource_type: "topic", resource_name: "", pattern_type: "literal", principal: "User:",
    host: "*", operation: "read", permission: "allow" });
  const field = (k: keyof typeof a) => (e: any) => setA({ ...a, [k]: e.currentTarget.value });
  return <section>
    <h2>ACLs</h2>
    <form class="inline" aria-label="create acl" onSubmit={(e) => { e.preventDefault(); act(() => api("POST", "/acls", a), setErr).then((ok) => ok && l.reload()); }}>
      <input name="acl-principal" value={a.principal} onInput={field("principal")} required />
      <select name="acl-permission" value={a.permission} onChange={field("permission")}><option>allow</option><option>deny</option></select>
      <select name="acl-operation" value={a.operation} onChange={field("operation")}>{OPS.map((o) => <option>{o}</option>)}</select>
      <select name="acl-resource-type" value={a.resource_type} onChange={field("resource_type")}>
        {["topic", "group", "cluster", "transactional_id"].map((o) => <option>{o}</option>)}</select>
      <input name="acl-resource-name" placeholder={a.resource_type === "cluster" ? "kafka-cluster" : "name"} value={a.resource_name} onInput={field("resource_name")} />
      <select name="acl-pattern" value={a.pattern_type} onChange={field("pattern_type")}><option>literal</option><option>prefixed</option></select>
      <input name="acl-host" value={a.host} onInput={field("host")} size={6} />
      <button type="submit">Add ACL</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    {l.data && <Table head={["principal", "permission", "operation", "resource", "pattern", "host", ""]} empty="No ACLs."
      rows={l.data.acls.map((x: any) => [x.principal, x.permission, x.operation, `${x.resource_type}:${x.resource_name}`,
        x.pattern_type, x.host, <button class="link danger" onClick={() => act(() => api("DELETE", "/acls", undefined, {
          resource_type: x.resource_type, resource_name: x.resource_name, pattern_type: x.pattern_type, principal: x.principal,
          host: x.host, operation: x.operation, permission: x.permission }), setErr, "Delete this ACL?").then((ok) => ok && l.reload())}>delete</button>])} />}
  </section>;
}

const QUOTA_KEYS = ["producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"];

function Quotas() {
  const l = useLoad(() => get("/quotas"), []);
  const [err, setErr] = useState<any>(null);
  const [user, setUser] = useState("");
  const [client, setClient] = useState("");
  const [key, setKey] = useState(QUOTA_KEYS[0]);
  const [value, setValue] = useState("");
  const entityQuery = (e: any) => ({ user: e.user ?? undefined, client_id: e.client_id ?? undefined });
  return <section>
    <h2>Quotas</h2>
    <form class="inline" aria-label="set quota" onSubmit={(e) => { e.preventDefault();
      const entity: any = {};
      if (user !== "-") entity.user = user; // "" is the default user
      if (client) entity.client_id = client;
      act(() => api("PUT", "/quotas", { entity, quotas: { [key]: Number(value) } }), setErr).then((ok) => ok && l.reload()); }}>
      <input name="quota-user" placeholder="user (empty: default)" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
      <input name="quota-client" placeholder="client id (optional)" value={client} onInput={(e) => setClient(e.currentTarget.value)} />
      <select value={key} onChange={(e) => setKey(e.currentTarget.value)}>{QUOTA_KEYS.map((k) => <option>{k}</option>)}</select>
      <input name="quota-value" type="number" min="0" step="any" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
      <button type="submit">Set quota</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    {l.data && <Table head={["user", "client id", "quotas", ""]} empty="No quotas."
      rows={l.data.quotas.map((q: any) => [q.entity.user === "" ? "(default)" : q.entity.user ?? "", q.entity.client_id ?? "",
        Object.entries(q.quotas).map(([k, v]) => `${k}=${v}`).join(", "),
        <button class="link danger" onClick={() => act(() => api("DELETE", "/quotas", undefined, entityQuery(q.entity)), setErr, "Remove these quotas?").then((ok) => ok && l.reload())}>delete</button>])} />}
  </section>;
}

function Tenants() {
  const l = useLoad(() => get("/tenants"), []);
  const [err, setErr] = useState<any>(null);
  const [name, setName] = useState("");
  const [users, setUsers] = useState("");
  return <section>
    <h2>Tenants</h2>
    <form class="inline" aria-label="create tenant" onSubmit={(e) => { e.preventDefault();
      act(() => api("POST", "/tenants", { name, users: users.split(/[\s,]+/).filter(Boolean) }), setErr).then((ok) => ok && l.reload()); }}>
      <input name="tenant-name" placeholder="tenant (prefix NAME.)" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
      <input name="tenant-users" placeholder="users, comma-separated" value={users} onInput={(e) => setUsers(e.currentTarget.value)} />
      <button type="submit">Create tenant</button>
    </form>
    <Err e={err} /><Err e={l.error} />
    {l.data && <Table head={["prefix", "principals", ""]} empty="No tenants."
      rows={l.data.tenants.map((t: any) => [t.prefix, t.principals.join(", "),
        <button class="link danger" onClick={() => act(() => api("DELETE", `/tenants/${enc(t.prefix.replace(/\.$/, ""))}`, undefined, { prefix: t.prefix }), setErr, `Delete tenant ${t.prefix}? (its topics and groups stay)`).then((ok) => ok && l.reload())}>delete</button>])} />}
  </section>;
}
