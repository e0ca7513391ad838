// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// starttlsTag tags our STARTTLS command; go-imap's own tags start afresh on
// the TLS connection.
const starttlsTag = "S1"

// maxStatusText is how much of a greeting or STARTTLS reply we keep for the
// error text; the guard bounds the rest of the line.
const maxStatusText = 256

// startTLS reads the plain-text greeting on raw, upgrades the connection with
// STARTTLS (RFC 9051 §6.2.1, RFC 3501 §6.2.1) and returns it after the TLS
// handshake. We do this ourselves: imapclient.NewStartTLS wraps its connection
// in TLS inside go-imap, where a guard below would only see ciphertext. The
// plain-text part is read through a guard of its own.
//
// A greeting other than OK, and NO or BAD to STARTTLS, are protocol errors,
// which Dial's opportunistic mode takes for "no TLS here". Once the server
// accepted STARTTLS every failure is a TLS (or certificate) error, which never
// falls back to plain text.
func startTLS(ctx context.Context, raw net.Conn, tcfg *tls.Config) (*tls.Conn, error) {
	g := newGuard(raw, commandLimits(commandBudget))
	br := bufio.NewReader(g)
	status, text, err := readStatus(br, "*")
	if err != nil {
		return nil, readFailure(ctx, g, "greeting", err)
	}
	switch status {
	case "OK":
	case "PREAUTH": // logged in without TLS: the upgrade would come too late (RFC 9051 §7.1.4)
		return nil, mail.Errorf(mail.ClassProtocol, "starttls", "the server sent PREAUTH on an unencrypted connection")
	default:
		return nil, classify("greeting", &imap.Error{Type: imap.StatusResponseType(status), Text: text})
	}
	if _, err := io.WriteString(raw, starttlsTag+" STARTTLS\r\n"); err != nil {
		return nil, classify("starttls", ctxErr(ctx, err))
	}
	if status, text, err = readStatus(br, starttlsTag); err != nil {
		return nil, readFailure(ctx, g, "starttls", err)
	}
	if status != "OK" {
		return nil, classify("starttls", &imap.Error{Type: imap.StatusResponseType(status), Text: text})
	}
	// The server speaks TLS only after our ClientHello: plain text queued
	// behind its OK can only come from a machine in the middle (the
	// response injection of the 2021 "NO STARTTLS" study).
	if br.Buffered() > 0 || g.buffered() > 0 {
		return nil, mail.Errorf(mail.ClassTLS, "starttls", "the server sent data after accepting STARTTLS")
	}
	tc := tls.Client(raw, tcfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, classify("tls handshake", ctxErr(ctx, err))
	}
	return tc, nil
}

// readStatus reads response lines until the one tagged tag ("*" for the
// greeting, which is the first line) and returns its status word and text.
// Untagged lines before a tagged reply are skipped.
func readStatus(br *bufio.Reader, tag string) (status, text string, err error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return "", "", err
		}
		t, rest, _ := strings.Cut(line, " ")
		switch {
		case t == tag:
			status, text, _ = strings.Cut(rest, " ")
			return strings.ToUpper(status), text, nil
		case tag != "*" && t == "*":
			continue
		}
		return "", "", mail.Errorf(mail.ClassProtocol, "starttls", "unexpected response from the server")
	}
}

// readLine reads one line and keeps at most maxStatusText bytes of it,
// without the line end.
func readLine(br *bufio.Reader) (string, error) {
	var kept []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if room := maxStatusText - len(kept); room > 0 {
			kept = append(kept, chunk[:min(len(chunk), room)]...)
		}
		switch {
		case err == nil:
			return strings.TrimRight(string(kept), "\r\n"), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return "", err
		}
	}
}
