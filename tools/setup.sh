#!/usr/bin/env bash
# One-time setup on a fresh machine: npm dependencies, a WebGPU adapter, the TypeScript build.
# On a GPU-less Debian bookworm machine Dawn needs Mesa ≥ 25's lavapipe (CPU Vulkan); the stock Mesa 22 is
# refused, so we enable bookworm-backports and install mesa-vulkan-drivers from there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if [ ! -d node_modules/webgpu ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

if node tools/probe-adapter.mjs; then
  :
else
  log "no WebGPU adapter: installing Mesa lavapipe from bookworm-backports"
  if ! command -v apt-get >/dev/null; then
    log "apt-get not found: install a Vulkan driver (Mesa >= 25 lavapipe, or your GPU's) by hand"; exit 1
  fi
  . /etc/os-release
  codename="${VERSION_CODENAME:-bookworm}"
  if [ "$codename" = bookworm ]; then
    list=/etc/apt/sources.list.d/qvla-backports.list
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
    fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
  else
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mesa-vulkan-drivers
  fi
  node tools/probe-adapter.mjs
fi

# HAProxy: the scale-out recipe (tools/fleet/) and its test (test/server/fleet.test.ts, skipped without it).
# Non-fatal: everything else works without it.
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  if command -v apt-get >/dev/null; then
    log "installing haproxy (tools/fleet, test/server/fleet.test.ts)"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends haproxy; } \
      || log "could not install haproxy: the fleet test will be skipped"
  else
    log "apt-get not found: install haproxy by hand for tools/fleet (the fleet test is skipped without it)"
  fi
fi

# Chromium: the browser playground's test (test/web/browser.test.ts drives headless Chromium through puppeteer-core,
# which downloads no browser; skipped without it). Non-fatal: everything else works without it.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null; then
    log "installing chromium (test/web/browser.test.ts: the playground in a real browser)"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium; } \
      || log "could not install chromium: the browser test will be skipped"
  else
    log "apt-get not found: install chromium by hand for test/web/browser.test.ts (skipped without it)"
  fi
fi

log "building (tsc)"
npx tsc -p tsconfig.json
log "ready"
