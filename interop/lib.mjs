// Helpers shared by the Node interop tests: run the tether binary
// (TETHER_BIN, built by ./run) and follow its JSON-lines output.
import { spawn } from "node:child_process";
import net from "node:net";
import readline from "node:readline";

export const TETHER = process.env.TETHER_BIN || "tether";

// Lines collects the JSON (or plain) lines of a stream and lets a test
// wait for one that matches.
export class Lines {
  constructor(stream, name) {
    this.name = name;
    this.all = [];
    this.waiters = [];
    readline.createInterface({ input: stream }).on("line", (line) => {
      let rec = line;
      try { rec = JSON.parse(line); } catch { /* a plain line */ }
      this.all.push(rec);
      if (process.env.INTEROP_VERBOSE) console.error(`[${name}] ${line}`);
      this.waiters = this.waiters.filter((w) => !w.check(rec));
    });
  }
  // wait resolves with the first line (past or future, after index from)
  // for which pred is true.
  wait(pred, what, timeoutMs = 10000, from = 0) {
    const seen = this.all.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; got:\n` +
        this.all.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n"))), timeoutMs);
      this.waiters.push({ check: (rec) => { if (!pred(rec)) return false; clearTimeout(timer); resolve(rec); return true; } });
    });
  }
  events(name) { return this.all.filter((r) => r && r.event === name); }
}

export function run(args, { stdin = "pipe" } = {}) {
  const proc = spawn(TETHER, args, { stdio: [stdin, "pipe", "pipe"] });
  const out = new Lines(proc.stdout, `${args[0]}:stdout`);
  const err = new Lines(proc.stderr, `${args[0]}:stderr`);
  const exit = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  return { proc, out, err, exit };
}

// serve starts `tether serve` and resolves once it listens.
export async function serve(extra = [], addr = "127.0.0.1:0") {
  const p = run(["serve", "--addr", addr, "--log-format", "json", ...extra]);
  const rec = await p.err.wait((r) => r.msg === "listening", "listening");
  p.addr = rec.addr;
  p.url = rec.ws;
  p.stop = async (signal = "SIGTERM") => {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal);
    return p.exit;
  };
  return p;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on("error", reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
