#!/usr/bin/env python3
"""Checks the Kubernetes manifests as a reviewer would, on what
`kubectl kustomize deploy/k8s` renders:

- every kind an operator needs is there (Deployment, Service, ConfigMap,
  Secret, PodDisruptionBudget, HorizontalPodAutoscaler, Redis, Ingress);
- the probes point at endpoints the gateway really serves: the built gateway
  is started on the ConfigMap's own configuration and answers them;
- the grace period outlasts preStop plus server.drain_timeout_ms;
- non-root (the Dockerfile's user), read-only root filesystem, no privilege
  escalation, resources requested and limited;
- the ConfigMap's sluice.toml and every SLUICE_* variable of the Deployment
  (Secret values resolved) pass `sluice --check-config`, and every variable
  names a real key (`sluice --config-keys`);
- names, ports and images agree across the files: selectors, the Service's
  and Ingress's ports, the Secret's keys, the Redis URL and Service, the
  image the kustomization sets, the port the Dockerfile exposes and the
  config listens on, the scrape annotations.

Usage: deploy/k8s/verify.py SLUICE_BINARY
Exit 77 (skipped) where kubectl is not installed."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, failures, free_port, local_config  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def main():
    sluice = sys.argv[1]
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("kubectl is not installed (Debian package kubernetes-client): skipped")
        return 77
    out = subprocess.run([kubectl, "kustomize", here], capture_output=True, text=True)
    check(out.returncode == 0, "kubectl kustomize deploy/k8s renders" + (": " + out.stderr if out.returncode else ""))
    if out.returncode:
        return 1
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Namespace", "Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler", "StatefulSet", "Ingress"):
        check(kind in by_kind, "a %s is rendered" % kind)
    check(all(d["metadata"].get("namespace") == "sluice" for d in docs if d["kind"] != "Namespace"),
          "every namespaced object is in the namespace sluice")

    dep = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "sluice")
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    c = next(c for c in spec["containers"] if c["name"] == "sluice")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the Deployment selects its pods")

    # The configuration the pods read: the ConfigMap mounted where --config points.
    cm_name = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
    cm = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == cm_name)
    mount = next(m for m in c["volumeMounts"] if any(v["name"] == m["name"] and "configMap" in v for v in spec["volumes"]))
    args = c.get("args", [])
    conf_path = args[args.index("--config") + 1]
    check(os.path.dirname(conf_path) == mount["mountPath"] and os.path.basename(conf_path) in cm["data"],
          "--config %s is the mounted ConfigMap %s" % (conf_path, cm_name))
    toml_text = cm["data"][os.path.basename(conf_path)]
    conf = tomllib.loads(toml_text)
    listen_port = int(conf["server"]["listen"].rsplit(":", 1)[1])
    check(ports.get("http") == listen_port, "the container port (%s) is server.listen's (%d)" % (ports, listen_port))
    dockerfile = open(os.path.join(root, "Dockerfile")).read()
    exposed = [int(p) for p in re.findall(r"^EXPOSE (\d+)", dockerfile, re.M)]
    check(listen_port in exposed, "the Dockerfile exposes %d (EXPOSE %s)" % (listen_port, exposed))
    user = re.findall(r"^USER (\d+)", dockerfile, re.M)
    sc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and str(sc.get("runAsUser")) in user,
          "runs as non-root, as the Dockerfile's USER %s" % user)
    check(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    res = c.get("resources", {})
    check(all(k in res.get("requests", {}) for k in ("cpu", "memory")) and "memory" in res.get("limits", {}),
          "cpu and memory requested, memory limited")

    # Grace period against preStop and the drain.
    drain_s = conf["server"].get("drain_timeout_ms", 5000) / 1000
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = float(pre[1]) if pre[:1] == ["sleep"] else 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(grace > pre_s + drain_s, "terminationGracePeriodSeconds %s > preStop %.0f s + drain %.0f s" %
          (grace, pre_s, drain_s))

    # Environment: Secret values resolved, every name a real key.
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in by_kind["Secret"]}
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            ok = ref["key"] in secrets.get(ref["name"], {})
            check(ok, "%s comes from Secret %s key %s, which exists" % (e["name"], ref["name"], ref["key"]))
            env[e["name"]] = secrets.get(ref["name"], {}).get(ref["key"], "")
        elif "fieldRef" in e["valueFrom"]:
            env[e["name"]] = "sluice-0"
    keys = dict(line.split()[::-1] for line in
                subprocess.run([sluice, "--config-keys"], capture_output=True, text=True, check=True).stdout.splitlines())
    for name in env:
        if name.startswith("SLUICE_"):
            check(name in keys, "%s is a configuration key (%s)" % (name, keys.get(name, "none")))

    # The configuration with the image's paths pointed at this checkout.
    work = tempfile.mkdtemp()
    try:
        path = local_config(toml_text, os.path.dirname(os.path.abspath(sluice)), work)
        run_env = dict(os.environ, **env)
        out = subprocess.run([sluice, "--check-config", "--config", path], capture_output=True, text=True, env=run_env)
        check(out.returncode == 0, "the ConfigMap's configuration and the pod's variables are valid: " +
              (out.stdout + out.stderr).strip().replace("\n", "; "))

        # The probes against the real gateway on that configuration (the
        # in-memory store here: no Redis in this check).
        port = free_port()
        run_env.update(SLUICE_STORE_BACKEND="memory", SLUICE_LOG_ACCESS_LOG="false")
        gw = subprocess.Popen([sluice, "--config", path, "--listen", "127.0.0.1:%d" % port], env=run_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for probe in ("readinessProbe", "livenessProbe"):
                get = c[probe]["httpGet"]
                p = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
                check(p == listen_port, "%s on the container's port" % probe)
                status = None
                for _ in range(300):
                    try:
                        status = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, get["path"]), timeout=2).status
                        break
                    except urllib.error.HTTPError as e:
                        status = e.code
                        break
                    except Exception:
                        if gw.poll() is not None:
                            break
                        time.sleep(0.1)
                check(status == 200, "%s %s answers 200 on the gateway (got %s)" % (probe, get["path"], status))
        finally:
            gw.terminate()
            gw.wait(20)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # Names and ports across files.
    svc = next(d for d in by_kind["Service"] if d["metadata"]["name"] == dep["metadata"]["name"])
    check(svc["spec"]["selector"].items() <= labels.items(), "the Service selects the gateways")
    check(all(p["targetPort"] in ports or p["targetPort"] in ports.values() for p in svc["spec"]["ports"]),
          "the Service's targetPort is a container port")
    pdb = by_kind["PodDisruptionBudget"][0]
    check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the PodDisruptionBudget covers the gateways")
    hpa = by_kind["HorizontalPodAutoscaler"][0]
    check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] and
          hpa["spec"]["minReplicas"] >= 2, "the autoscaler scales the Deployment, never below 2")
    ing = by_kind["Ingress"][0]
    for rule in ing["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            b = p["backend"]["service"]
            check(b["name"] == svc["metadata"]["name"] and b["port"]["name"] in [x["name"] for x in svc["spec"]["ports"]],
                  "the Ingress routes to the Service's port %s" % b["port"]["name"])
    ann = ing["metadata"].get("annotations", {})
    check(int(ann.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60")) >= 300 and
          ann.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off",
          "the Ingress keeps streams open and unbuffered")
    redis_url = conf.get("store", {}).get("redis_url", "")
    m = re.match(r"redis://([^:/]+):(\d+)", redis_url)
    redis_svcs = {d["metadata"]["name"]: [p["port"] for p in d["spec"]["ports"]] for d in by_kind["Service"]}
    check(bool(m) and int(m.group(2)) in redis_svcs.get(m.group(1), []),
          "store.redis_url %s is the Redis Service" % redis_url)
    kust = yaml.safe_load(open(os.path.join(here, "kustomization.yaml")))
    image = next(i for i in kust["images"] if i["name"] == "sluice")
    check(c["image"] == "%s:%s" % (image["newName"], image["newTag"]),
          "the rendered image is the kustomization's (%s)" % c["image"])
    compose = yaml.safe_load(open(os.path.join(root, "deploy", "compose", "compose.yaml")))
    check(compose["x-gateway"]["image"].split(":")[0] == image["newName"],
          "the compose file builds the same image name (%s)" % compose["x-gateway"]["image"])
    a = pod["metadata"].get("annotations", {})
    check(a.get("prometheus.io/scrape") == "true" and int(a.get("prometheus.io/port", 0)) == listen_port and
          a.get("prometheus.io/path") == "/metrics", "scrape annotations on the gateway's port and /metrics")

    print(json.dumps({"checks_failed": len(failures)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
