#!/usr/bin/env bash
# Everything the test suite needs beyond Python packages, from the package registries only:
# the Apache Kafka broker jars (Maven Central), npm packages for the Node/NestJS peers, and
# Debian's Chromium for the browser tests. Idempotent: a second run does little.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Kafka broker jars into the user cache (mvn dependency:copy-dependencies).
$PY -c 'from framework.testing.kafka import ensure_kafka_jars; print("kafka jars:", ensure_kafka_jars())'

# 2. npm packages for every Node peer (committed lock files, so `npm ci`).
while IFS= read -r lock; do
  dir=$(dirname "$lock")
  if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules" ]; then
    echo "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done < <(find tests benchmarks -name package-lock.json -not -path '*/node_modules/*' 2>/dev/null)

# 3. From Debian: Chromium (Playwright drives it; it never downloads a browser) and
#    redis-server (the example Redis Streams transport's tests start their own).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "test dependencies ready"
