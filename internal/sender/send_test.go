// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/msgfixture"
)

// The integration tests send through a private Postfix (SMTP AUTH against Dovecot,
// STARTTLS and implicit TLS with a self-signed certificate) that delivers over LMTP
// into a private Dovecot, and read the result back over IMAP.

var users = map[string]string{
	"alice@example.com": "alice-pw",
	"bob@example.com":   "bob-pw",
	"carol@example.com": "carol-pw",
	"dave@example.com":  "dave-pw",
}

// sizeLimit is the Postfix message_size_limit: far above the test messages, far
// below what the "too large" case sends.
const sizeLimit = 256 << 10

type mailEnv struct {
	d    *testenv.Dovecot
	p    *testenv.Postfix
	logs *syncBuffer // everything Send logged
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: users, ExtraConf: testenv.DovecotSASLConf})
	recipients := []string{"@loose.example"} // any user there is accepted, then bounced by LMTP
	for u := range users {
		recipients = append(recipients, u)
	}
	t0 := time.Now()
	p := testenv.NewPostfixT(t, testenv.PostfixOptions{
		Dovecot: d, SASL: true, Domains: []string{"example.com", "loose.example"},
		Recipients: recipients, MessageSizeLimit: sizeLimit,
	})
	t.Logf("postfix started in %v", time.Since(t0).Round(time.Millisecond))
	return &mailEnv{d: d, p: p, logs: &syncBuffer{}}
}

// mailbox is alice's outgoing settings for the Postfix listener at addr.
func (e *mailEnv) mailbox(t *testing.T, addr string, secure mail.SecureOption) *mail.Mailbox {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return &mail.Mailbox{Host: host, Port: n, Secure: secure, UserName: "alice@example.com",
		Password: users["alice@example.com"], SenderAddress: "alice@example.com"}
}

