#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the integration tests start by themselves (internal/testenv): a private
# Dovecot (IMAP, IMAPS, LMTP), Cyrus and Courier IMAP (unpacked beside Dovecot, see
# install-cyrus.sh and install-courier.sh), a private Postfix (SMTP submission → LMTP →
# Dovecot) and redis-server, all from the Debian/Ubuntu packages, and raises the inotify limits
# Dovecot's IDLE needs at scale.
#
# Idempotent and fast when everything is already present: it only reads package state and
# sysctls, and needs root (or sudo) only for what it actually has to change.
#
# usage: scripts/install-test-deps.sh
set -euo pipefail

PACKAGES=(dovecot-imapd dovecot-lmtpd openssl redis-server redis-tools postfix python3-exchangelib chromium)
# Dovecot silently falls back to 30 s polling for IDLE (and hibernation silently stops)
# once its uid exceeds max_user_instances inotify instances; the default is 128, which
# parallel test instances under the same uid exhaust quickly.
MIN_INOTIFY_INSTANCES=65536
MIN_INOTIFY_WATCHES=1048576

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

missing_packages() {
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing: ${missing[*]}"

  # Without systemd (containers), package postinst scripts would try to start the system
  # dovecot/redis through invoke-rc.d and fail or linger; policy-rc.d exit 101 forbids that.
  # On a systemd host the system services may start on the standard ports (143, 993, 6379);
  # the tests use random high loopback ports, so that is harmless and left alone.
  local created_policy=""
  if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d'
    created_policy=1
  fi
  # Postfix asks which kind of mail system to configure; "No configuration" leaves the
  # system /etc/postfix/main.cf unwritten: the tests run private instances with their own
  # config directory (internal/testenv/postfix.go), never the system one.
  local rc=0 p
  for p in "${missing[@]}"; do
    if [ "$p" = postfix ]; then
      echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections || rc=$?
    fi
  done
  if [ "$rc" = 0 ]; then
    as_root apt-get update -q || rc=$?
  fi
  if [ "$rc" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" || rc=$?
  fi
  if [ -n "$created_policy" ]; then
    as_root rm -f /usr/sbin/policy-rc.d || true
  fi
  return "$rc"
}

raise_sysctl() {
  local key=$1 min=$2 cur
  cur=$(cat "/proc/sys/${key//.//}" 2>/dev/null || echo 0)
  if [ "$cur" -ge "$min" ]; then
    return 0
  fi
  # Host-wide and refused in unprivileged containers: warn, do not fail. The scale tests
  # notice the low limit themselves (testenv logs a warning).
  if as_root sysctl -q -w "$key=$min" >/dev/null 2>&1; then
    log "raised $key from $cur to $min"
  else
    log "WARNING: could not raise $key (is $cur, want >= $min); Dovecot IDLE beyond ~$cur connections per uid will fall back to 30 s polling"
  fi
}

install_packages
# Cyrus and Courier conflict with Dovecot's package (imap-server): their
# binaries are unpacked into private roots, next to Dovecot, by their own scripts.
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/install-cyrus.sh"
bash "$HERE/install-courier.sh"
raise_sysctl fs.inotify.max_user_instances "$MIN_INOTIFY_INSTANCES"
raise_sysctl fs.inotify.max_user_watches "$MIN_INOTIFY_WATCHES"

# dovecot lives in /usr/sbin, which is not on every non-root PATH; the Go harness also
# looks there.
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
printf 'dovecot %s\n' "$("$DOVECOT" --version)"
redis-server --version
# postfix lives in /usr/sbin too; -d reads the built-in default: there is no /etc/postfix/main.cf.
POSTCONF=$(command -v postconf || echo /usr/sbin/postconf)
printf 'postfix %s\n' "$("$POSTCONF" -d -h mail_version 2>/dev/null || echo '(postconf failed)')"
openssl version
printf 'fs.inotify.max_user_instances=%s fs.inotify.max_user_watches=%s\n' \
  "$(cat /proc/sys/fs/inotify/max_user_instances)" "$(cat /proc/sys/fs/inotify/max_user_watches)"
