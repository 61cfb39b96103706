import { useState } from "preact/hooks";
import { api } from "../api";

export function Login({ info, onLogin }: { info: any; onLogin: (principal: string) => void }) {
  const [user, setUser] = useState("");
  const [pw, setPw] = useState("");
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (info.open) {
    return <div class="login">
      <div class="banner" role="alert">this console is open: no login, no authorization</div>
      <p>{info.message}</p>
      <button onClick={() => onLogin("User:ANONYMOUS")}>Continue</button>
    </div>;
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    try {
      const s = await api("POST", "/session", { username: user, password: pw });
      onLogin(s.principal);
    } catch (e: any) {
      setErr(e.status === 401 ? "Wrong user name or password." : e.message);
    } finally {
      setBusy(false);
    }
  };
  return <form class="login" onSubmit={submit}>
    <h1>Shardline console</h1>
    <p class="muted">Log in as a SCRAM user of this broker ({info.mechanism}); what you see and may do is what the broker's ACLs allow that user.</p>
    <label>User <input name="username" autocomplete="username" value={user} onInput={(e) => setUser(e.currentTarget.value)} required /></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" value={pw} onInput={(e) => setPw(e.currentTarget.value)} required /></label>
    <button type="submit" disabled={busy}>Log in</button>
    {err && <p class="error" role="alert">{err}</p>}
  </form>;
}
