#!/usr/bin/env bash
# Runs README's nginx example (docs/nginx/gatehouse.conf) in front of the built server
# with a real nginx from Debian (installed if missing), on free loopback ports, TLS
# lines swapped for a plain listener, and checks through it: the site's own page, the
# password routes, the SelfKey config's absolute URLs (from public_url), the OwnID
# routes, unrouted /health, and a spoofed X-Forwarded-For that buys no extra requests.
set -euo pipefail
cd "$(dirname "$0")/.."
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx" ]; then
  apt-get -o DPkg::Lock::Timeout=600 install -y nginx-light >/dev/null 2>&1 || {
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y nginx-light >/dev/null
  }
  nginx=/usr/sbin/nginx
fi

# shellcheck source=scripts/test-server.sh
. scripts/test-server.sh
per_address=8
start_test_server \
  GATEHOUSE_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')" \
  GATEHOUSE_OWNID__SHARED_SECRETS="$(head -c 32 /dev/urandom | base64)" \
  GATEHOUSE_HTTP__PUBLIC_URL=https://shop.example \
  GATEHOUSE_HTTP__TRUSTED_PROXIES=127.0.0.1 \
  GATEHOUSE_RATE_LIMIT__PER_ADDRESS=$per_address \
  GATEHOUSE_ARGON2__MEMORY_KIB=1024 \
  GATEHOUSE_ARGON2__ITERATIONS=1

ngx=$(mktemp -d)
chmod 755 "$ngx"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true;
      [ -f "$ngx/nginx.pid" ] && kill "$(cat "$ngx/nginx.pid")" 2>/dev/null || true; sleep 0.2
      rm -rf "$data" "$ngx"' EXIT
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$ngx/site"
echo '<!doctype html><title>shop</title>the shop page' >"$ngx/site/index.html"
sed -e "s|listen 443 ssl;|listen 127.0.0.1:$nport;|" \
    -e '/ssl_certificate/d' \
    -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$port;|" \
    -e "s|root /var/www/shop;|root $ngx/site;|" \
    docs/nginx/gatehouse.conf >"$ngx/site.conf"
cat >"$ngx/nginx.conf" <<CONF
user root;
daemon on;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events {}
http {
    access_log $ngx/access.log;
    client_body_temp_path $ngx/body;
    proxy_temp_path $ngx/proxy;
    include $ngx/site.conf;
}
CONF
"$nginx" -p "$ngx" -c "$ngx/nginx.conf"
base="http://127.0.0.1:$nport"
for _ in $(seq 1 50); do curl -fsS "$base/" >/dev/null 2>&1 && break; sleep 0.1; done

passed=0 failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAIL: $name"; failed=$((failed + 1)); fi
}
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

check "the site's own page is served by nginx" \
  bash -c "curl -fsS '$base/' | grep -q 'the shop page'"
token=$(curl -fsS "$base/auth/register" -H 'content-type: application/json' \
  -d '{"email":"proxy@example.com","password":"proxy-password"}' | json '["token"]') || token=
check "register through the proxy gives a token" test -n "$token"
check "/auth/me through the proxy knows the account" \
  bash -c "curl -fsS '$base/auth/me' -H 'authorization: Bearer $token' | grep -q proxy@example.com"
root=$(curl -fsS "$base/api/v1/selfkey/config" | json '["rootEndpoint"]') || root=
check "SelfKey's config names the public URL ($root)" test "$root" = https://shop.example/api/v1/selfkey
ownid=$(curl -s -o /dev/null -w '%{http_code}' "$base/ownid/getSessionByLoginId" \
  -H 'content-type: application/json' -d '{"loginId":"proxy@example.com"}')
check "the OwnID routes are routed (an unsigned call is Gatehouse's 401, got $ownid)" test "$ownid" = 401
health=$(curl -s -o /dev/null -w '%{http_code}' "$base/health")
check "/health is not exposed (nginx's 404, got $health)" test "$health" = 404
# Each request claims another address; nginx replaces the header, so all count as one.
limited=0
for i in $(seq 1 $((per_address + 1))); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/auth/login" \
    -H "x-forwarded-for: 203.0.113.$i" -H 'content-type: application/json' \
    -d "{\"email\":\"spoof$i@example.com\",\"password\":\"wrong-password\"}")
  [ "$code" = 429 ] && limited=1
done
check "a spoofed X-Forwarded-For buys no extra requests" test "$limited" = 1

echo "nginx: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "gatehouse log:"; tail -n 30 "$log"; echo "nginx log:"; tail -n 30 "$ngx/error.log"; }
[ "$failed" -eq 0 ]
