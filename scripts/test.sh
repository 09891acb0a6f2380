#!/usr/bin/env bash
# Set up (cached) and run the whole test suite: unit tests and integration tests against
# real MinIO, Weaviate and the other services the suite starts on loopback by itself.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
ruff check .
python -m pytest "$@"
