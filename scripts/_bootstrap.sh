# Sourced by the README's commands: prepares a fresh Debian/Ubuntu machine (or reuses what is there).
#   - checks for Python 3.10+ (python3, or $PYTHON)
#   - makes .venv/ at the repository root and installs the pinned dev dependencies
#     (again only when requirements/*.txt or pyproject.toml changed)
#   - finds redis-server ($REDIS_SERVER, PATH), installing it with apt-get when missing and possible
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
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
        echo "$stamp" > .venv/.installed
    fi
}

ensure_redis_server() {
    if [ -n "${REDIS_URL:-}" ]; then
        return 0  # tests and benchmarks use the external server (fault-injection tests still need a binary)
    fi
    if [ -n "${REDIS_SERVER:-}" ]; then
        [ -x "$REDIS_SERVER" ] || { echo "error: REDIS_SERVER=$REDIS_SERVER is not executable." >&2; exit 1; }
        return 0
    fi
    command -v redis-server >/dev/null 2>&1 && return 0
    apt_install redis-server || true
    command -v redis-server >/dev/null 2>&1 && return 0
    cat >&2 <<'MSG'
error: redis-server is not installed and could not be installed automatically.
  Debian/Ubuntu:  sudo apt-get install redis-server
  macOS:          brew install redis
  or set REDIS_SERVER=/path/to/redis-server (any Redis >= 6.2 or Valkey),
  or set REDIS_URL=redis://host:port/db to use an external server you can flush.
MSG
    exit 1
}

ensure_venv
ensure_redis_server
