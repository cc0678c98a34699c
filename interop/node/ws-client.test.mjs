// Node's ws as a client of `tether serve`: echo, pings both kinds, close
// codes both ways, shutdown, and the server-side heartbeat.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { serve } from "../lib.mjs";

function open(url, opts) {
  const ws = new WebSocket(url, opts);
  const inbox = [];
  let waiting = null;
  ws.on("message", (data, isBinary) => {
    inbox.push({ data: isBinary ? Buffer.from(data) : data.toString(), isBinary });
    if (waiting) { const w = waiting; waiting = null; w(); }
  });
  ws.next = async () => {
    while (inbox.length === 0) await new Promise((r) => { waiting = r; });
    return inbox.shift();
  };
  ws.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => { ws.on("open", () => resolve(ws)); ws.on("error", reject); });
}

test("ws client: echo, text and protocol pings, close codes both ways", async () => {
  const srv = await serve();
  try {
    const ws = await open(srv.url);
    ws.send("hello");
    assert.deepEqual(await ws.next(), { data: "hello", isBinary: false });
    ws.send(Buffer.from([0, 1, 2, 255]));
    const bin = await ws.next();
    assert.equal(bin.isBinary, true);
    assert.deepEqual([...bin.data], [0, 1, 2, 255]);
    ws.send("ping"); // the recipe's text heartbeat
    assert.deepEqual(await ws.next(), { data: "pong", isBinary: false });
    const pong = new Promise((r) => ws.once("pong", (d) => r(d.toString())));
    ws.ping("p-1"); // an RFC 6455 ping
    assert.equal(await pong, "p-1");

    // The client closes with 4001: the server sees it and answers with the
    // same code (RFC 6455 5.5.1; tether's answer carries no reason).
    ws.close(4001, "node says bye");
    assert.equal((await ws.closed).code, 4001);
    const rec = await srv.err.wait((r) => r.event === "tether.disconnected" && r.code === 4001, "server-side 4001");
    assert.equal(rec.remote, true);
    assert.equal(rec.reason, "node says bye");

    // The server closes with the code asked for.
    const ws2 = await open(srv.url);
    ws2.send("/close 4002 server says bye");
    assert.deepEqual(await ws2.closed, { code: 4002, reason: "server says bye" });

    // Shutdown closes with 1001.
    const ws3 = await open(srv.url);
    await srv.err.wait((r) => r.event === "tether.connected" && srv.err.events("tether.connected").length >= 3, "third connection");
    await srv.stop("SIGTERM");
    assert.equal((await ws3.closed).code, 1001);
    assert.equal((await srv.exit).code, 0);
  } finally {
    await srv.stop("SIGKILL");
  }
});

test("ws client: the server's heartbeat keeps an answering peer and drops a silent one", async () => {
  const srv = await serve(["--ping-interval", "200ms", "--pong-timeout", "150ms", "--log-level", "debug"]);
  try {
    const good = await open(srv.url); // ws answers pings by itself
    const silent = await open(srv.url, { autoPong: false });
    const closed = await silent.closed;
    assert.equal(closed.code, 1006, "the silent peer is aborted without a close frame");
    await srv.err.wait((r) => r.event === "tether.heartbeat.timeout", "a heartbeat timeout");
    // The answering peer is still there, several pongs later.
    await srv.err.wait((r) => r.event === "tether.heartbeat.pong" && r.seq >= 3, "three answered pings");
    assert.equal(good.readyState, WebSocket.OPEN);
    good.send("still here");
    assert.equal((await good.next()).data, "still here");
    good.close(1000);
    await good.closed;
  } finally {
    await srv.stop("SIGKILL");
  }
});
