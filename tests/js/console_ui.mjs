// Browser scenarios of the console's web UI, run by tests/integration/test_console_ui.py
// against a real broker: `node console_ui.mjs SCENARIO '{"base": ..., ...}'`.
// Real headless Chromium (Debian's, through playwright-core); every failed
// expectation throws, so the process exits non-zero with the reason.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [scenario, json] = process.argv.slice(2);
const cfg = JSON.parse(json);
const shots = cfg.screenshots;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Root in CI has no user namespace sandbox to offer.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
// UTC: the datetime-local inputs are then read in the same zone as the test's times.
const ctx = await browser.newContext({ timezoneId: "UTC", viewport: { width: 1400, height: 900 } });
const page = await ctx.newPage();
page.setDefaultTimeout(20_000);
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

async function shot(name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function login(user, pw) {
  await page.goto(cfg.base + "/");
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", pw);
  await page.click("button[type=submit]");
  await page.waitForSelector("header nav");
}

/** The (offset, value text) of the messages shown. */
async function shown() {
  await page.waitForSelector(".messages");
  return page.$$eval("table.msgs tbody tr", (rows) => rows.map((r) =>
    [Number(r.getAttribute("data-offset")), r.querySelector("td.value")?.textContent ?? ""]));
}

async function browse(topic, partition, from, value) {
  await page.goto(`${cfg.base}/messages?topic=${encodeURIComponent(topic)}&partition=${partition}`);
  await page.waitForSelector(`select[name=topic] option[value="${topic}"]`, { state: "attached" });
  await page.selectOption("select[name=topic]", topic);
  await page.selectOption("select[name=from]", from);
  if (from === "offset") await page.fill("input[name=offset]", String(value));
  if (from === "time") await page.fill("input[name=time]", value);
  const resp = page.waitForResponse((r) => r.url().includes("/messages?"));
  await page.click("form[aria-label=browse] button[type=submit]");
  await resp;
  return shown();
}

/** UTC `YYYY-MM-DDTHH:MM:SS` for a datetime-local input. */
const local = (ms) => new Date(ms).toISOString().slice(0, 19);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const scenarios = {
  // Log in, create a topic, send messages from the UI, browse them by offset and by time.
  async topics_and_messages() {
    await page.goto(cfg.base + "/topics"); // a deep link: the login, then back there
    await page.waitForSelector("input[name=password]");
    await shot("login");
    // A wrong password is said plainly.
    await page.fill("input[name=username]", cfg.user);
    await page.fill("input[name=password]", "wrong");
    await page.click("button[type=submit]");
    await page.waitForSelector(".login .error");
    await page.fill("input[name=password]", cfg.password);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/topics$/);
    await page.waitForSelector("form[aria-label='create topic']");
    await page.fill("input[name=topic-name]", cfg.topic);
    await page.fill("input[name=partitions]", "2");
    await page.click("form[aria-label='create topic'] button[type=submit]");
    await page.waitForSelector(`a[href="/topics/${cfg.topic}"]`);
    await shot("topics");
    await page.click(`a[href="/topics/${cfg.topic}"]`);
    await page.waitForSelector("text=Partitions");
    const parts = await page.$$eval("table tbody tr", (r) => r.length);
    assert.ok(parts >= 2, `partitions shown: ${parts}`);
    await shot("topic");

    await page.goto(`${cfg.base}/messages?topic=${cfg.topic}`);
    await page.waitForSelector(`select[name=topic] option[value="${cfg.topic}"]`, { state: "attached" });
    await page.selectOption("select[name=topic]", cfg.topic);
    const send = async (key, value) => {
      await page.fill("input[name=send-key]", key);
      await page.fill("input[name=send-partition]", "0");
      await page.fill("textarea[name=send-value]", value);
      await page.fill("textarea[name=send-headers]", "source: ui-test");
      const resp = page.waitForResponse((r) => r.url().endsWith("/messages") && r.request().method() === "POST");
      await page.click("form[aria-label=send] button[type=submit]");
      assert.equal((await resp).status(), 201);
    };
    await send("k0", "first");
    await send("k1", JSON.stringify({ n: 2 }));
    await sleep(1500);
    const cut = Math.ceil(Date.now() / 1000) * 1000; // whole seconds: the input's resolution
    await sleep(cut - Date.now() + 1100);
    await send("k2", "third");
    await send("k3", "fourth");
    await page.waitForSelector("form[aria-label=send] p.ok");

    const byOffset = await browse(cfg.topic, 0, "offset", 1);
    assert.deepEqual(byOffset.map((m) => m[0]), [1, 2, 3]);
    assert.match(byOffset[0][1], /"n": ?2/);
    await page.selectOption("select[name=view]", "json");
    assert.match(await page.textContent("tr[data-offset='1'] td.value"), /\{\s+"n": 2\s+\}/); // pretty
    await page.selectOption("select[name=view]", "hex");
    assert.equal((await page.textContent("tr[data-offset='2'] td.value")).trim(), Buffer.from("third").toString("hex"));
    await page.selectOption("select[name=view]", "text");
    assert.match(await page.textContent("tr[data-offset='2']"), /source/);
    await shot("messages");
    const byTime = await browse(cfg.topic, 0, "time", local(cut));
    assert.deepEqual(byTime.map((m) => m[1]), ["third", "fourth"]);
    const byStart = await browse(cfg.topic, 0, "start");
    assert.equal(byStart.length, 4);

    await page.click("text=Overview");
    await page.waitForSelector(".cards");
    await page.waitForSelector("td >> text=up");
    await shot("overview");
    // Every broker's history (one here): fetched through cluster-history,
    // drawn, and no broker named missing.
    const all = page.waitForResponse((r) => r.url().includes("/api/v1/metrics/cluster-history") && r.status() === 200);
    await page.selectOption("select[name=history-broker]", "all");
    const body = await (await all).json();
    assert.deepEqual(body.brokers.map((b) => [b.self, b.status]), [[true, "ok"]]);
    await page.waitForSelector("h2 >> text=Every broker, last hour");
    assert.equal(await page.locator("[data-missing-broker]").count(), 0);
    await shot("overview-every-broker");
    await page.click("text=Security");
    await page.waitForSelector("h2 >> text=ACLs");
    await page.waitForSelector(`td >> text=${cfg.user}`);
    await shot("security");
  },

  // The group's lag, its chart, and a reset refused while a member is active.
  async group_active() {
    await login(cfg.user, cfg.password);
    await page.click("text=Consumer groups");
    await page.waitForSelector(`a[href="/groups/${cfg.group}"]`);
    await shot("groups");
    await page.click(`a[href="/groups/${cfg.group}"]`);
    await page.waitForSelector("[data-testid=total-lag]");
    assert.equal(await page.textContent("[data-testid=total-lag]"), String(cfg.lag));
    assert.equal(await page.textContent("[data-testid=group-state]"), "Stable");
    assert.ok((await page.textContent("body")).includes(cfg.topic));
    // The lag lines are drawn: pixels of the series' colours (total blue,
    // the partition red, drawn over it when equal) on the canvas.
    await page.waitForSelector(".chart canvas");
    const drawn = await page.$eval(".chart canvas", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if ((d[i] === 37 && d[i + 1] === 99 && d[i + 2] === 235) || (d[i] === 220 && d[i + 1] === 38 && d[i + 2] === 38)) n++;
      }
      return n;
    });
    assert.ok(drawn > 100, `lag line pixels: ${drawn}`);
    assert.equal(await page.$("text=No points yet"), null);
    await page.waitForSelector(".reset p.refused");
    await page.selectOption("select[name=reset-to]", "earliest");
    await page.click("form[aria-label='reset offsets'] button[type=submit]");
    await page.waitForSelector(".preview table");
    assert.ok(await page.isDisabled(".preview button.danger"), "Apply must be disabled");
    await shot("group-active");
  },

  // Reset to a time: preview, then apply.
  async group_reset() {
    await login(cfg.user, cfg.password);
    await page.goto(`${cfg.base}/groups/${cfg.group}`);
    await page.waitForSelector("[data-testid=group-state]");
    assert.equal(await page.textContent("[data-testid=group-state]"), "Empty");
    assert.equal(await page.$(".reset p.refused"), null);
    await page.selectOption("select[name=reset-to]", "time");
    await page.fill("input[name=reset-time]", local(cfg.reset_time));
    await page.click("form[aria-label='reset offsets'] button[type=submit]");
    await page.waitForSelector(".preview table");
    const row = await page.$$eval(".preview tbody tr td", (t) => t.map((x) => x.textContent));
    assert.deepEqual(row, [cfg.topic, "0", String(cfg.committed), String(cfg.expect_offset)]);
    await shot("group-reset-preview");
    await page.click(".preview button.danger");
    await page.waitForSelector(".preview p.ok");
    await shot("group-reset-applied");
  },

  // A user sees only the topics it may describe.
  async acl_view() {
    await login(cfg.user, cfg.password);
    await page.click("text=Topics");
    await page.waitForSelector(`a[href="/topics/${cfg.visible}"]`);
    const names = await page.$$eval("table tbody tr td:first-child", (t) => t.map((x) => x.textContent));
    assert.ok(names.includes(cfg.visible), names.join());
    assert.ok(!names.includes(cfg.hidden), `${cfg.hidden} shown to ${cfg.user}`);
    await shot("topics-limited");
  },

  // Create a lag alert rule through the UI; it fires (the test's webhook
  // receiver gets it) and the Alerts page shows it firing.
  async alert_rule() {
    await login(cfg.user, cfg.password);
    await page.click("header nav >> text=Alerts");
    await page.waitForSelector("form[aria-label='create alert rule']");
    await page.fill("input[name=rule-name]", cfg.rule);
    await page.selectOption("select[name=rule-kind]", "consumer_lag");
    await page.fill("input[name=rule-group]", cfg.group);
    await page.fill("input[name=rule-threshold]", String(cfg.threshold));
    await page.selectOption("select[name=rule-severity]", "critical");
    await page.fill("input[name=rule-webhooks]", cfg.webhook);
    await page.click("form[aria-label='create alert rule'] button[type=submit]");
    const rules = "section[aria-label='alert rules'] table";
    await page.waitForSelector(`${rules} >> text=${cfg.rule}`);
    // The page refreshes every 5 s: the alert shows up as firing.
    const firing = `section[aria-label='current alerts'] tr:has-text("group=${cfg.group}") .pill`;
    await page.waitForSelector(firing, { timeout: 30_000 });
    assert.equal((await page.textContent(firing)).trim(), "firing");
    // A silence matching nothing is refused, and the page says why.
    await page.click("form[aria-label='create silence'] button[type=submit]");
    await page.waitForSelector("section[aria-label=silences] .error >> text=needs a rule or a subject");
    await shot("alerts-firing");
  },

  // After the consumer caught up: resolved in the history, nothing firing.
  async alert_resolved() {
    await login(cfg.user, cfg.password);
    await page.goto(cfg.base + "/alerts");
    const resolved = `section[aria-label='alert history'] tr:has-text("${cfg.rule}") >> text=resolved`;
    await page.waitForSelector(resolved, { timeout: 30_000 });
    assert.equal(await page.$(`section[aria-label='current alerts'] tr:has-text("${cfg.rule}")`), null);
    // Disable the rule from its checkbox: the API says so.
    await page.click(`input[name=enabled-${cfg.rule}]`);
    await page.waitForSelector(`section[aria-label='alert rules'] tr:has-text("${cfg.rule}") >> text=off`);
    await shot("alerts-resolved");
  },

  // A broker without SASL: the banner, and no login.
  async open_banner() {
    await page.goto(cfg.base + "/");
    await page.waitForSelector(".banner");
    assert.equal((await page.textContent(".banner")).trim(), "this console is open: no login, no authorization");
    await page.waitForSelector(".cards");
    assert.equal(await page.$("input[name=password]"), null);
    await shot("open-mode");
  },
};

try {
  assert.ok(scenarios[scenario], `no scenario ${scenario}`);
  await scenarios[scenario]();
  assert.deepEqual(errors, [], "errors in the page");
  console.log(`scenario ${scenario}: ok`);
} catch (e) {
  await shot(`FAILED-${scenario}`).catch(() => {});
  console.error(`scenario ${scenario} failed at ${page.url()}: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
