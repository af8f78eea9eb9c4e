#!/usr/bin/env bash
# yamllint --strict on every YAML file under deploy/ (settings: deploy/.yamllint).
# Exit 77 (skipped) where yamllint is not installed.
set -euo pipefail
cd "$(dirname "$0")"
command -v yamllint >/dev/null || { echo "yamllint is not installed (scripts/install-deps.sh): skipped"; exit 77; }
yamllint --strict -c .yamllint .
echo "yamllint: $(find . -name '*.yaml' -o -name '*.yml' | wc -l) files clean"
