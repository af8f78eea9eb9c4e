#!/usr/bin/env python3
"""Checks deploy/compose/compose.yaml and runs its topology as processes.

1. The file parses as the Compose tools read it: `docker-compose config`
   (Debian's docker-compose: the schema) and `podman-compose --dry-run up`
   (the podman commands it would run), where installed.
2. Its Prometheus config and the shipped rules pass promtool; Grafana's
   provisioning names the Prometheus service and the folder where the
   compose file mounts the shipped dashboard, whose datasource variable that
   data source fills.
3. The same topology, run here as processes with the services' own files and
   environment: a real redis-server, three gateways on the Redis store (the
   build's binary on the image's configuration, deploy/docker/sluice.toml),
   nginx on the shipped site file behind the compose file's upstream list,
   Prometheus on the compose file's scrape config. A chat streams from the
   demo model through nginx, the turns land on all three gateways, and
   Prometheus scrapes all three.

Usage: deploy/compose/verify.py SLUICE_BIN_DIR
Exit 77 (skipped) where redis-server, nginx or prometheus is not installed."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, failures, free_port, local_config  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
deploy = os.path.dirname(here)
root = os.path.dirname(deploy)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url, proc, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            return get(url, 2)[0]
        except Exception:
            if proc.poll() is not None:
                return None
            time.sleep(0.1)
    return None


def static_checks(compose):
    if shutil.which("docker-compose"):
        out = subprocess.run(["docker-compose", "-f", os.path.join(here, "compose.yaml"), "config", "-q"],
                             capture_output=True, text=True)
        check(out.returncode == 0, "docker-compose config accepts compose.yaml " + out.stderr.strip())
    else:
        print("skip  docker-compose is not installed")
    if shutil.which("podman-compose"):
        out = subprocess.run(["podman-compose", "--dry-run", "-f", os.path.join(here, "compose.yaml"), "up"],
                             capture_output=True, text=True, cwd=here)
        made = re.findall(r"podman create --name=\S+?_(\S+?)_1 ", out.stdout)
        check(out.returncode == 0 and sorted(made) == sorted(compose["services"]),
              "podman-compose would create every service: %s" % sorted(made))
    else:
        print("skip  podman-compose is not installed")
    services = compose["services"]
    gateways = [n for n in services if n.startswith("gateway-")]
    check(len(gateways) == 3 and "redis" in services and "nginx" in services, "redis, three gateways and nginx")
    # Prometheus: the compose file's config with the shipped rules beside it, as mounted.
    prom = services["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prom["volumes"] if v.startswith("."))
    with tempfile.TemporaryDirectory() as d:
        for src, dst in mounts.items():
            shutil.copy(os.path.join(here, src), os.path.join(d, os.path.basename(dst)))
        if shutil.which("promtool"):
            out = subprocess.run(["promtool", "check", "config", os.path.join(d, "prometheus.yml")],
                                 capture_output=True, text=True)
            check(out.returncode == 0, "promtool check config (compose's prometheus.yml, the shipped rules) " +
                  out.stderr.strip()[-300:])
    conf = yaml.safe_load(open(os.path.join(here, "prometheus.yml")))
    targets = conf["scrape_configs"][0]["static_configs"][0]["targets"]
    check(sorted(targets) == sorted("%s:8080" % g for g in gateways), "Prometheus scrapes every gateway: %s" % targets)
    # Grafana.
    graf = services["grafana"]
    gmounts = dict(v.split(":")[:2] for v in graf["volumes"])
    prov = os.path.join(here, "grafana", "provisioning")
    check(gmounts.get("./grafana/provisioning") == "/etc/grafana/provisioning", "Grafana's provisioning is mounted")
    ds = yaml.safe_load(open(os.path.join(prov, "datasources", "prometheus.yaml")))["datasources"][0]
    check(ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090" and ds.get("isDefault"),
          "the default data source is the prometheus service")
    boards = yaml.safe_load(open(os.path.join(prov, "dashboards", "sluice.yaml")))["providers"][0]
    dash_mount = gmounts.get("../grafana/sluice.json", "")
    check(os.path.dirname(dash_mount) == boards["options"]["path"],
          "the dashboard provider reads where sluice.json is mounted (%s)" % dash_mount)
    dash = json.load(open(os.path.join(deploy, "grafana", "sluice.json")))
    var = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    check(bool(var) and var[0]["query"] == ds["type"], "the dashboard's datasource variable takes that data source")


def topology(compose, bin_dir):
    for tool in ("redis-server", "prometheus"):
        if not shutil.which(tool):
            print("%s is not installed: the topology run is skipped" % tool)
            return 77
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        print("nginx is not installed: the topology run is skipped")
        return 77
    services = compose["services"]
    gateways = sorted(n for n in services if n.startswith("gateway-"))
    work = tempfile.mkdtemp(prefix="sluice-compose-")
    procs = []

    def start(args, log, env=None):
        p = subprocess.Popen(args, stdout=open(os.path.join(work, log), "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(p)
        return p

    try:
        # redis, as the compose file runs it (its port here).
        redis_port = free_port()
        cmd = services["redis"]["command"]
        redis = start(cmd + ["--port", str(redis_port), "--dir", work, "--save", ""], "redis.log")
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(redis_port), "ping"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        # The gateways: the image's configuration with this checkout's paths,
        # each service's environment with the Redis address here.
        conf_path = local_config(open(os.path.join(deploy, "docker", "sluice.toml")).read(), bin_dir, work)
        ports = {}
        for g in gateways:
            env = {k: str(v) for k, v in services[g]["environment"].items()}
            env["SLUICE_STORE_REDIS_URL"] = env["SLUICE_STORE_REDIS_URL"].replace("redis:6379", "127.0.0.1:%d" % redis_port)
            env.update(SLUICE_LOCAL_THREADS="1", SLUICE_SERVER_THREADS="1")
            ports[g] = free_port()
            start([os.path.join(bin_dir, "sluice"), "--config", conf_path, "--listen", "127.0.0.1:%d" % ports[g]],
                  g + ".log", dict(os.environ, **env))
        for g in gateways:
            check(wait_http("http://127.0.0.1:%d/readyz" % ports[g], procs[-1], 60) == 200, "%s is ready" % g)
        # nginx: the compose file's two mounted files, addresses and port made local.
        mounts = [v.split(":")[:2] for v in services["nginx"]["volumes"]]
        nginx_port = free_port()
        confd = os.path.join(work, "conf.d")
        os.makedirs(confd)
        for src, dst in mounts:
            text = open(os.path.normpath(os.path.join(here, src))).read()
            for g in gateways:
                text = text.replace("%s:8080" % g, "127.0.0.1:%d" % ports[g])
            text = text.replace("listen 8080;", "listen 127.0.0.1:%d;" % nginx_port)
            open(os.path.join(confd, os.path.basename(dst)), "w").write(text)
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            if os.geteuid() == 0:
                f.write("user root;\n")
            f.write("pid %s/nginx.pid; error_log %s/nginx-error.log; worker_processes 1;\nevents {}\nhttp {\n" % (work, work))
            for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                f.write("  %s_temp_path %s/%s;\n" % (t, work, t))
            f.write("  access_log %s/nginx-access.log;\n  include %s/*.conf;\n}\n" % (work, confd))
        ngx = start([nginx, "-p", work, "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"], "nginx.log")
        check(wait_http("http://127.0.0.1:%d/healthz" % nginx_port, ngx) == 200, "nginx answers /healthz")
        # Prometheus: the compose file's config, every 1 s, targets made local.
        prom_dir = os.path.join(work, "prometheus")
        os.makedirs(prom_dir)
        pconf = yaml.safe_load(open(os.path.join(here, "prometheus.yml")))
        pconf["global"]["scrape_interval"] = "1s"
        pconf["global"]["evaluation_interval"] = "1s"
        sc = pconf["scrape_configs"][0]["static_configs"][0]
        sc["targets"] = ["127.0.0.1:%d" % ports[t.split(":")[0]] for t in sc["targets"]]
        yaml.safe_dump(pconf, open(os.path.join(prom_dir, "prometheus.yml"), "w"))
        shutil.copy(os.path.join(deploy, "prometheus", "alerts.yml"), prom_dir)
        prom_port = free_port()
        prom = start(["prometheus", "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
                      "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                      "--web.listen-address=127.0.0.1:%d" % prom_port], "prometheus.log")
        # Chats through nginx: SSE, streamed by the demo model, round robin.
        answers = []
        for q in ("How do I return an item?", "你们支持哪些支付方式？", "Where is my order A1001?"):
            body = json.dumps({"model": "sluice-demo", "stream": True,
                               "messages": [{"role": "user", "content": q}]}).encode()
            req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % nginx_port, body,
                                         {"Content-Type": "application/json"})
            deltas, done = 0, False
            with urllib.request.urlopen(req, timeout=120) as r:
                for line in r:
                    line = line.decode().strip()
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: ") and '"content"' in line:
                        deltas += 1
            answers.append(deltas)
            check(deltas >= 3 and done, "through nginx, %r streams %d deltas and [DONE]" % (q, deltas))
        turns = {}
        for g in gateways:
            _, text = get("http://127.0.0.1:%d/metrics" % ports[g])
            turns[g] = sum(float(m) for m in re.findall(r'^sluice_turns_total\{[^}]*\} (\S+)', text, re.M))
        check(all(v >= 1 for v in turns.values()), "round robin: every gateway answered a turn %s" % turns)
        # Prometheus sees all three.
        up = []
        for _ in range(150):
            try:
                _, text = get("http://127.0.0.1:%d/api/v1/query?query=up%%7Bjob%%3D%%22sluice%%22%%7D" % prom_port)
                up = [r for r in json.loads(text)["data"]["result"] if r["value"][1] == "1"]
                if len(up) == 3:
                    break
            except Exception:
                pass
            if prom.poll() is not None:
                break
            time.sleep(0.2)
        check(len(up) == 3, "Prometheus scrapes all three gateways (up == 1 for %d)" % len(up))
        rules = []
        try:
            _, text = get("http://127.0.0.1:%d/api/v1/rules" % prom_port)
            rules = [r["name"] for g in json.loads(text)["data"]["groups"] for r in g["rules"]]
        except Exception:
            pass
        check(len(rules) > 0, "Prometheus loaded the shipped rules (%d)" % len(rules))
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if failures:
            for log in sorted(os.listdir(work)):
                if log.endswith(".log"):
                    print("--- %s" % log)
                    print(open(os.path.join(work, log), errors="replace").read()[-1500:])
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main():
    compose = yaml.safe_load(open(os.path.join(here, "compose.yaml")))
    static_checks(compose)
    rc = topology(compose, sys.argv[1])
    print(json.dumps({"checks_failed": len(failures)}))
    if failures:
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
