#!/usr/bin/env bash
# nginx -t on the shipped site (sluice.conf after upstream.conf), as it is and
# with its TLS termination lines uncommented (a throwaway self-signed
# certificate). Exit 77 (skipped) where nginx is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is not installed (scripts/install-deps.sh): skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
check() {  # site file, label
  {
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    echo "pid $dir/nginx.pid; error_log $dir/error.log; events {}"
    echo "http {"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/$t;"; done
    echo "  access_log off;"
    echo "  include $here/upstream.conf;"
    echo "  include $1;"
    echo "}"
  } > "$dir/nginx.conf"
  "$nginx" -t -q -p "$dir" -c "$dir/nginx.conf" || { echo "FAIL: nginx -t ($2)"; exit 1; }
  echo "nginx -t: $2: ok"
}
check "$here/sluice.conf" "deploy/nginx/sluice.conf"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$dir/privkey.pem" \
  -out "$dir/fullchain.pem" 2>/dev/null
sed -e 's|^    # listen 8443 ssl;|    listen 8443 ssl;|' -e 's|^    # ssl_|    ssl_|' \
    -e "s|/etc/ssl/sluice/|$dir/|" "$here/sluice.conf" > "$dir/tls.conf"
grep -q '^    listen 8443 ssl;' "$dir/tls.conf" || { echo "FAIL: the TLS lines are not in sluice.conf"; exit 1; }
[ "$(grep -c '^    ssl_' "$dir/tls.conf")" -ge 4 ] || { echo "FAIL: the TLS lines did not uncomment"; exit 1; }
check "$dir/tls.conf" "with TLS termination"
