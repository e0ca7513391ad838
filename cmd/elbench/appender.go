// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// appendTimeout bounds one APPEND; go-imap has no contexts, so the connection is
// closed when it passes.
const appendTimeout = 30 * time.Second

// loginParallel is how many pool connections log in at once.
const loginParallel = 32

// appendConn is one logged-in IMAP connection, as the user of mailbox index mailbox.
// APPEND goes to that user's INBOX: a Dovecot user can only append to its own mailboxes,
// so reaching N mailboxes takes N connections. mu serializes commands on it.
type appendConn struct {
	mu      sync.Mutex
	c       *imapclient.Client
	mailbox int
}

// pool holds pre-logged-in connections so that measured APPENDs never include a login.
type pool struct {
	conns []*appendConn
}

// openPool logs in as the users of mailboxes 0..n-1, loginParallel at a time.
func openPool(ctx context.Context, dc *testenv.Dovecot, n int) (*pool, error) {
	mailboxes := make([]int, n)
	for i := range mailboxes {
		mailboxes[i] = i
	}
	return openPoolFor(ctx, dc, mailboxes)
}

// openPoolFor logs in as the users of the given mailboxes; conns[k] is
// mailboxes[k]'s.
func openPoolFor(ctx context.Context, dc *testenv.Dovecot, mailboxes []int) (*pool, error) {
	n := len(mailboxes)
	p := &pool{conns: make([]*appendConn, n)}
	sem := make(chan struct{}, loginParallel)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			p.close()
			return nil, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dc.Client(userName(mailboxes[i]), benchPassword)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			p.conns[i] = &appendConn{c: c, mailbox: mailboxes[i]}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		p.close()
		return nil, fmt.Errorf("%d of %d appender logins failed, first: %w", len(errs), n, errs[0])
	}
	return p, nil
}

// close drops every connection without LOGOUT (nothing is pending on them).
func (p *pool) close() {
	for _, c := range p.conns {
		if c != nil {
			_ = c.c.Close()
		}
	}
}

// append stores raw in the INBOX of c's user. sent is taken just before the APPEND
// command goes out, dur is until the tagged OK.
func (c *appendConn) append(raw []byte) (sent time.Time, dur time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	guard := time.AfterFunc(appendTimeout, func() { _ = c.c.Close() })
	defer guard.Stop()
	sent = time.Now()
	cmd := c.c.Append("INBOX", int64(len(raw)), nil)
	_, werr := cmd.Write(raw)
	cerr := cmd.Close()
	_, err = cmd.Wait()
	if err = errors.Join(werr, cerr, err); err != nil {
		return sent, time.Since(sent), fmt.Errorf("append to %s: %w", userName(c.mailbox), err)
	}
	return sent, time.Since(sent), nil
}

// messages builds benchmark messages of about size bytes: a text body, or, with
// attachment, a short text part plus one base64 attachment filling the rest.
type messages struct {
	size   int
	filler []byte // the text body lines or the base64 attachment lines, shared
	attach bool
}

func newMessages(size int, attachment bool) *messages {
	const headerBudget = 700 // headers and MIME boundaries, approximately
	m := &messages{size: size, attach: attachment}
	room := max(size-headerBudget, 64)
	rng := rand.New(rand.NewPCG(1, 2))
	if attachment {
		m.filler = base64Filler(rng, room)
		return m
	}
	const line = "The quick brown fox jumps over the lazy dog; elbench filler text line.\r\n"
	var b bytes.Buffer
	for b.Len()+len(line) <= room {
		b.WriteString(line)
	}
	m.filler = b.Bytes()
	return m
}

// build returns message seq addressed to mailbox i's user.
func (m *messages) build(seq, mailbox int) []byte {
	var b bytes.Buffer
	b.Grow(m.size + 1024)
	fmt.Fprintf(&b, "From: Bench Sender <sender@bench.example>\r\nTo: %s\r\nSubject: elbench message %d\r\n", userName(mailbox), seq)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", time.Now().UTC().Format(time.RFC1123Z), messageID(seq))
	if !m.attach {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		fmt.Fprintf(&b, "Message %d.\r\n", seq)
		b.Write(m.filler)
		return b.Bytes()
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"elbench-b\"\r\n\r\n")
	fmt.Fprintf(&b, "--elbench-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMessage %d with one attachment.\r\n", seq)
	b.WriteString("--elbench-b\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\r\n")
	b.Write(m.filler)
	b.WriteString("--elbench-b--\r\n")
	return b.Bytes()
}

// sendRecord is what happened to one benchmark message on the sending side. Each
// element is written by one goroutine and read after all senders finished.
type sendRecord struct {
	sent    time.Time // just before APPEND; zero if never sent
	dur     time.Duration
	failed  bool
	mailbox int
}

// openAppenders logs in one appender connection per mailbox and records how
// long Dovecot took (pool_login_ms).
func (s *stack) openAppenders(ctx context.Context, o commonOptions, res *Result) (*pool, error) {
	o.Logf("logging in %d appender connections", o.N)
	t0 := time.Now()
	pl, err := openPool(ctx, s.dc, o.N)
	if err != nil {
		return nil, err
	}
	res.Metrics.Add("pool_login_ms", ms(time.Since(t0)), "ms", "elbench's own logins of its N appender connections (Dovecot login speed)")
	return pl, nil
}

// base64Filler returns random data as base64 lines of 76 characters (CRLF
// ended) taking about room bytes: 4 output bytes per 3 input, plus CRLF per
// line.
func base64Filler(rng *rand.Rand, room int) []byte {
	raw := make([]byte, room*3/4*76/78)
	for i := range raw {
		raw[i] = byte(rng.UintN(256))
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}
