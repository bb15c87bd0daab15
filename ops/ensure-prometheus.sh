#!/usr/bin/env bash
# The Prometheus stack test (test/stack/prometheus.test.ts) runs Debian's prometheus and its
# promtool. Installs the package with apt-get when either is missing; a no-op otherwise.
# There is no init system here: the package's own service does not start, and the test starts
# its own prometheus on a free port.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "ensure-prometheus: installing prometheus with apt-get" >&2
$SUDO apt-get update -qq
# --no-install-recommends: the recommended exporters and web assets are not needed.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
prometheus --version 2>&1 | head -1 >&2
