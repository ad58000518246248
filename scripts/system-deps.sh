#!/usr/bin/env bash
# Installs the Debian packages postfork needs, only when they are missing:
# mariadb-server (the embedded database), libmariadb-dev + pkg-config (to build mysqlclient).
# Extra package names given as arguments (e.g. wrk for a benchmark) are installed the same way.
set -euo pipefail

packages=(mariadb-server libmariadb-dev pkg-config "$@")
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "postfork: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "postfork: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