func (e *mailEnv) options() *Options {
	return &Options{TLSConfig: e.p.TLSConfig(), DialTimeout: 10 * time.Second, Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// simpleMessage is a text mail from alice with a unique Message-ID.
func simpleMessage(t *testing.T, to ...string) *mail.Message {
	m := &mail.Message{
		MessageID: "<" + rand.Text() + "@example.com>",
		Subject:   t.Name(),
		From:      mail.Address{Address: "alice@example.com"},
		Text:      "hello from " + t.Name(),
	}
	for _, a := range to {
		m.To = append(m.To, mail.Address{Address: a})
	}
	return m
}

// waitMessage polls user's INBOX until the message with messageID arrived and
// returns it; delivery through Postfix and LMTP is asynchronous.
func (e *mailEnv) waitMessage(t *testing.T, user, messageID string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if raw := e.find(t, user, messageID); raw != nil {
			return raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not arrive in %s's INBOX within 10 s", messageID, user)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// find returns the message with messageID from user's INBOX, nil if absent.
func (e *mailEnv) find(t *testing.T, user, messageID string) []byte {
	t.Helper()
	for _, raw := range e.inbox(t, user) {
		if env := msgfixture.Parse(t, raw); env.GetHeader("Message-Id") == messageID {
			return raw
		}
	}
	return nil
}

// inbox returns every message in user's INBOX.
func (e *mailEnv) inbox(t *testing.T, user string) [][]byte {
	t.Helper()
	c, err := e.d.Client(user, users[user])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.FindBodySection(section))
	}
	return out
}

func TestSendThroughPostfix(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := newMailEnv(t)

	t.Run("html, inline image and pdf reach To, Cc and Bcc", func(t *testing.T) {
		t.Parallel()
		msg := msgfixture.Rich(t)
		msg.MessageID = "<" + rand.Text() + "@example.com>"
		sent, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS), msg, e.options())
		if err != nil {
			t.Fatalf("Send: %v (%s)", err, UserMessage(err))
		}
		if env := msgfixture.Parse(t, sent); env.GetHeader("Message-Id") != msg.MessageID {
			t.Fatalf("returned message has Message-ID %q", env.GetHeader("Message-Id"))
		}
		for _, user := range []string{"bob@example.com", "carol@example.com", "dave@example.com"} {
			raw := e.waitMessage(t, user, msg.MessageID)
			env := msgfixture.Parse(t, raw)
			if env.GetHeader("Subject") != msg.Subject || env.GetHeader("Bcc") != "" ||
				strings.Contains(msgfixture.HeaderBlock(raw), "dave@example.com") && user != "dave@example.com" {
				t.Errorf("%s: subject %q, bcc %q", user, env.GetHeader("Subject"), env.GetHeader("Bcc"))
			}
			if strings.Contains(env.GetHeader("To"), "dave") || strings.Contains(env.GetHeader("Cc"), "dave") {
				t.Errorf("%s: the Bcc recipient shows in To/Cc", user)
			}
			if len(env.Inlines) != 1 || env.Inlines[0].ContentID != "chart-7f3a" ||
				!bytes.Equal(env.Inlines[0].Content, msg.Attachments[0].Data) ||
				!strings.Contains(env.HTML, `cid:chart-7f3a`) {
				t.Errorf("%s: inline image lost (%d inlines)", user, len(env.Inlines))
			}
			if len(env.Attachments) != 1 || env.Attachments[0].FileName != "Отчёт март.pdf" ||
				!bytes.Equal(env.Attachments[0].Content, msgfixture.PDF()) {
				t.Errorf("%s: attachment lost (%d attachments)", user, len(env.Attachments))
			}
			// What arrived is what Send returned, below Postfix's and Dovecot's trace fields.
			if !bytes.HasSuffix(raw, sent) {
				t.Errorf("%s: delivered message does not end with the sent one", user)
			}
		}
	})

	t.Run("implicit TLS", func(t *testing.T) {
		t.Parallel()
		msg := simpleMessage(t, "bob@example.com")
		if _, err := Send(t.Context(), e.mailbox(t, e.p.SMTPSAddr, mail.SecureSSL), msg, e.options()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		e.waitMessage(t, "bob@example.com", msg.MessageID)
	})

	t.Run("plain text with login", func(t *testing.T) {
		t.Parallel()
		msg := simpleMessage(t, "carol@example.com")
		if _, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureNone), msg, e.options()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		e.waitMessage(t, "carol@example.com", msg.MessageID)
	})

	t.Run("untrusted certificate is a TLS error, never plain text", func(t *testing.T) {
		t.Parallel()
		opts := e.options()
		opts.TLSConfig = nil // system roots do not trust the instance's certificate
		_, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureAuto), simpleMessage(t, "bob@example.com"), opts)
		if mail.ClassOf(err) != mail.ClassTLS || !strings.Contains(UserMessage(err), "certificate is not trusted") {
			t.Fatalf("err = %v (%s), want a TLS error about the certificate", err, UserMessage(err))
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		mb := e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS)
		mb.Password = "not-the-password"
		_, err := Send(t.Context(), mb, simpleMessage(t, "bob@example.com"), e.options())
		var se *Error
		if mail.ClassOf(err) != mail.ClassAuth || !errors.As(err, &se) || se.Code != 535 {
			t.Fatalf("err = %v, want an auth error with 535", err)
		}
		um := UserMessage(err)
		if !strings.HasPrefix(um, "The SMTP server rejected the login for alice@example.com: 535 5.7.8") ||
			strings.Contains(um, mb.Password) || strings.Contains(err.Error(), mb.Password) {
			t.Fatalf("UserMessage = %q", um)
		}
	})

	t.Run("unknown recipient fails the whole send", func(t *testing.T) {
		t.Parallel()
		msg := simpleMessage(t, "bob@example.com", "nobody@example.com")
		_, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS), msg, e.options())
		var se *Error
		if !errors.As(err, &se) || se.Step != StepRcpt || len(se.Refused) != 1 ||
			se.Refused[0].Address != "nobody@example.com" || se.Refused[0].Code != 550 || mail.ClassOf(err) != mail.ClassProtocol {
			t.Fatalf("err = %v, want nobody@example.com refused with 550", err)
		}
		if um := UserMessage(err); !strings.HasPrefix(um, "The recipient nobody@example.com was refused: 550 5.1.1") ||
			!strings.HasSuffix(um, "The email was not sent to anyone.") {
			t.Fatalf("UserMessage = %q", um)
		}
		// bob was accepted at RCPT but must not get the mail: a marker sent after it
		// arrives, the refused message does not.
		marker := simpleMessage(t, "bob@example.com")
		if _, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS), marker, e.options()); err != nil {
			t.Fatal(err)
		}
		e.waitMessage(t, "bob@example.com", marker.MessageID)
		if e.find(t, "bob@example.com", msg.MessageID) != nil {
			t.Fatal("bob got the message although another recipient was refused")
		}
	})

	t.Run("unknown user in an accept-all domain bounces later", func(t *testing.T) {
		t.Parallel()
		// The honest limit of SMTP: the server accepted the recipient (as servers do
		// for domains they relay or cannot check), so Send succeeds; the failure
		// comes back as a bounce in the sender's INBOX.
		msg := simpleMessage(t, "nobody@loose.example")
		if _, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS), msg, e.options()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, raw := range e.inbox(t, "alice@example.com") {
				if bytes.Contains(raw, []byte(msg.MessageID)) && bytes.Contains(raw, []byte("Undelivered Mail Returned to Sender")) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no bounce for nobody@loose.example in alice's INBOX within 10 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("message too large", func(t *testing.T) {
		t.Parallel()
		msg := simpleMessage(t, "bob@example.com")
		msg.Attachments = []mail.Attachment{{Name: "big.bin", Data: bytes.Repeat([]byte{0xa5}, sizeLimit)}}
		_, err := Send(t.Context(), e.mailbox(t, e.p.SMTPAddr, mail.SecureStartTLS), msg, e.options())
		var se *Error
		if !errors.As(err, &se) || se.Code != 552 ||
			!strings.HasPrefix(UserMessage(err), "The message is too large for the server (552") {
			t.Fatalf("err = %v (%s), want 552 too large", err, UserMessage(err))
		}
	})

	t.Run("unreachable port", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = Send(t.Context(), e.mailbox(t, addr, mail.SecureStartTLS), simpleMessage(t, "bob@example.com"), e.options())
		if mail.ClassOf(err) != mail.ClassConnect || !strings.Contains(UserMessage(err), "connection refused") {
			t.Fatalf("err = %v (%s), want a connect error", err, UserMessage(err))
		}
	})

	t.Cleanup(func() {
		if logs := e.logs.String(); strings.Contains(logs, "alice-pw") || strings.Contains(logs, "not-the-password") {
			t.Errorf("a password was logged:\n%s", logs)
		}
		t.Logf("TestSendThroughPostfix with setup: %v", time.Since(start).Round(time.Millisecond))
	})
}

