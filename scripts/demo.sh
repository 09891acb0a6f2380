#!/usr/bin/env bash
# Set up (cached), then `twin demo`: start the local stack, crawl the bundled corpus (the King
# James Version, see twin_lib/demo/PROVENANCE.md) from loopback web articles and a git
# repository, run the llm-twin and promote pipelines through KFP local execution, deploy the
# approved twin on the local model server and ask it a question over REST. A second run
# reuses what did not change. Stop everything afterwards with `twin serve down` and
# `twin stack down`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
twin demo "$@"
