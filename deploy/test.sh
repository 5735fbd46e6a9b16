#!/usr/bin/env bash
# Every test. The in-place upgrade test (tests/tests/upgrade.rs) runs the
# previous release's real binaries: they are built once from that
# release's commit in this repository's history (.ci/prev-release.sh, into
# the same CARGO_TARGET_DIR, cached under the commit), then
# `cargo test --workspace` runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
prev=$(.ci/prev-release.sh)
export ZONGZHI_PREV_NODE="$prev/zongzhi-node"
# The binaries the tests start (zongzhi-lab has no tests of its own, so
# `cargo test` alone would not link it).
cargo build --workspace --bins
exec cargo test --workspace "$@"
