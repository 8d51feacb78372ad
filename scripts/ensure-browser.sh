#!/usr/bin/env bash
# Provision the headless Chromium the browser tests drive, or stop with the one command that does.
# Order: a `chromium` already on PATH; Debian's package when we may install it (root + apt-get);
# Playwright's managed browser (`python -m playwright install chromium`) otherwise.
set -euo pipefail
PY=${1:-.venv/bin/python}
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests (apt-get)…" >&2
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
    exit 0
  fi
fi
if "$PY" - <<'PYEOF' 2>/dev/null; then exit 0; fi
from pathlib import Path
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    raise SystemExit(0 if Path(p.chromium.executable_path).exists() else 1)
PYEOF
echo "installing Playwright's managed Chromium for the browser tests…" >&2
if "$PY" -m playwright install chromium >/dev/null 2>&1; then exit 0; fi
cat >&2 <<'MSG'
error: the browser tests need a headless Chromium and none could be installed.
Run ONE of these, then `make test` again:
    sudo apt-get install chromium                 # Debian / Ubuntu
    .venv/bin/python -m playwright install chromium
MSG
exit 1
