#!/usr/bin/env bash
# Build and install LightFM 1.17 into a virtualenv (benchmark-only dependency).
#
# LightFM 1.17 ships only an sdist whose setup.py writes
# `__builtins__.__LIGHTFM_SETUP__ = True`, which fails under PEP 517 builds
# ("'dict' object has no attribute '__LIGHTFM_SETUP__'"). This script downloads
# the sdist, patches that line to `import builtins; builtins.__LIGHTFM_SETUP__ = True`
# and builds it without build isolation (OpenMP extension, about a minute).
#
# Usage: scripts/install_lightfm.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail

PY="${1:-.venv/bin/python}"
VERSION="1.17"

if "$PY" -c "import lightfm, sys; sys.exit(0 if lightfm.__version__ == '$VERSION' else 1)" \
    2>/dev/null; then
  echo "lightfm $VERSION is already installed"
  exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PY" -m pip install --quiet setuptools wheel cython
"$PY" -m pip download --quiet --no-deps --no-binary :all: "lightfm==$VERSION" -d "$TMP"
tar -xzf "$TMP"/lightfm-"$VERSION".tar.gz -C "$TMP"
SRC="$TMP/lightfm-$VERSION"

if ! grep -q "__builtins__.__LIGHTFM_SETUP__ = True" "$SRC/setup.py"; then
  echo "setup.py of lightfm $VERSION no longer has the line this script patches" >&2
  exit 1
fi
sed -i 's/^\(\s*\)__builtins__\.__LIGHTFM_SETUP__ = True/\1import builtins; builtins.__LIGHTFM_SETUP__ = True/' \
  "$SRC/setup.py"

"$PY" -m pip install --quiet --no-build-isolation "$SRC"
"$PY" -c "import lightfm; print('installed lightfm', lightfm.__version__)"
