#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs Cyrus IMAP for the tests (internal/testenv/cyrus.go) without touching Dovecot.
#
# The Debian package cyrus-imapd declares "Conflicts: imap-server", so a plain
# `apt-get install cyrus-imapd` would remove dovecot-imapd. Instead this script
#   1. apt-get installs only what cyrus-imapd depends on (cyrus-common: the libraries,
#      the `cyrus` system user, ctl_* tools; sasl2-bin: saslpasswd2 for the private
#      sasldb; cyrus-clients/cyrus-admin: imtest and cyradm for debugging by hand), and
#   2. downloads cyrus-imapd of exactly the installed cyrus-common version and unpacks it
#      with dpkg-deb -x into a private root, $CYRUS_ROOT (default
#      /opt/emaillistener-test/cyrus), that dpkg knows nothing about. The harness runs
#      $CYRUS_ROOT/usr/lib/cyrus/bin/{master,imapd,idled} with the system's libraries.
#
# Nothing is started and no system configuration is written: every test instance has
# its own imapd.conf, cyrus.conf, sasldb and spool in a temp dir.
#
# Idempotent and fast when everything is present: it only reads package state and the
# version stamp in $CYRUS_ROOT, and needs root (or sudo) only for what it has to change.
# Safe with and without Dovecot installed (dovecot-imapd is never removed: apt-get is
# never asked for cyrus-imapd itself).
#
# usage: scripts/install-cyrus.sh
set -euo pipefail

CYRUS_ROOT=${CYRUS_ROOT:-/opt/emaillistener-test/cyrus}
PACKAGES=(cyrus-common cyrus-clients cyrus-admin sasl2-bin)
STAMP=$CYRUS_ROOT/.emaillistener-cyrus-version
# Wait for a concurrent apt/dpkg run (e.g. another install script) instead of failing.
APT_LOCK=(-o DPkg::Lock::Timeout=600)

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    installed "$p" || printf '%s\n' "$p"
  done
}

# cyrus-common depends on "default-mta | mail-transport-agent". With no MTA installed apt
# would pick exim4, which the Postfix of install-test-deps.sh then has to replace; ask for
# postfix (unconfigured, as install-test-deps.sh does) instead.
need_mta() {
  dpkg-query -W -f='${Status} ${Provides}\n' 2>/dev/null |
    grep -q '^install ok installed.*mail-transport-agent' && return 1
  return 0
}

did_update=""
apt_update() {
  [ -n "$did_update" ] && return 0
  as_root apt-get "${APT_LOCK[@]}" update -q
  did_update=1
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if need_mta; then
    echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    missing+=(postfix)
  fi
  log "installing: ${missing[*]}"
  # Without systemd (containers), postinst scripts would try to start the system
  # cyrus/saslauthd through invoke-rc.d; policy-rc.d exit 101 forbids that.
  local created_policy="" rc=0
  if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d'
    created_policy=1
  fi
  apt_update || rc=$?
  if [ "$rc" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK[@]}" install -y -q --no-install-recommends \
      "${missing[@]}" || rc=$?
  fi
  if [ -n "$created_policy" ]; then
    as_root rm -f /usr/sbin/policy-rc.d || true
  fi
  return "$rc"
}

# extract_imapd unpacks cyrus-imapd of the installed cyrus-common version into
# $CYRUS_ROOT, unless that version is there already.
extract_imapd() {
  local version have="" tmp deb
  version=$(dpkg-query -W -f='${Version}' cyrus-common)
  [ -f "$STAMP" ] && have=$(cat "$STAMP")
  if [ "$have" = "$version" ] && [ -x "$CYRUS_ROOT/usr/lib/cyrus/bin/imapd" ]; then
    log "cyrus-imapd $version already extracted in $CYRUS_ROOT"
    return 0
  fi
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'; trap - RETURN" RETURN
  # As root, apt fetches as the _apt user, which must be able to write here (otherwise
  # it downloads unsandboxed, with a warning).
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$tmp"
  fi
  # apt-get download needs the package lists; retry once after an update. imapd must be
  # of cyrus-common's exact version (it links cyrus-common's private libraries); when the
  # mirror no longer has that version, bring cyrus-common up to the current one.
  if ! (cd "$tmp" && apt-get download -q "cyrus-imapd=$version" >/dev/null 2>&1); then
    apt_update
    if ! (cd "$tmp" && apt-get download -q "cyrus-imapd=$version"); then
      log "cyrus-imapd $version is not downloadable; upgrading the cyrus packages"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK[@]}" install -y -q \
        --no-install-recommends --only-upgrade "${PACKAGES[@]}"
      version=$(dpkg-query -W -f='${Version}' cyrus-common)
      if [ "$have" = "$version" ] && [ -x "$CYRUS_ROOT/usr/lib/cyrus/bin/imapd" ]; then
        return 0
      fi
      (cd "$tmp" && apt-get download -q "cyrus-imapd=$version")
    fi
  fi
  deb=$(ls "$tmp"/cyrus-imapd_*.deb)
  # Unpack next to the root and swap it in, so an interrupted run never leaves a
  # half-extracted tree with a valid stamp.
  as_root mkdir -p "$(dirname "$CYRUS_ROOT")"
  as_root rm -rf "$CYRUS_ROOT.new"
  as_root dpkg-deb -x "$deb" "$CYRUS_ROOT.new"
  as_root sh -c "printf '%s\n' '$version' > '$CYRUS_ROOT.new/.emaillistener-cyrus-version'"
  as_root rm -rf "$CYRUS_ROOT"
  as_root mv "$CYRUS_ROOT.new" "$CYRUS_ROOT"
  if [ -n "$have" ]; then
    log "replaced cyrus-imapd $have with $version in $CYRUS_ROOT"
  else
    log "extracted cyrus-imapd $version into $CYRUS_ROOT"
  fi
}

install_packages
extract_imapd

if installed dovecot-imapd; then
  log "dovecot-imapd is installed and untouched ($(dpkg-query -W -f='${Version}' dovecot-imapd))"
fi
printf 'cyrus-imapd %s: %s/usr/lib/cyrus/bin/{imapd,idled}; master from cyrus-common: /usr/lib/cyrus/bin/master\n' \
  "$(cat "$STAMP")" "$CYRUS_ROOT"
