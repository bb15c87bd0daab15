#!/usr/bin/env bash
# Installs Debian's nginx and its stream module (raw TCP proxying) when missing. The packaged
# service is not started: tests and ops/nginx/nginx.sh run their own nginx with a rendered config.
set -euo pipefail

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || /usr/sbin/nginx -V 2>&1 | grep -q -- '--with-stream ' ||
  need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d 101: the package's postinst must not start the system nginx on port 80.
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
