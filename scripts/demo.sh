#!/usr/bin/env bash
# make demo: the main job on the built-in example. Until the builder lands, that is reading
# the example's Dockerfile as Docker would and showing its stages, instructions and problems.
set -euo pipefail
cd "$(dirname "$0")/.."
LAMINA=.venv/bin/lamina

echo "==> lamina $($LAMINA --version | cut -d' ' -f2): reading examples/webapp-color/Dockerfile"
$LAMINA lint examples/webapp-color
