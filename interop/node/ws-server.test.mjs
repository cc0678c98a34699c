// Node's ws as the server of `tether connect`: the recipe's text
// heartbeat, reconnects on the schedule, queued messages, give-up, close
// codes both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer } from "ws";
import { run } from "../lib.mjs";

function wsServer(onConnection) {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => resolve(wss));
    wss.on("connection", onConnection);
  });
}

test("tether connect against a ws server that answers ping and drops connections", async () => {
  let n = 0;
  const got = [];
  const wss = await wsServer((ws) => {
    n++;
    ws.on("message", (data) => {
      const s = data.toString();
      if (s === "ping") { ws.send("pong"); return; }
      got.push(s);
      ws.send("echo:" + s);
    });
    // wall time: ws runs on the real clock; 700 ms lets a few text pings and pongs pass before the drop.
    if (n <= 2) setTimeout(() => ws.terminate(), 700); // the first two connections drop (no close frame)
  });
  const url = `ws://127.0.0.1:${wss.address().port}/`;
  const c = run(["connect", "--json", "--text-ping", "--ping-interval", "200ms", "--pong-timeout", "150ms",
    "--retry-base", "100ms", "--retry-max-attempts", "3", url]);
  try {
    await c.err.wait((r) => r.event === "tether.heartbeat.pong", "a text pong from ws");
    c.proc.stdin.write("hello\n");
    await c.out.wait((r) => r.event === "message" && r.data === "echo:hello", "the echo of hello");

    // Two drops, two reconnects, each after the first delay: the counter resets once a connection opens.
    const first = await c.err.wait((r) => r.event === "tether.disconnected", "the first drop");
    assert.equal(first.code, 1006);
    c.proc.stdin.write("while-down\n"); // queued while reconnecting, sent after
    await c.out.wait((r) => r.event === "message" && r.data === "echo:while-down", "the queued message's echo");
    await c.err.wait((r) => r.event === "tether.reconnect.done" && c.err.events("tether.reconnect.done").length === 2, "two reconnects");
    for (const s of c.err.events("tether.reconnect.scheduled")) {
      assert.equal(s.attempt, 1);
      assert.equal(s.delay_ms, 100);
    }
    await c.err.wait((r) => r.event === "tether.heartbeat.pong" && r.conn === "tether.3", "pongs on the third connection");

    // The server goes away: 100, 200, 400 ms, then give up with a clear message and a non-zero exit.
    const from = c.err.all.length;
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
    const gaveUp = await c.err.wait((r) => r.event === "tether.reconnect.gaveup", "a give-up", 10000, from);
    assert.equal(gaveUp.attempts, 3);
    const delays = c.err.all.slice(from).filter((r) => r.event === "tether.reconnect.scheduled").map((r) => r.delay_ms);
    assert.deepEqual(delays, [100, 200, 400]);
    const { code } = await c.exit;
    assert.equal(code, 1);
    // With --json the final error is a JSON record too.
    const exitRec = c.err.events("exit").at(-1);
    assert.ok(exitRec && exitRec.code === 1 && exitRec.err.includes("gave up reconnecting"), "a clear message");
    assert.deepEqual(got, ["hello", "while-down"]);
  } finally {
    c.proc.kill("SIGKILL");
    wss.close();
  }
});

test("close codes both ways with a ws server", async () => {
  // tether connect closes with 1000 when its stdin ends.
  let seen;
  const closedByClient = new Promise((resolve) => { seen = resolve; });
  const wss = await wsServer((ws) => ws.on("close", (code, reason) => seen({ code, reason: reason.toString() })));
  const url = `ws://127.0.0.1:${wss.address().port}/`;
  const c = run(["connect", "--json", url]);
  await c.err.wait((r) => r.event === "tether.connected", "connected");
  c.proc.stdin.end();
  assert.deepEqual(await closedByClient, { code: 1000, reason: "bye" });
  assert.equal((await c.exit).code, 0);
  await new Promise((r) => wss.close(r));

  // A policy violation (1008) from the server is not worth a retry: exit 1 at once.
  const wss2 = await wsServer((ws) => ws.close(1008, "not allowed"));
  const c2 = run(["connect", "--json", `ws://127.0.0.1:${wss2.address().port}/`]);
  try {
    const d = await c2.err.wait((r) => r.event === "tether.disconnected", "the 1008 close");
    assert.equal(d.code, 1008);
    assert.equal(d.reason, "not allowed");
    assert.equal(d.remote, true);
    const g = await c2.err.wait((r) => r.event === "tether.reconnect.gaveup", "a give-up");
    assert.equal(g.attempts, 0);
    assert.equal((await c2.exit).code, 1);
    const exitRec = c2.err.events("exit").at(-1);
    assert.ok(exitRec && exitRec.code === 1 && exitRec.err.includes("not retried"), "the exit record says the close is not retried");
  } finally {
    c2.proc.kill("SIGKILL");
    wss2.close();
  }
});
