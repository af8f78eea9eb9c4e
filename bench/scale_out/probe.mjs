// Scale-out probes against two gateway instances on one Redis (run by
// bench/run_scale_out_bench.sh, which starts everything):
//   resume   <A port> <B port> <n>: a 1,000-event answer made on A, resumed
//            from offset 0 on B: resume request -> first replayed event, and
//            -> all of them (catch-up), per session; p50/p99.
//   takeover <B port> <n> <gateway command...>: starts instance A, begins a
//            paced answer there, has a client on B read it, SIGKILLs A: kill
//            -> next delta on B; p50/p99.
// Prints one Markdown row per measure.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from '../peers/node_modules/ws/index.js';

const [mode, ...args] = process.argv.slice(2);

function connect(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'sluice.v1');
    ws.frames = [];
    ws.waiters = [];
    ws.on('message', (m) => {
      const f = JSON.parse(m);
      f.at = performance.now();
      const w = ws.waiters.findIndex((x) => x.pred(f));
      if (w >= 0) ws.waiters.splice(w, 1)[0].resolve(f);
      else ws.frames.push(f);
    });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

function next(ws, pred, timeoutMs = 30000) {
  const i = ws.frames.findIndex(pred);
  if (i >= 0) return Promise.resolve(ws.frames.splice(i, 1)[0]);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout waiting for a frame')), timeoutMs);
    ws.waiters.push({ pred, resolve: (f) => { clearTimeout(t); resolve(f); } });
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const row = (name, xs) =>
  console.log(`| ${name} | ${xs.length} | ${pct(xs, 50).toFixed(2)} | ${pct(xs, 99).toFixed(2)} |`);

async function resumeProbe(portA, portB, n) {
  const first = [], all = [];
  const a = await connect(portA);
  for (let i = 0; i < n; i++) {
    a.send(JSON.stringify({ type: 'chat', input: `回放 ${i} [[sim repeat=50]]`, request_id: `r${i}` }));
    const s = await next(a, (f) => f.type === 'session' && f.request_id === `r${i}`);
    let events = 0;
    for (;;) {
      const f = await next(a, (f) => f.session_id === s.session_id && f.offset);
      events++;
      if (f.type === 'done') break;
    }
    const b = await connect(portB);
    const t0 = performance.now();
    b.send(JSON.stringify({ type: 'resume', session_id: s.session_id, offset: 0, resume_token: s.resume_token }));
    const f1 = await next(b, (f) => f.type === 'delta' && f.session_id === s.session_id);
    let got = 1;
    for (;;) {
      const f = await next(b, (f) => f.session_id === s.session_id && f.offset);
      got++;
      if (f.type === 'done') {
        all.push(f.at - t0);
        break;
      }
    }
    first.push(f1.at - t0);
    if (got !== events) throw new Error(`replayed ${got} of ${events} events`);
    b.close();
  }
  a.close();
  row('resume on another instance: request -> first replayed event (ms)', first);
  row('resume on another instance: request -> all ~1,000 events (ms)', all);
}

function startGateway(cmd) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-probe-'));
  const portFile = join(dir, 'port');
  const child = spawn(cmd[0], [...cmd.slice(1), '--port-file', portFile], { stdio: 'ignore' });
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(portFile) && readFileSync(portFile, 'utf8').trim()) {
        clearInterval(poll);
        resolve({ child, port: Number(readFileSync(portFile, 'utf8').trim()) });
      }
    }, 10);
  });
}

async function takeoverProbe(portB, n, cmd) {
  const gaps = [];
  for (let i = 0; i < n; i++) {
    const { child, port } = await startGateway(cmd);
    const a = await connect(port);
    a.send(JSON.stringify({ type: 'chat', input: `接管 ${i} [[sim repeat=5]]`, request_id: 'k' }));
    const s = await next(a, (f) => f.type === 'session');
    let last = 0;
    for (let k = 0; k < 3; k++) last = (await next(a, (f) => f.type === 'delta')).offset;
    const b = await connect(portB);
    b.send(JSON.stringify({ type: 'resume', session_id: s.session_id, offset: last, resume_token: s.resume_token }));
    await next(b, (f) => f.type === 'resumed');
    // Deltas A journaled before the kill still arrive; the gap is to the first one after.
    await new Promise((r) => setTimeout(r, 50));
    b.frames.length = 0;
    const t0 = performance.now();
    child.kill('SIGKILL');
    // A delta the owner published a moment before it died may still be on its
    // way: the takeover's first one is the first that comes later than that.
    const f = await next(b, (f) => f.type === 'delta' && f.session_id === s.session_id && f.at - t0 > 10);
    gaps.push(f.at - t0);
    await next(b, (f) => f.type === 'done' && f.session_id === s.session_id);
    a.terminate();
    b.close();
  }
  row('takeover: SIGKILL of the owner -> next delta on the other instance (ms)', gaps);
}

if (mode === 'resume') await resumeProbe(Number(args[0]), Number(args[1]), Number(args[2]));
else if (mode === 'takeover') await takeoverProbe(Number(args[0]), Number(args[1]), args.slice(2));
else throw new Error('mode: resume | takeover');
process.exit(0);
