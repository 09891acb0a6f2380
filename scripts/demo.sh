#!/usr/bin/env bash
# Set up (cached), start the local stack and run the feature pipeline on the bundled corpus
# through KFP local execution. Stop the stack afterwards with `twin stack down`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
twin stack up
twin stack status
