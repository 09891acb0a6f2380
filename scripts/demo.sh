#!/usr/bin/env bash
# Set up (cached), start the local stack and run the feature pipeline through KFP local
# execution over a real corpus (the KJV fixture, see tests/fixtures/corpus/PROVENANCE.md).
# Running it again is a no-op: nothing changed, so nothing is re-crawled, re-embedded or
# re-loaded. Stop the stack afterwards with `twin stack down`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
demo_dir="${TWIN_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/llm-twin/demo}"
chapters="${TWIN_DEMO_CHAPTERS:-60}"
python -m tests.fixtures.corpus.kjv "$demo_dir/corpus" --chapters "$chapters"
twin stack up
twin pipeline run feature --local \
  --source "$demo_dir/corpus" --author "King James translators" \
  --pipeline-root "$demo_dir/kfp"
twin stack status
