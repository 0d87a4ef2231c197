#!/usr/bin/env bash
# Install the Debian packages the integration tests need (tools/setup/system-packages.txt).
# Idempotent and quiet when everything is present; pinned versions first, and if the archive has
# moved on (a Debian security update replaces the pinned version) the candidate, said out loud.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
missing=()
while read -r name version; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$name=$version")
  fi
done < "$here/system-packages.txt"
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "system packages missing (${missing[*]}); run as root: bash tools/setup/system-packages.sh" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "pinned versions unavailable; installing the archive's current candidates instead" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]%%=*}" >/dev/null
fi
# Services come from the tests, on loopback, never from the package's init scripts.
for service in redis-server coturn nginx; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$service" >/dev/null 2>&1 || true; fi
  service "$service" stop >/dev/null 2>&1 || true
done
