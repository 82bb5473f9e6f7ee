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
  local installed
  installed=" $(dpkg-query -W -f='${Package}:${Status}\n' "${wanted[@]}" 2>/dev/null \
    | sed -n 's/:install ok installed$//p' | tr '\n' ' ' || true) "
  for pkg in "${wanted[@]}"; do
    [[ "$installed" == *" $pkg "* ]] || missing+=("$pkg")
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
  # Skip pip when nothing it reads changed since the last install: the fast test loop.
  local stamp="$VENV/.sightline-installed" want
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/camera_adapters/_rtpsend.c" | sha256sum | cut -c1-16) $spec"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$ROOT"/camera_adapters/_rtpsend*.so >/dev/null 2>&1; then
    return 0
  fi
  say "installing Python packages ($spec)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$spec"
  echo "$want" > "$stamp"
}

# npm ci in the given directory when its package-lock.json changed since the last install
# (the same stamp idea as ensure_venv). A failure stops the run.
ensure_npm_packages() {
  local dir="$1" stamp want
  stamp="$dir/node_modules/.sightline-installed"
  want="$(sha256sum "$dir/package-lock.json" | cut -c1-16) $(node --version)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    say "installing Debian package: npm"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  say "installing npm packages in ${dir#"$ROOT"/}"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$stamp"
}
