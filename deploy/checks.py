"""What the deploy checks (compose/verify.py, k8s/verify.py) share: one line
per check, the failures kept for the exit status, a free local port, and
the image's configuration made runnable from this checkout."""
import os
import socket
import subprocess
import sys

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def local_config(text, bin_dir, work):
    """An image configuration (deploy/docker/sluice.toml, the ConfigMap's)
    with the image's paths pointed at this checkout and build, and a fresh
    demo orders database in work. Returns the path of the file written."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    orders = os.path.join(work, "orders.sqlite")
    subprocess.run([sys.executable, os.path.join(root, "tools", "make_demo_orders.py"), orders],
                   check=True, capture_output=True)
    plugins = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "plugins")
    for image, here in (("/usr/local/share/sluice/models", os.path.join(root, "models")),
                        ("/usr/local/lib/sluice/plugins", plugins),
                        ("/usr/local/share/sluice/web", os.path.join(root, "web-demo")),
                        ("/usr/local/share/sluice/kb", os.path.join(root, "kb")),
                        ("/usr/local/share/sluice/demo/orders.sqlite", orders)):
        text = text.replace(image, here)
    path = os.path.join(work, "sluice.toml")
    with open(path, "w") as f:
        f.write(text)
    return path
