"""Python's websockets (Debian's python3-websockets) against tether.

Run with /usr/bin/python3 and TETHER_BIN set (interop/run does both):
a websockets client against `tether serve`, and a websockets server
behind `tether connect`: echo, pings, close codes both ways, reconnects.
"""
import asyncio
import json
import os
import unittest

import websockets

TETHER = os.environ.get("TETHER_BIN", "tether")
TIMEOUT = 10


class Proc:
    """A tether process whose output lines are collected as they come."""

    def __init__(self, proc):
        self.proc = proc
        self.out, self.err = [], []
        self.changed = asyncio.Event()
        self.tasks = [asyncio.create_task(self._read(proc.stdout, self.out)),
                      asyncio.create_task(self._read(proc.stderr, self.err))]

    @classmethod
    async def start(cls, *args):
        proc = await asyncio.create_subprocess_exec(
            TETHER, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self, stream, into):
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            try:
                into.append(json.loads(text))
            except ValueError:
                into.append(text)
            if os.environ.get("INTEROP_VERBOSE"):
                print("[tether]", text, flush=True)
            self.changed.set()

    async def wait(self, lines, pred, what, start=0):
        async def loop():
            while True:
                for rec in lines[start:]:
                    if pred(rec):
                        return rec
                self.changed.clear()
                await self.changed.wait()
        try:
            return await asyncio.wait_for(loop(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what}; got {lines}") from None

    def event(self, name, **want):
        return lambda r: isinstance(r, dict) and r.get("event") == name and all(r.get(k) == v for k, v in want.items())

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.terminate()
        code = await asyncio.wait_for(self.proc.wait(), TIMEOUT)
        await asyncio.gather(*self.tasks)
        return code


class ClientOfTetherServe(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.srv = await Proc.start("serve", "--addr", "127.0.0.1:0", "--log-format", "json")
        rec = await self.srv.wait(self.srv.err, lambda r: isinstance(r, dict) and r.get("msg") == "listening", "listening")
        self.url = rec["ws"]

    async def asyncTearDown(self):
        self.assertEqual(await self.srv.stop(), 0)

    async def test_echo_pings_and_close_codes(self):
        async with websockets.connect(self.url) as ws:
            await ws.send("hello from python")
            self.assertEqual(await ws.recv(), "hello from python")
            await ws.send(b"\x00\x01\xfe")
            self.assertEqual(await ws.recv(), b"\x00\x01\xfe")
            await ws.send("ping")
            self.assertEqual(await ws.recv(), "pong")
            pong = await ws.ping(b"py-1")
            await asyncio.wait_for(pong, TIMEOUT)  # the protocol pong arrived
            await ws.close(4003, "python says bye")
            self.assertEqual(ws.close_code, 4003)
        rec = await self.srv.wait(self.srv.err, self.srv.event("tether.disconnected", code=4003), "server-side 4003")
        self.assertTrue(rec["remote"])
        self.assertEqual(rec["reason"], "python says bye")

        ws = await websockets.connect(self.url)
        await ws.send("/close 4004 tether says bye")
        await ws.wait_closed()
        self.assertEqual((ws.close_code, ws.close_reason), (4004, "tether says bye"))


class ServerBehindTetherConnect(unittest.IsolatedAsyncioTestCase):
    async def test_echo_reconnect_and_close_codes(self):
        closes, conns = [], []

        async def handler(ws, path=None):
            conns.append(ws)
            try:
                async for msg in ws:
                    if msg == "bounce":
                        await ws.close(4005, "come back later")  # an application code: worth a retry
                        return
                    await ws.send("py:" + msg)
            finally:
                closes.append((ws.close_code, ws.close_reason))

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            c = await Proc.start("connect", "--json", "--retry-base", "50ms", f"ws://127.0.0.1:{port}/")
            await c.wait(c.err, c.event("tether.connected"), "connected")
            c.proc.stdin.write(b"hi\n")
            await c.wait(c.out, lambda r: isinstance(r, dict) and r.get("data") == "py:hi", "the echo")

            c.proc.stdin.write(b"bounce\n")
            d = await c.wait(c.err, c.event("tether.disconnected", code=4005), "the 4005 close")
            self.assertEqual((d["reason"], d["remote"]), ("come back later", True))
            s = await c.wait(c.err, c.event("tether.reconnect.scheduled"), "a reconnect")
            self.assertEqual((s["attempt"], s["delay_ms"]), (1, 50))
            await c.wait(c.err, c.event("tether.reconnect.done"), "reconnected")
            c.proc.stdin.write(b"after\n")
            await c.wait(c.out, lambda r: isinstance(r, dict) and r.get("data") == "py:after", "the echo after")

            c.proc.stdin.close()  # tether connect says goodbye with 1000
            self.assertEqual(await asyncio.wait_for(c.proc.wait(), TIMEOUT), 0)
            await asyncio.gather(*c.tasks)
            await asyncio.wait_for(conns[-1].wait_closed(), TIMEOUT)
            self.assertEqual(len(conns), 2)
            self.assertEqual(closes[-1], (1000, "bye"))

    async def test_unsupported_data_is_not_retried(self):
        async def handler(ws, path=None):
            await ws.close(1003, "text only")

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            c = await Proc.start("connect", "--json", f"ws://127.0.0.1:{port}/")
            g = await c.wait(c.err, c.event("tether.reconnect.gaveup"), "a give-up")
            self.assertEqual(g["attempts"], 0)
            self.assertIn("1003", g["err"])
            self.assertEqual(await asyncio.wait_for(c.proc.wait(), TIMEOUT), 1)
            await asyncio.gather(*c.tasks)


if __name__ == "__main__":
    unittest.main(verbosity=2)
