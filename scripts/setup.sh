#!/usr/bin/env bash
# Install what lamina needs on a fresh Debian machine, idempotently:
# the system packages (OCI runtime, networking, registry, image tools) and lamina itself,
# with its test tools, in a virtual environment at .venv. Fast when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  crun runc containernetworking-plugins iptables iproute2 busybox-static mmdebstrap golang-github-containers-common
  docker-registry skopeo umoci curl ca-certificates fuse-overlayfs uidmap apache2-utils
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: needs root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
stamp=.venv/.lamina-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing lamina and its test tools into .venv"
  # pip.conf on these machines names a local index that may be absent; its warning is noise.
  quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }
  quiet_pip install -q --upgrade pip >/dev/null
  quiet_pip install -q -e '.[test]'
  touch "$stamp"
fi
# An editable install leaves lamina's own modules uncompiled, and where PYTHONDONTWRITEBYTECODE
# is set Python never caches them: every command would compile what it imports (~60 ms of
# `lamina run`). Compile them now; compileall skips the modules that are up to date.
.venv/bin/python -m compileall -q src/lamina >/dev/null
# The same for the methods @dataclass generates (lamina/dataclass_cache.py: ~30 ms of a small
# `lamina build`, ~10 ms of a `lamina run`).
.venv/bin/python -m lamina.dataclass_cache
# And the bytecode of every module lamina imports, in one file the launcher reads (lamina_startup:
# Python's path search and .pyc checks cost ~8 ms of each command). Written after compileall.
.venv/bin/python src/lamina_startup.py
# pip's console script pays ~5 ms for `site` at every command: a launcher without it.
.venv/bin/python scripts/write_launcher.py .venv/bin/lamina
