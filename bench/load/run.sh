#!/usr/bin/env bash
# npm run load: raise the open-file limit (one descriptor per connection, on both ends) before
# starting the load tool; every process it starts inherits it. As root both limits go up; as a
# user the soft limit goes up to the hard one.
set -euo pipefail
want=1048576
ulimit -Hn "$want" 2>/dev/null || true
ulimit -Sn "$want" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
cd "$(dirname "$0")/../.."
# --perf (the bench's on-CPU profiles): every Node process it starts, and itself, write a perf
# map of their JIT code, so that perf can name the JavaScript functions it samples.
for arg in "$@"; do [ "$arg" = "--perf" ] && export NODE_OPTIONS="--perf-basic-prof ${NODE_OPTIONS:-}"; done
# The load tool imports @shardchat/sdk: from its sources (packages/sdk/src), not a build.
exec node --conditions=shardchat-source --import tsx "${LOAD_ENTRY:-bench/load/cli.ts}" "$@"
