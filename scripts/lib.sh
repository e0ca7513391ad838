# SPDX-License-Identifier: Apache-2.0
# Shared by the install scripts (sourced, not run): log lines prefixed with the script's
# name, and as_root, which runs a command as root directly, through sudo -n, or fails
# with a clear line when neither is possible.

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    SUDO=(__no_root__)
  fi
fi
as_root() {
  if [ "${SUDO[0]:-}" = __no_root__ ]; then
    log "need root for: $* (not root and sudo is not available)"
    return 1
  fi
  "${SUDO[@]}" "$@"
}
