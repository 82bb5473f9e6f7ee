# Shared set-up steps for scripts/demo and scripts/test. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the Debian packages named in the given list files that are not installed yet.
ensure_debian_packages() {
  local wanted=() missing=() pkg
  for list in "$@"; do
    while read -r pkg; do
      pkg="${pkg%%#*}"; pkg="${pkg// /}"
      [ -n "$pkg" ] && wanted+=("$pkg")
    done < "$list"
  done
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "missing system packages and no apt-get to install them: ${missing[*]}"
    return 1
  fi
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  local py
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  say "Sightline needs Python 3.11 (Debian 12 ships it as python3)"
  return 1
}

# Create .venv if needed and install the project with the given extras, e.g. ".[test]".
ensure_venv() {
  local spec="$1" py
  if [ ! -x "$VENV/bin/python" ]; then
    py="$(pick_python)"
    say "creating virtualenv with $py"
    "$py" -m venv "$VENV" || { ensure_debian_packages "$ROOT/scripts/debian-base.txt"; "$py" -m venv "$VENV"; }
  fi
  say "installing Python packages ($spec)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$spec"
}
