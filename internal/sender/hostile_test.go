// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// A hostile SMTP server must not make Send hold or churn much memory, nor
// wait past its timeouts. These tests measure the process's memory, so none
// of them is parallel.

// hostileSMTP serves every connection with script on a loopback port and
// returns a mailbox pointing at it and the count of accepted connections.
func hostileSMTP(t *testing.T, script func(c net.Conn, r *bufio.Reader)) (*mail.Mailbox, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				script(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(port)
	return &mail.Mailbox{Host: host, Port: n, Secure: mail.SecureNone, SenderAddress: "alice@example.com"}, &conns
}

// flood writes prefix, then unit until the client hangs up.
func flood(c net.Conn, prefix, unit string) {
	block := []byte(strings.Repeat(unit, 64<<10/len(unit)))
	if _, err := io.WriteString(c, prefix); err != nil {
		return
	}
	for {
		if _, err := c.Write(block); err != nil {
			return
		}
	}
}

func TestSendHostileServer(t *testing.T) {
	cases := []struct {
		name   string
		script func(c net.Conn, r *bufio.Reader)
		step   Step
		msg    string
	}{
		{"endless multi-line greeting", func(c net.Conn, _ *bufio.Reader) { flood(c, "", "220-welcome\r\n") },
			StepHello, "sent more data than any SMTP reply needs (over 1024 KiB); sending was aborted."},
		{"endless greeting line", func(c net.Conn, _ *bufio.Reader) { flood(c, "220 ", "x") },
			StepHello, "sent a reply line longer than SMTP allows"},
		{"endless multi-line EHLO reply", func(c net.Conn, r *bufio.Reader) {
			io.WriteString(c, "220 hostile ESMTP\r\n")
			if _, err := r.ReadString('\n'); err == nil {
				flood(c, "", "250-PIPELINING\r\n")
			}
		}, StepHello, "sent more data than any SMTP reply needs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mb, _ := hostileSMTP(t, c.script)
			var err error
			u := testenv.Measure(func() {
				_, err = Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), &Options{DialTimeout: 5 * time.Second, Timeout: 5 * time.Second})
			})
			var e *Error
			if mail.ClassOf(err) != mail.ClassProtocol || !errors.As(err, &e) || e.Step != c.step || e.Temporary ||
				!strings.Contains(UserMessage(err), c.msg) {
				t.Errorf("err = %v (class %s): %q; want a permanent protocol error at %s saying %q", err, mail.ClassOf(err), UserMessage(err), c.step, c.msg)
			}
			// A megabyte of replies, read and parsed once: a fraction of a
			// second and a few megabytes, where without the cap the reply
			// grows until the 5 s timeout.
			if u.Took > 2*time.Second || u.HeapPeak > 16<<20 || u.Alloc > 32<<20 {
				t.Errorf("took %v, live heap +%d MiB, allocated %d MiB", u.Took, u.HeapPeak>>20, u.Alloc>>20)
			}
			t.Logf("%s after %v; %.1f MiB allocated, live heap +%.1f MiB", UserMessage(err), u.Took.Round(time.Millisecond),
				float64(u.Alloc)/(1<<20), float64(u.HeapPeak)/(1<<20))
		})
	}
}

// TestSendAllowList: a connection Options.Control refuses is a config error
// that says so, not a network failure to retry, and nothing is connected.
func TestSendAllowList(t *testing.T) {
	mb, conns := hostileSMTP(t, func(c net.Conn, _ *bufio.Reader) { io.WriteString(c, "220 ok\r\n") })
	deny := func(network, address string, _ syscall.RawConn) error {
		return errors.New("127.0.0.0/8 is not an allowed mail network")
	}
	_, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), &Options{Control: deny})
	var e *Error
	if mail.ClassOf(err) != mail.ClassConfig || !errors.As(err, &e) || e.Temporary ||
		!strings.Contains(err.Error(), "refused by the network allow-list: 127.0.0.0/8 is not an allowed mail network") ||
		!strings.Contains(UserMessage(err), "network allow-list") {
		t.Errorf("err = %v (class %s, %q), want a permanent config error naming the allow-list", err, mail.ClassOf(err), UserMessage(err))
	}
	if conns.Load() != 0 {
		t.Errorf("%d connections reached the server", conns.Load())
	}
}
