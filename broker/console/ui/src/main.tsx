import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, setOnUnauthorized } from "./api";
import { Login } from "./pages/login";
import { Overview } from "./pages/overview";
import { Topics, TopicDetail } from "./pages/topics";
import { Messages } from "./pages/messages";
import { Groups, GroupDetail } from "./pages/groups";
import { Security } from "./pages/security";
import { Alerts } from "./pages/alerts";
import "./style.css";
import { Link, navigate } from "./router";

type Info = { open: boolean; login_required: boolean; message: string; node_id: number;
              version: string; authorizer_enabled: boolean; mechanism: string | null };

const NAV: [string, string][] = [["/", "Overview"], ["/topics", "Topics"], ["/messages", "Messages"],
  ["/groups", "Consumer groups"], ["/alerts", "Alerts"], ["/security", "Security"]];

function App() {
  const [path, setPath] = useState(location.pathname);
  const [info, setInfo] = useState<Info | null>(null);
  const [who, setWho] = useState<string | null>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    const f = () => setPath(location.pathname);
    addEventListener("popstate", f);
    setOnUnauthorized(() => { setWho(null); if (location.pathname !== "/login") navigate("/login?next=" + encodeURIComponent(location.pathname + location.search)); });
    api<Info>("GET", "/info").then(setInfo, (e) => setErr(String(e.message)));
    api("GET", "/session").then((s) => setWho(s.principal), () => setWho(null));
    return () => removeEventListener("popstate", f);
  }, []);
  if (err) return <div class="page"><p class="error">Cannot reach the console API: {err}</p></div>;
  if (!info) return <div class="page">Loading…</div>;
  const loggedIn = info.open || who !== null;
  if (path === "/login" || !loggedIn) {
    return <Login info={info} onLogin={(p) => {
      setWho(p);
      // Back to the page that asked for the login (a deep link stays).
      const next = location.pathname === "/login" ? new URLSearchParams(location.search).get("next") : location.pathname + location.search;
      navigate(next && next.startsWith("/") && !next.startsWith("/login") ? next : "/");
    }} />;
  }
  const logout = async () => { await api("DELETE", "/session").catch(() => {}); setWho(null); navigate("/login"); };
  let page;
  const m = (re: RegExp) => path.match(re);
  let g;
  if (path === "/") page = <Overview />;
  else if (path === "/topics") page = <Topics />;
  else if ((g = m(/^\/topics\/(.+)$/))) page = <TopicDetail name={decodeURIComponent(g[1])} />;
  else if (path === "/messages") page = <Messages />;
  else if (path === "/groups") page = <Groups />;
  else if ((g = m(/^\/groups\/(.+)$/))) page = <GroupDetail name={decodeURIComponent(g[1])} />;
  else if (path === "/security") page = <Security />;
  else if (path === "/alerts") page = <Alerts />;
  else page = <p>No page here. <Link href="/">Overview</Link></p>;
  return <div>
    {info.open && <div class="banner" role="alert">this console is open: no login, no authorization</div>}
    <header>
      <strong>Shardline</strong>
      <nav>{NAV.map(([href, label]) =>
        <Link href={href} class={(href === "/" ? path === "/" : path.startsWith(href)) ? "active" : ""}>{label}</Link>)}
      </nav>
      <span class="who">node {info.node_id} · {info.open ? "User:ANONYMOUS" : who}
        {!info.open && <button class="link" onClick={logout}>Log out</button>}</span>
    </header>
    <main class="page">{page}</main>
  </div>;
}

render(<App />, document.getElementById("app")!);
