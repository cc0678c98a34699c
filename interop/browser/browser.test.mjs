// A real browser (Debian's chromium, headless, driven by playwright-core)
// against `tether serve`: the page served at / (heartbeat with a pong
// timeout, reconnect 1-2-4-8-16 s, live timeline), and the recipe's own
// JavaScript from docs/recipe.md on Playwright's fake clock.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { serve, freePort } from "../lib.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let context, profile;

before(async () => {
  profile = fs.mkdtempSync(path.join(os.tmpdir(), "tether-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await context?.close();
  fs.rmSync(profile, { recursive: true, force: true });
});

// pageEvents polls the page's timeline until pred holds for it.
async function until(page, fn, arg, what, timeout = 10000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    const events = await page.evaluate(() => window.tetherPage?.events ?? []);
    throw new Error(`${what}: ${e.message}\ntimeline: ${JSON.stringify(events, null, 1)}`);
  }
}

const count = (kind, n) => [({ kind, n }) => window.tetherPage.events.filter((e) => e.kind === kind).length >= n, { kind, n }];

test("the page at / pings, reconnects after a restart and detects a frozen server", async () => {
  const addr = `127.0.0.1:${await freePort()}`;
  let srv = await serve(["--ping-interval", "1s", "--pong-timeout", "800ms", "--log-level", "debug"], addr);
  const page = await context.newPage();
  try {
    await page.goto(`http://${addr}/?ping=0.3&timeout=0.25&base=0.25`);
    await until(page, () => window.tetherPage.status() === "open", undefined, "open");
    await until(page, ...count("pong", 2), "text pings answered");
    // The server's protocol pings are answered by the browser itself.
    await srv.err.wait((r) => r.event === "tether.heartbeat.pong", "a pong from Chromium", 5000);
    await page.evaluate(() => window.tetherPage.send("hello from chromium"));
    await until(page, () => window.tetherPage.events.some((e) => e.kind === "message" && e.text.includes("hello from chromium")), undefined, "the echo");

    // Kill the server: the page sees the close, queues a message, and comes back when the server does.
    await srv.stop("SIGKILL");
    await until(page, ...count("disconnected", 1), "the loss");
    await page.evaluate(() => window.tetherPage.send("sent while down"));
    srv = await serve(["--ping-interval", "1s", "--pong-timeout", "800ms"], addr);
    await until(page, ...count("reconnected", 1), "reconnected after the restart");
    await until(page, () => window.tetherPage.events.some((e) => e.kind === "message" && e.text.includes("sent while down")), undefined, "the queued message's echo");
    const scheduled = await page.evaluate(() => window.tetherPage.events.filter((e) => e.kind === "scheduled").map((e) => e.text));
    assert.match(scheduled[0], /reconnect #1 in 250 ms/);

    // Freeze the server (SIGSTOP): the socket stays open, pongs stop; the page's own timeout finds it.
    process.kill(srv.proc.pid, "SIGSTOP");
    try {
      await until(page, ...count("timeout", 1), "the page's heartbeat timeout");
    } finally {
      process.kill(srv.proc.pid, "SIGCONT");
    }
    await until(page, ...count("reconnected", 2), "reconnected after the freeze", 15000);
    const tl = await page.evaluate(() => window.tetherPage.events.map((e) => `${e.t} ${e.kind} ${e.text}`));
    assert.equal(await page.evaluate(() => window.tetherPage.status()), "open", tl.join("\n"));
  } finally {
    await page.close();
    await srv.stop("SIGKILL");
  }
});

// The recipe's JavaScript exactly as docs/recipe.md shows it, with its real
// 30 s heartbeat and 1-2-4-8-16 s backoff on Playwright's fake clock.
function recipeJS() {
  const doc = fs.readFileSync(new URL("../../docs/recipe.md", import.meta.url), "utf8");
  const m = doc.match(/<!-- recipe:js -->\s*```js\n([\s\S]*?)```/);
  assert.ok(m, "docs/recipe.md has the recipe's JavaScript after <!-- recipe:js -->");
  return m[1];
}

test("the recipe's own client against tether serve", async () => {
  const addr = `127.0.0.1:${await freePort()}`;
  let srv = await serve([], addr);
  const page = await context.newPage();
  try {
    await page.clock.install();
    await page.goto(`http://${addr}/recipe-origin`); // a 404 page, but tether's origin
    // A classic script, as a page would include it: its top-level bindings are the page's globals.
    await page.addScriptTag({ content: `window.received = []; function handleMessage(d) { window.received.push(d); }\n${recipeJS()}\n` +
      `window.recipe = { state: () => ({ lastPong, reconnectAttempts, open: !!ws && ws.readyState === WebSocket.OPEN }) };` });
    const url = `ws://${addr}/ws`;
    await page.evaluate((u) => connect(u), url);
    await until(page, () => window.recipe.state().open, undefined, "the recipe connected");
    const before = await page.evaluate(() => window.recipe.state().lastPong);
    await page.clock.fastForward(30000); // the recipe's interval: it sends "ping"
    await until(page, (b) => window.recipe.state().lastPong > b, before, "a pong for the recipe's ping");
    await page.evaluate(() => ws.send("echo me"));
    await until(page, () => window.received.includes("echo me"), undefined, "the echo");

    // The server restarts: the recipe reconnects after its first delay.
    await srv.stop("SIGKILL");
    await until(page, () => !window.recipe.state().open && window.recipe.state().reconnectAttempts === 1, undefined, "the recipe saw the close");
    srv = await serve([], addr);
    await page.clock.fastForward(1000);
    await until(page, () => window.recipe.state().open, undefined, "the recipe reconnected");
    assert.equal(await page.evaluate(() => window.recipe.state().reconnectAttempts), 0);
  } finally {
    await page.close();
    await srv.stop("SIGKILL");
  }
});
