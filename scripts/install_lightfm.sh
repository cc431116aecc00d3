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
# Fetch the sdist itself (sha256-checked against PyPI's record): `pip download` would
# prepare its metadata, which runs the unpatched setup.py and fails the same way.
"$PY" - "$VERSION" "$TMP" <<'PYEOF'
import hashlib
import pathlib
import re
import sys
import urllib.request

version, tmp = sys.argv[1], pathlib.Path(sys.argv[2])
name = f"lightfm-{version}.tar.gz"
with urllib.request.urlopen("https://pypi.org/simple/lightfm/", timeout=60) as r:
    page = r.read().decode()
match = re.search(r'href="([^"#]*/' + re.escape(name) + r')#sha256=([0-9a-f]{64})"', page)
if match is None:
    sys.exit(f"{name} is not on the package index")
url, sha = match.groups()
with urllib.request.urlopen(url, timeout=300) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit(f"sha256 mismatch for {name}")
(tmp / name).write_bytes(data)
PYEOF
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
