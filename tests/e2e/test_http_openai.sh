#!/bin/bash
# The official openai npm package (pinned in tests/e2e/http/package.json, installed by
# tools/setup.sh) lists models, completes, streams a chat completion and gets OpenAI error objects
# from aoqd --http, with an API key mapped to a tenant.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/http_lib.sh"
H="$(cd "$(dirname "$0")/http" && pwd)"
[ -d "$H/node_modules/openai" ] || fail "tests/e2e/http/node_modules/openai missing: run tools/setup.sh (npm ci in tests/e2e/http)"
printf '# key tenant\nsk-aoq-test-1 acme\nsk-aoq-test-2 other\n' >"$T/keys"
start_http_daemon --api-keys "$T/keys"
timeout 180 node "$H/openai_test.mjs" "$BASE/v1" sk-aoq-test-1 || fail "openai package checks"
# the requests ran as tenant acme (key -> tenant), through the scheduler
status_json | jq -e '.tenants[] | select(.name=="acme") | .tokens >= 7' >/dev/null ||
  fail "tenant acme has no tokens: $(status_json | jq -c .tenants)"
stop_daemon
echo "PASS"
