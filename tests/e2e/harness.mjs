// Starts the simulator and the real gateway for Node tests, each reporting
// its port through a pipe (--port-file /dev/fd/3).
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const SIM_TEXT =
  'Answer for {prompt}: 你好，世界！Streaming works 🚀 — 第二句话，带标点。Done ✅';

export function expectedText(prompt, repeat = 1) {
  return SIM_TEXT.replace('{prompt}', prompt).repeat(repeat);
}

// An answer from the knowledge base, citing its passages: [9] has none (the
// demo shop's knowledge base gives 3), a group, two markers together, and
// Chinese and emoji around them.
export const CITED_TEXT =
  'According to our policy [1], returns are free [2]. 退货免费 [1]。 See [1][3] or [1, 3]; [9] is not a source. ✅';

// A gateway configuration with the knowledge_base plugin on the demo shop's
// help center (kb/demo-shop); `before` goes first (tables such as [server]).
export function kbConfig(before = '') {
  return `${before}
[[plugins]]
path = "${process.env.SLUICE_PLUGIN_DIR}/knowledge_base.so"
[plugins.settings]
folder = "${path.join(repo, 'kb', 'demo-shop')}"
`;
}

export function startWithPort(bin, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...args, '--port-file', '/dev/fd/3'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    let line = '';
    child.stdio[3].on('data', (d) => {
      line += d;
      if (line.includes('\n')) resolve({ child, port: Number(line.trim()) });
    });
    child.on('exit', (code) => reject(new Error(`${bin} exited with ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error(`${bin} did not report its port: ${stderr}`)), 20000).unref();
  });
}

export async function startStack(simArgs = [], gatewayEnv = {}) {
  const sim = await startWithPort(process.env.SLUICE_SIM_BIN,
    ['--listen', '127.0.0.1:0', '--text', SIM_TEXT, ...simArgs]);
  const gw = await startWithPort(process.env.SLUICE_GATEWAY_BIN,
    ['--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${sim.port}/v1`], gatewayEnv);
  return {
    gatewayUrl: `http://127.0.0.1:${gw.port}`,
    simUrl: `http://127.0.0.1:${sim.port}`,
    stop() {
      gw.child.kill('SIGKILL');
      sim.child.kill('SIGKILL');
    },
  };
}

// A TCP proxy in front of the gateway: cutting it is the gateway dropping
// every socket, as far as the client can tell.
export function startProxy(port) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    cut() { for (const s of sockets) s.destroy(); },
    close() { this.cut(); server.close(); },
  })));
}
