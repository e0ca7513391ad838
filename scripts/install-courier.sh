#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs a private Courier-IMAP for the integration tests (internal/testenv/courier.go)
# without touching the system's IMAP server.
#
# The Debian package courier-imap declares "Conflicts: imap-server", so a plain
# `apt-get install courier-imap` would remove dovecot-imapd. Instead this script
#   1. apt-get installs only what courier-imap depends on (courier-base, courier-authlib,
#      courier-authlib-userdb, courier-authdaemon, gamin and the libraries), none of which
#      conflicts with Dovecot, and
#   2. `apt-get download`s courier-imap and unpacks it with `dpkg-deb -x` into a private
#      root (COURIER_ROOT, default /opt/emaillistener-test/courier). The tests run
#      $COURIER_ROOT/usr/bin/imapd and $COURIER_ROOT/usr/lib/courier/courier/imaplogin
#      with the system's libraries; dpkg never learns about them.
# The package's system services (courier-authdaemon) are not left running: policy-rc.d
# forbids starting them during the installation, and the tests start their own
# authdaemond in a private mount namespace.
#
# Idempotent: a second run only reads package state and the version stamp of the private
# root. Needs root (or sudo) only for what it actually has to change. Safe whether Dovecot
# is installed or not.
#
# usage: scripts/install-courier.sh
set -euo pipefail

COURIER_ROOT=${COURIER_ROOT:-/opt/emaillistener-test/courier}
# courier-imap's Depends, minus default-mta (Postfix comes from install-test-deps.sh; the
# tests never send mail through the MTA) and minus the package itself.
PACKAGES=(courier-base courier-authlib courier-authlib-userdb courier-authdaemon gamin
  libgamin0 libcourier-unicode4 libgdbm6 libidn12)

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

missing_packages() {
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
  done
}

APT_UPDATED=""
apt_update_once() {
  [ -n "$APT_UPDATED" ] && return 0
  as_root apt-get update -q
  APT_UPDATED=1
}

# Without systemd (containers), postinst scripts would start courier-authdaemon through
# invoke-rc.d; policy-rc.d exit 101 forbids that. Only created (and removed again) when
# absent. On a systemd host the packages' services may start; stop_services below stops
# them again.
CREATED_POLICY=""
policy_on() {
  if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d'
    CREATED_POLICY=1
  fi
}
policy_off() {
  if [ -n "$CREATED_POLICY" ]; then
    as_root rm -f /usr/sbin/policy-rc.d || true
    CREATED_POLICY=""
  fi
}
trap policy_off EXIT

install_packages() {
  local missing rc=0
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    log "dependencies already installed: ${PACKAGES[*]}"
    return 0
  fi
  log "installing dependencies: ${missing[*]}"
  policy_on
  apt_update_once || rc=$?
  if [ "$rc" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" || rc=$?
  fi
  policy_off
  stop_services
  return "$rc"
}

# stop_services stops what the packages may have started on a systemd host and disables
# it, so that no system authdaemond (or gam_server) keeps running for nothing.
stop_services() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet courier-authdaemon 2>/dev/null; then
      as_root systemctl disable --now courier-authdaemon >/dev/null 2>&1 || true
      log "stopped and disabled the system courier-authdaemon service"
    fi
  fi
}

candidate_version() {
  # awk reads to the end: exiting early would SIGPIPE apt-cache and, with pipefail,
  # fail the script.
  apt-cache policy courier-imap 2>/dev/null | awk '/Candidate:/ && !v {v = $2} END {print v}'
}

extract_imap() {
  local version stamp tmp deb
  stamp="$COURIER_ROOT/.courier-imap-version"
  version=$(candidate_version)
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    apt_update_once
    version=$(candidate_version)
  fi
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    log "no installable courier-imap package found (apt-cache policy courier-imap)"
    return 1
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -x "$COURIER_ROOT/usr/bin/imapd" ] &&
    [ -x "$COURIER_ROOT/usr/lib/courier/courier/imaplogin" ]; then
    log "courier-imap $version already unpacked in $COURIER_ROOT"
    return 0
  fi
  log "downloading courier-imap $version"
  tmp=$(mktemp -d)
  # apt-get download drops privileges to _apt when it can; let it write there.
  chmod 0755 "$tmp"
  if ! (cd "$tmp" && apt-get download -q "courier-imap=$version" >/dev/null 2>&1); then
    # An outdated package list names a version the mirror no longer has.
    apt_update_once
    version=$(candidate_version)
    (cd "$tmp" && apt-get download -q "courier-imap=$version" >/dev/null)
  fi
  deb=$(ls "$tmp"/courier-imap_*.deb)
  # Unpack into a fresh directory and swap it in, so an interrupted run never leaves a
  # half-written root that carries a version stamp.
  as_root mkdir -p "$(dirname "$COURIER_ROOT")"
  as_root rm -rf "$COURIER_ROOT.new"
  as_root mkdir -p "$COURIER_ROOT.new"
  as_root dpkg-deb -x "$deb" "$COURIER_ROOT.new"
  as_root sh -c 'printf "%s\n" "$1" > "$2/.courier-imap-version"' sh "$version" "$COURIER_ROOT.new"
  as_root rm -rf "$COURIER_ROOT"
  as_root mv "$COURIER_ROOT.new" "$COURIER_ROOT"
  rm -rf "$tmp"
  log "unpacked courier-imap $version into $COURIER_ROOT (not registered with dpkg)"
}

install_packages
extract_imap

# Whatever happened, nothing of Courier should run as a system service now (a stale
# authdaemond would not disturb the tests, which run their own in private namespaces, but
# it is not wanted either).
stop_services

printf 'courier-imap %s in %s\n' "$(cat "$COURIER_ROOT/.courier-imap-version")" "$COURIER_ROOT"
printf 'courier-authlib %s\n' "$(dpkg-query -W -f='${Version}' courier-authlib)"
printf 'gamin %s\n' "$(dpkg-query -W -f='${Version}' gamin)"
if [ "$(dpkg-query -W -f='${Status}' dovecot-imapd 2>/dev/null || true)" = "install ok installed" ]; then
  printf 'dovecot-imapd %s (untouched)\n' "$(dpkg-query -W -f='${Version}' dovecot-imapd)"
fi
