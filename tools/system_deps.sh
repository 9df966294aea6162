#!/usr/bin/env bash
# Optional system packages for the test suite, installed when missing and possible
# (root + apt-get). Idempotent; never fails: a test that needs a missing package
# skips with the reason.
#   chromium: renders mrcnn-eval's report.html headless (tests/test_report.py)
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium not installed (needs root and apt-get); the report rendering test will skip" >&2
  exit 0
fi
echo "installing Debian's chromium (report rendering test) ..." >&2
export DEBIAN_FRONTEND=noninteractive
if timeout 900 apt-get -qq -o DPkg::Lock::Timeout=300 update >/dev/null \
   && timeout 900 apt-get -qq -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >/dev/null; then
  echo "chromium installed: $(chromium --version 2>/dev/null)" >&2
else
  echo "note: could not install chromium; the report rendering test will skip" >&2
fi
exit 0
