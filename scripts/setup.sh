#!/usr/bin/env bash
# Prepare this checkout to run: a Python environment matching uv.lock and the MinIO/Weaviate
# server binaries, all cached outside the repository (keyed by lock-file hash and version) so
# a second run on the same machine takes seconds. Source it: it exports PATH and TWIN_VENV.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llm-twin"
uv_version="0.13.9"
go_fallback="go1.26.0"
mkdir -p "$cache"

say() { printf '[setup] %s\n' "$*" >&2; }

# uv, in its own small environment (a fresh machine only needs python3 with venv)
uv_home="$cache/tools/uv-$uv_version"
if [ ! -x "$uv_home/bin/uv" ]; then
  say "installing uv $uv_version into $uv_home"
  python3 -m venv "$uv_home"
  "$uv_home/bin/pip" install --quiet "uv==$uv_version"
fi
uv="$uv_home/bin/uv"

# the project environment, one per lock file
lock_hash="$(cat "$repo/uv.lock" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
export TWIN_VENV="$cache/venvs/$lock_hash"
export UV_PROJECT_ENVIRONMENT="$TWIN_VENV"
export UV_CACHE_DIR="$cache/uv-cache"
started=$SECONDS
"$uv" sync --frozen --all-extras --quiet --project "$repo"
say "python environment ready in $((SECONDS - started))s: $TWIN_VENV"
export PATH="$TWIN_VENV/bin:$PATH"

# Go builds the servers; when it is missing, fetch a toolchain from the Go module proxy
if ! command -v go >/dev/null 2>&1; then
  go_root="$cache/tools/$go_fallback"
  if [ ! -x "$go_root/bin/go" ]; then
    say "Go not found: fetching $go_fallback from the Go module proxy"
    tmp="$(mktemp -d)"
    curl -fsSL -o "$tmp/go.zip" \
      "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-$go_fallback.linux-amd64.zip"
    python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
      "$tmp/go.zip" "$tmp"
    mkdir -p "$(dirname "$go_root")"
    mv "$tmp/golang.org/toolchain@v0.0.1-$go_fallback.linux-amd64" "$go_root"
    chmod +x "$go_root"/bin/* "$go_root"/pkg/tool/*/*
    rm -rf "$tmp"
  fi
  export PATH="$go_root/bin:$PATH"
fi

# the models used offline come from installed packages; never wait on a model hub
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

started=$SECONDS
twin stack install >/dev/null
say "server binaries ready in $((SECONDS - started))s"
