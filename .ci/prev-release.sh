#!/usr/bin/env bash
# Builds the previous release's binaries (zongzhi-node and zongzhi) from its
# commit in releases.toml, once, and prints the directory that holds them.
# The commit comes from this repository's own history: nothing is
# downloaded. The build goes into the same CARGO_TARGET_DIR as the current
# one, so RocksDB (C++, about 23 minutes on 2 cores) is compiled once for
# both while its version does not change; the binaries are cached under the
# commit hash, so a warm run builds nothing.
#
#   dir=$(.ci/prev-release.sh) && ZONGZHI_PREV_NODE=$dir/zongzhi-node cargo test …
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
cache=${ZONGZHI_PREV_CACHE:-/var/cache/zongzhi-prev}

# The release before the last entry of releases.toml.
commit=$(python3 - <<'PY'
import tomllib
with open("releases.toml", "rb") as f:
    releases = tomllib.load(f)["release"]
print(releases[-2]["commit"])
PY
)
out="$cache/$commit"
if [ -x "$out/zongzhi-node" ] && [ -x "$out/zongzhi" ]; then
  echo "$out"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  # A shallow clone: deepen it from where it came from.
  git fetch --quiet --unshallow 2>/dev/null || git fetch --quiet --depth=100000 origin 2>/dev/null || true
fi
git cat-file -e "$commit^{commit}" || { echo "the previous release's commit $commit is not in this clone's history" >&2; exit 1; }
work=$(mktemp -d)
trap 'git worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach --quiet "$work/src" "$commit"
# The previous release's own lock file and profile; its binaries without
# debug information (the size of a test binary is mostly RocksDB's).
(cd "$work/src" && CARGO_PROFILE_DEV_STRIP=debuginfo cargo build --quiet --locked -p zongzhi-node -p zongzhi-tools --bins >&2)
mkdir -p "$out.tmp"
cp "$CARGO_TARGET_DIR/debug/zongzhi-node" "$CARGO_TARGET_DIR/debug/zongzhi" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
# The current build's binaries of the same name were overwritten: make
# cargo link them again on the next build.
rm -f "$CARGO_TARGET_DIR/debug/zongzhi-node" "$CARGO_TARGET_DIR/debug/zongzhi"
find "$CARGO_TARGET_DIR/debug/.fingerprint" -maxdepth 1 \( -name 'zongzhi-node-*' -o -name 'zongzhi-tools-*' \) -newer "$work" -exec rm -rf {} + 2>/dev/null || true
echo "$out"
