#!/usr/bin/env bash
# Builds zongzhi and runs `zongzhi-lab demo`: 15 real nodes (1 city, 2 counties,
# 4 townships, 8 villages) on this machine, enrolled, linked over QUIC and
# seeded with cases; prints their URLs and logins; Ctrl-C stops them.
#
#   deploy/demo.sh [--dir DIR] [--http-port 7800] [--quic-port 7900] [--exit-after-seed]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building (the first build compiles RocksDB and takes a while)..." >&2
cargo build --workspace --bins --quiet
exec "${CARGO_TARGET_DIR:-target}/debug/zongzhi-lab" demo "$@"
