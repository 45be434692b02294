#!/usr/bin/env sh
# Installs the system tools that the test suite runs for real: promtool (Prometheus rule
# tests and the live alerting test), pdftoppm (PDF rendering checks), chromium (console
# tests). Skips what is already there; never fails the build when it cannot install,
# because the tests that need a missing tool skip with a clear reason.
set -u
missing=""
command -v promtool   >/dev/null 2>&1 || missing="$missing prometheus"
command -v pdftoppm   >/dev/null 2>&1 || missing="$missing poppler-utils"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
  echo "system-deps: cannot install$missing (not root, no sudo); tests needing them will skip" >&2; exit 0; fi
echo "system-deps: installing$missing"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 \
  || echo "system-deps: apt-get install$missing failed; tests needing them will skip" >&2
# Debian starts a prometheus service on install; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop prometheus >/dev/null 2>&1 || true; fi
$SUDO pkill -x prometheus >/dev/null 2>&1 || true
$SUDO pkill -f prometheus-node-exporter >/dev/null 2>&1 || true
exit 0
