#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium`) for the console's browser test
# (tests/console.rs drives it over the DevTools protocol with tests/console_cdp.py, which
# needs only python3). Idempotent: with Chromium in place it only reports its version.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "chromium: /usr/bin/chromium is missing and apt-get cannot install it here" >&2
    exit 1
  fi
fi
command -v python3 >/dev/null 2>&1 || { echo "chromium: python3 is missing (the CDP driver needs it)" >&2; exit 1; }

echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
