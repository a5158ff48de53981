#!/usr/bin/env bash
# Debian packages the tests and the demo use: Prometheus (with promtool), Alertmanager
# and Chromium; with --bench also the load generator wrk.
# As root they are installed with apt-get; otherwise we say what to install.
# With --optional (the demo) a missing package is reported, never fatal.
set -euo pipefail
optional=false
bench=false
for argument in "$@"; do
  case "$argument" in
    --optional) optional=true ;;
    --bench) bench=true ;;
  esac
done

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
$bench && { command -v wrk >/dev/null || missing+=(wrk); }
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian packages: ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "apt-get could not install ${missing[*]}." >&2
    $optional || exit 1
  fi
else
  echo "Missing Debian packages: ${missing[*]}. Install them with:" >&2
  echo "    sudo apt-get install ${missing[*]}" >&2
  echo "Until then the tests that need them are skipped (and fail under CI=true)." >&2
fi
