#!/usr/bin/env bash
# Builds zongzhi, initialises one node from an example config (default: the
# township center), creates an admin account on first run, prints how to log
# in, and runs the node until Ctrl-C.
#
#   deploy/quickstart.sh [deploy/examples/<level>.toml]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-deploy/examples/township.toml}
target=${CARGO_TARGET_DIR:-target}

echo "building (the first build compiles RocksDB and takes a while)..." >&2
cargo build --workspace --bins --quiet
bin="$target/debug"

data_dir=$(sed -n 's/^data_dir *= *"\(.*\)"/\1/p' "$config")
case "$data_dir" in
  /*) ;;
  *) data_dir="$(dirname "$config")/$data_dir" ;;
esac
http=$(sed -n 's/^http_listen *= *"\(.*\)"/\1/p' "$config")
http=${http:-127.0.0.1:7800}

if [ ! -f "$data_dir/node.key" ]; then
  "$bin/zongzhi-node" init --config "$config"
fi
pwfile="$data_dir/admin-password.txt"
if [ ! -f "$pwfile" ]; then
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  "$bin/zongzhi-node" user add --config "$config" --username admin --role admin \
    --display-name 管理员 --password-stdin <<<"$password" >/dev/null
  (umask 077 && printf '%s\n' "$password" >"$pwfile")
fi

cat <<MSG

zongzhi node: $(sed -n 's/^name *= *"\(.*\)"/\1/p' "$config") ($(sed -n 's/^division *= *"\(.*\)"/\1/p' "$config"))
  API      http://$http/api/health
  log in   $bin/zongzhi --node http://$http login --user admin < $pwfile
  then     $bin/zongzhi policy
           $bin/zongzhi file --title 噪音扰民 --content 楼上装修噪音 --category 0202
           $bin/zongzhi queue
  admin password is in $pwfile
Ctrl-C stops the node.

MSG
exec "$bin/zongzhi-node" run --config "$config"
