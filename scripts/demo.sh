#!/usr/bin/env bash
# make demo: the mission's whole story on the built-in example, on a machine without Docker Hub.
# A Debian base bootstrapped from Debian's packages, the webapp-color image built in layers, its
# history, a rebuild from the cache, the app served on a published port, the base's OS, and a
# push to a registry started here on 127.0.0.1. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
APP=examples/webapp-color
REGISTRY_PORT=${DEMO_REGISTRY_PORT:-5055}
WORK=$(mktemp -d /tmp/lamina-demo.XXXXXX)
CONTAINER=""
REGISTRY_PID=""

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  if [ -n "$CONTAINER" ]; then
    lamina stop -t 2 "$CONTAINER" >/dev/null 2>&1 || true
    lamina rm -f "$CONTAINER" >/dev/null 2>&1 || true
  fi
  if [ -n "$REGISTRY_PID" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say "lamina $(lamina --version | cut -d' ' -f2): the Dockerfile of $APP, read as Docker reads it"
lamina lint "$APP"

if ! lamina images -q debian:bookworm | grep -q .; then
  say "No Debian base here: building debian:bookworm from Debian's packages (mmdebstrap)"
  lamina bootstrap debian:bookworm
fi

say "lamina build -t webapp-color $APP   (one layer per RUN and COPY)"
lamina build --progress plain -t webapp-color "$APP"

say "lamina history webapp-color   (each layer with its size; config-only steps are 0B)"
lamina history webapp-color

say "Rebuilding: every step comes from the cache"
lamina build --progress plain -t webapp-color "$APP" 2>&1 | grep -E '^#[0-9]+ (\[|CACHED)|writing image' || true

say "lamina run -d --name webapp-demo -p 8282:8080 webapp-color"
lamina rm -f webapp-demo >/dev/null 2>&1 || true
CONTAINER=$(lamina run -d --name webapp-demo -p 8282:8080 webapp-color)
echo "container $CONTAINER"
page=""
for _ in $(seq 1 60); do
  if page=$(curl -fsS http://127.0.0.1:8282/ 2>/dev/null); then break; fi
  sleep 0.5
done
if [ -z "$page" ]; then
  echo "the app did not answer on http://127.0.0.1:8282/; its log:" >&2
  lamina logs webapp-demo >&2 || true
  exit 1
fi
say "curl http://127.0.0.1:8282/"
echo "$page"

say "lamina run --rm debian:bookworm cat /etc/os-release   (the base image's OS)"
lamina run --rm debian:bookworm cat /etc/os-release

say "Pushing to a registry on 127.0.0.1:$REGISTRY_PORT"
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$REGISTRY_PORT
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 && break
  sleep 0.2
done
lamina tag webapp-color "127.0.0.1:$REGISTRY_PORT/mmumshad/my-custom-app"
lamina push "127.0.0.1:$REGISTRY_PORT/mmumshad/my-custom-app"
echo "the registry now lists: $(curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/mmumshad/my-custom-app/tags/list")"

say "Stopping the container and the registry"
lamina stop -t 2 "$CONTAINER" >/dev/null
lamina rm "$CONTAINER" >/dev/null
CONTAINER=""
echo "done."
