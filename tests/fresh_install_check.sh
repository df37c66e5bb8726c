#!/usr/bin/env bash
# Switchyard starts from its own dependency list (issue 10): build the wheel set the Dockerfile builds
# (`pip wheel .`), install only that set, without extras and without an index, in a throwaway
# virtualenv, start `switchyard serve` on free ports with a temporary SQLite database, wait for
# GET /api/health to answer 200, then stop it with SIGINT and check that it exited cleanly.
#
# Wheels of the dependencies are kept in SWITCHYARD_WHEELHOUSE (default ~/.cache/switchyard/wheels)
# so a second run downloads nothing new. `make check-fresh-install` runs this; .ci/run runs it
# before `make test` installs the test extras.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${SWITCHYARD_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/wheels}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

work=$(mktemp -d -t switchyard-fresh.XXXXXX)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
step() { echo "fresh install: $* (${SECONDS}s)"; }
fail() { echo "fresh install: FAILED: $*" >&2; exit 1; }

# Nothing from this checkout or the caller's environment may leak into the clean install.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PIP_REQUIRE_VIRTUALENV
for name in $(compgen -e | grep '^SWITCHYARD_' || true); do unset "$name"; done

step "virtualenv in $work"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
pip=("$py" -m pip --quiet --disable-pip-version-check)
mkdir -p "$WHEELHOUSE" "$work/wheels"

step "build requirements into $WHEELHOUSE"
"$py" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
    "$ROOT/pyproject.toml" > "$work/build-requirements.txt"
"${pip[@]}" wheel --find-links "$WHEELHOUSE" --wheel-dir "$WHEELHOUSE" -r "$work/build-requirements.txt"

# The checkout's sources (tracked files and new ones git does not ignore), so that build artefacts
# of earlier builds (build/, generated .c files) neither reach the wheel nor are left in the checkout.
src="$ROOT"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    src="$work/src"
    mkdir "$src"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | (cd "$ROOT" && tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) \
        | tar -xf - -C "$src"
fi

# The SDK (sdk/python/, switchyard-client) is a dependency no index has: built from its path in the same
# call, it satisfies the server's requirement by name. Neither of the project's own wheels is cached.
step "pip wheel ./sdk/python . (the project, its SDK and every dependency, as the Dockerfile does)"
"${pip[@]}" wheel --find-links "$WHEELHOUSE" --wheel-dir "$work/wheels" "$src/sdk/python" "$src"
find "$work/wheels" -name '*.whl' ! -name 'switchyard-*' ! -name 'switchyard_client-*' \
    -exec cp -n {} "$WHEELHOUSE/" \;

step "pip install switchyard from those $(ls "$work/wheels" | wc -l) wheels only (no extras, no index)"
"${pip[@]}" install --no-index --find-links "$work/wheels" switchyard
if "$py" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("pytest") is None)'; then
    fail "pytest is installed in the clean virtualenv"
fi

ports=$("$py" - <<'EOF'
import socket

def free(both):
    """A port free for TCP (and UDP when both) on 127.0.0.1."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not both:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port

print(free(False), free(False), free(True))
EOF
)
read -r http_port signaling_port rtc_port <<<"$ports"

step "switchyard serve on 127.0.0.1:$http_port (signaling $signaling_port, RTC $rtc_port)"
cd "$work"
setsid "$work/venv/bin/switchyard" serve --host 127.0.0.1 --port "$http_port" \
    --signaling-port "$signaling_port" --rtc-port-base "$rtc_port" --workers 1 \
    --announced-ip 127.0.0.1 --database-url "sqlite+aiosqlite:///$work/switchyard.db" \
    > "$work/serve.log" 2>&1 &
server_pid=$!

health_url="http://127.0.0.1:$http_port/api/health"
healthy=""
deadline=$((SECONDS + HEALTH_TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/serve.log" >&2
        fail "switchyard serve exited before answering $health_url"
    fi
    if "$py" -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)' \
        "$health_url" 2>/dev/null; then
        healthy=1
        break
    fi
    sleep 0.5
done
if [ -z "$healthy" ]; then
    cat "$work/serve.log" >&2
    fail "no 200 from $health_url within ${HEALTH_TIMEOUT}s"
fi
step "GET /api/health answered 200"

kill -INT "$server_pid"
status=""
deadline=$((SECONDS + STOP_TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        wait "$server_pid" && status=0 || status=$?
        break
    fi
    sleep 0.2
done
if [ -z "$status" ]; then
    cat "$work/serve.log" >&2
    fail "switchyard serve did not exit within ${STOP_TIMEOUT}s of SIGINT"
fi
server_pid_done=$server_pid
server_pid=""
if [ "$status" -ne 0 ]; then
    cat "$work/serve.log" >&2
    fail "switchyard serve exited with status $status after SIGINT"
fi
if pgrep -g "$server_pid_done" >/dev/null 2>&1; then
    fail "a process of switchyard serve outlived it"
fi
step "stopped cleanly; fresh install OK in $((SECONDS - started))s"
