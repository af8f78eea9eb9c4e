#!/usr/bin/env bash
# Checks deploy/prometheus/ with promtool: the scrape config and the alert
# rules. Exit 77 (skipped) where promtool is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v promtool >/dev/null || { echo "promtool not installed (Debian package prometheus): skipped"; exit 77; }
promtool check config "$here/prometheus.yml"
promtool check rules "$here/alerts.yml"