// TestSendContext: a server that accepts the connection but never greets; the
// dial budget and the caller's context both end the attempt promptly.
func TestSendContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(port)
	mb := &mail.Mailbox{Host: host, Port: n, Secure: mail.SecureNone, SenderAddress: "alice@example.com"}
	msg := simpleMessage(t, "bob@example.com")

	t0 := time.Now()
	_, err = Send(t.Context(), mb, msg, &Options{DialTimeout: 200 * time.Millisecond})
	if mail.ClassOf(err) != mail.ClassTimeout || !strings.Contains(UserMessage(err), "did not answer in time") {
		t.Fatalf("silent server: err = %v (%s), want a timeout", err, UserMessage(err))
	}
	if d := time.Since(t0); d > 5*time.Second { // generous: CI machines can be loaded
		t.Fatalf("dial timeout took %v", d)
	}

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 = time.Now()
	_, err = Send(ctx, mb, msg, nil)
	if !errors.Is(err, context.Canceled) || UserMessage(err) != "Sending was cancelled." {
		t.Fatalf("cancelled: err = %v, want context.Canceled", err)
	}
	if d := time.Since(t0); d > 5*time.Second { // generous: CI machines can be loaded
		t.Fatalf("cancellation took %v", d)
	}
}

func TestSendRejectsBadInput(t *testing.T) {
	mb := &mail.Mailbox{Host: "127.0.0.1", Port: 1, SenderAddress: "alice@example.com"}
	cases := map[string]*mail.Message{
		"no recipients":   {From: mail.Address{Address: "alice@example.com"}},
		"smuggled param":  {To: []mail.Address{{Address: "bob@example.com> NOTIFY=NEVER"}}},
		"no at":           {To: []mail.Address{{Address: "bob"}}},
		"bad header name": {To: []mail.Address{{Address: "bob@example.com"}}, Headers: []mail.Header{{Name: "X Y", Value: "z"}}},
		"bad sender":      {From: mail.Address{Address: "alice @example.com"}, To: []mail.Address{{Address: "bob@example.com"}}},
	}
	for name, msg := range cases {
		_, err := Send(t.Context(), mb, msg, nil)
		if mail.ClassOf(err) != mail.ClassConfig || UserMessage(err) == "" {
			t.Errorf("%s: err = %v, want a config error", name, err)
		}
	}
	noSender := &mail.Mailbox{Host: "127.0.0.1", Port: 1}
	if _, err := Send(t.Context(), noSender, &mail.Message{To: []mail.Address{{Address: "b@example.com"}}}, nil); UserMessage(err) != "The email has no sender address." {
		t.Errorf("no sender: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of slog.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRecipients(t *testing.T) {
	msg := &mail.Message{
		To:  []mail.Address{{Address: "bob@example.com"}, {Address: " carol@example.com "}},
		Cc:  []mail.Address{{Address: "BOB@example.com"}, {Address: ""}},
		Bcc: []mail.Address{{Address: "dave@example.com"}},
	}
	got := strings.Join(Recipients(msg), ",")
	if want := "bob@example.com,carol@example.com,dave@example.com"; got != want {
		t.Fatalf("Recipients = %s, want %s", got, want)
	}
}
