// Starts the simulator and the real gateway for Node tests, each reporting
// its port through a pipe (--port-file /dev/fd/3).
import { spawn } from 'node:child_process';
import net from 'node:net';

export const SIM_TEXT =
  'Answer for {prompt}: 你好，世界！Streaming works 🚀 — 第二句话，带标点。Done ✅';

export function expectedText(prompt, repeat = 1) {
  return SIM_TEXT.replace('{prompt}', prompt).repeat(repeat);
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
