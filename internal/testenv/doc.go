// SPDX-License-Identifier: Apache-2.0

// Package testenv starts real protocol peers for tests and benchmarks, so that the
// service is exercised against the servers it meets in production rather than mocks:
//
//   - Dovecot: a private Dovecot 2.3 instance (IMAP, IMAPS, LMTP) on random loopback
//     ports, with all of its state (config, sockets, logs, certificate, Maildirs) in one
//     directory. StartDovecot is the plain API (usable from a benchmark command);
//     NewT wraps it for tests, using t.TempDir and t.Cleanup.
//   - Collector: an HTTP stand-in for Creatio's ExchangeListenerService that records every
//     callback and fails or delays on demand. NewCollector / NewCollectorT.
//   - Exchange: package ewsfake (internal/testenv/ewsfake) is an in-process fake
//     Exchange server speaking EWS and Autodiscover on loopback: mailboxes in memory,
//     streaming notifications (chunked multi-envelope GetStreamingEvents), Basic,
//     NTLMv2 and Bearer authentication, impersonation, backend affinity and fault
//     knobs (dropped or stalled streams, recycles, throttling). ewsfake.Start /
//     ewsfake.NewT. Its conformance test runs Debian's python3-exchangelib against it.
//
// The life of a Dovecot instance:
//
//  1. StartDovecot picks three free loopback ports, writes DIR/dovecot.conf, a passwd-file
//     and a self-signed EC P-256 certificate, and runs `dovecot -F -c DIR/dovecot.conf`
//     as a child process that a goroutine reaps.
//  2. It is ready when the IMAP port sends a greeting carrying a per-start unique
//     login_greeting; an open port alone is not enough: Dovecot accepts connections
//     before its auth process is up, and a leftover instance on the port would pass.
//  3. Tests talk to it with Client, Append, CreateFolder, or write messages straight into
//     a Maildir with DeliverFile (also while the server is stopped).
//  4. Stop sends SIGTERM and waits until every process of the instance is gone; Restart
//     brings it back on the same ports with the same mail.
//
// The binaries come from the Debian packages dovecot-imapd and dovecot-lmtpd; run
// scripts/install-test-deps.sh once per machine. A missing binary fails the test, it is
// never skipped: a skipped integration test would count as passing.
//
// The harness works as root (mail is owned by the package's `dovecot` user, because
// Dovecot refuses uid 0 for mail access) and as an ordinary user (every Dovecot service
// runs as that user).
package testenv
