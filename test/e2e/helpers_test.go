// SPDX-License-Identifier: Apache-2.0

// Package e2e runs the whole service in-process against a real Dovecot started by
// the test and a Creatio stand-in (testenv.Collector), and checks the Creatio
// wire contract end to end.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/app"
	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

const imapServerType = "844f0837-eaa0-4f40-b965-71f5db9eae6e"

type env struct {
	t    *testing.T
	logs *logBuffer
	dc   *testenv.Dovecot
	pf   *testenv.Postfix // nil unless envOptions.postfix
	col  *testenv.Collector
	app  *app.App
	base string
}

// newEnv starts Dovecot (users alice, bob), the Creatio stand-in and the service.
func newEnv(t *testing.T, tweak func(*config.Config)) *env {
	return newEnvWith(t, envOptions{tweak: tweak, trustCA: true})
}

// newEnvTLS is newEnv; trustCA=false leaves the service with only the system
// roots, so Dovecot's self-signed certificate is rejected.
func newEnvTLS(t *testing.T, tweak func(*config.Config), trustCA bool) *env {
	return newEnvWith(t, envOptions{tweak: tweak, trustCA: trustCA})
}

type envOptions struct {
	tweak        func(*config.Config)
	trustCA      bool
	dovecotExtra string // appended to dovecot.conf
	postfix      bool   // also start a Postfix (SMTP AUTH via Dovecot) delivering into the Dovecot
	hibernate    bool   // Dovecot moves IDLE connections to imap-hibernate after 2 s
	// peers adjusts the configuration once Dovecot (and Postfix) run.
	peers func(c *config.Config, dc *testenv.Dovecot, pf *testenv.Postfix)
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	tweak, trustCA := o.tweak, o.trustCA
	dc := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{
		"alice@example.com": "alicepw", "bob@example.com": "bobpw", "carol@example.com": "carolpw", "dave@example.com": "davepw",
	},
		// No fsync per APPEND: seeding thousands of messages would take half a
		// minute, and a test server needs no durability across power loss.
		ExtraConf: "mail_fsync = never\n" + o.dovecotExtra + postfixSASL(o.postfix),
		Hibernate: o.hibernate,
	})
	var pf *testenv.Postfix
	var smtpTLS *tls.Config
	if o.postfix {
		pf = testenv.NewPostfixT(t, testenv.PostfixOptions{Dovecot: dc, SASL: true,
			Recipients: []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}})
		smtpTLS = pf.TLSConfig()
	}
	var tlsCfg *tls.Config
	if trustCA {
		tlsCfg = dc.TLSConfig()
	}
	e := startService(t, tlsCfg, smtpTLS, func(cfg *config.Config) {
		if tweak != nil {
			tweak(cfg)
		}
		if o.peers != nil {
			o.peers(cfg, dc, pf)
		}
	})
	e.dc, e.pf = dc, pf
	return e
}

// startService starts the Creatio stand-in and the service (mail servers
// trusted through imapTLS and smtpTLS when set), with the test defaults and
// then tweak applied to its configuration, and stops it when the test ends.
func startService(t *testing.T, imapTLS, smtpTLS *tls.Config, tweak func(*config.Config)) *env {
	t.Helper()
	col := testenv.NewCollectorT(t)
	cfg := config.Default()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.IMAPFolderPoll = 500 * time.Millisecond
	cfg.IMAPDialTimeout = 5 * time.Second
	cfg.IMAPCommandTimeout = 10 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	logs := &logBuffer{t: t}
	log, _ := obs.NewLogger(logs, "text", "debug")
	a, err := app.New(cfg, log, "e2e", &app.Options{
		IMAPTLS:         imapTLS,
		SMTPTLS:         smtpTLS,
		Reconnect:       backoff.Policy{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond},
		DeliveryBackoff: backoff.Policy{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if n := a.Panics().Count("syncer") + a.Panics().Count("httpapi"); n != 0 {
			t.Errorf("%v panics recovered", n)
		}
		// Secrets never reach the logs (debug level included).
		for _, secret := range []string{"alicepw", "bobpw", "carolpw", wrongPassword} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the service logged the password %q", secret)
			}
		}
	})
	return &env{t: t, logs: logs, col: col, app: a, base: "http://" + a.Addr()}
}

// wrongPassword is distinctive so the secrets check cannot miss it.
const wrongPassword = "Wr0ng-Passw0rd!"

// logBuffer keeps the service log and mirrors it to the test log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mailboxSpec is what a test varies in the Creatio credentials.
type mailboxSpec struct {
	ID, User, Password string
	Addr               string // host:port, default plain IMAP
	SecureOption       int
	UseSsl             bool
	Folders            []string
	Context            string
}

// createBody renders the credentials exactly as Creatio does: one-element array,
// property names unquoted (Newtonsoft QuoteName=false), nested Context with
// unquoted keys too.
func (e *env) createBody(s mailboxSpec) string {
	addr := s.Addr
	if addr == "" {
		addr = e.dc.IMAPAddr
	}
	host, port, _ := strings.Cut(addr, ":")
	folders, _ := json.Marshal(s.Folders)
	if s.Folders == nil {
		folders = []byte("[]")
	}
	ctx := s.Context
	if ctx == "" {
		ctx = "{UserRequested:true,HasError:false}"
	}
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	return fmt.Sprintf(`[{FolderIds:%s,PersonalMetrics:false,UseFullEmail:true,BpmUserTimeZone:"Russian Standard Time",`+
		`FeatureValues:{MarkEmailsAsSynchronized:true,UseBinaryData:false},BpmUser:"Supervisor",BpmEndpoint:%s,`+
		`BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:%s,Port:%s,UseOAuth:false,IsAutodiscover:false,`+
		`AutodiscoverRedirectUrl:"",Context:%s,ServerTypeId:"%s",UseSsl:%v,SubscriptionTtl:0,FolderClassName:null,`+
		`SecureOption:%d,Id:%s,UserName:%s,Password:%s,AccessToken:""}]`,
		folders, q(e.col.Endpoint()), q(s.User), q(host), port, q(ctx), imapServerType, s.UseSsl, s.SecureOption,
		q(s.ID), q(s.User), q(s.Password))
}

func (e *env) post(path, body string) (int, string) {
	e.t.Helper()
	resp, err := http.Post(e.base+path, "application/json; charset=utf-8", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) mustPost(path, body string) string {
	e.t.Helper()
	code, out := e.post(path, body)
	if code != http.StatusOK {
		e.t.Fatalf("POST %s: %d %s", path, code, out)
	}
	return out
}

func (e *env) state(id string) map[string]any {
	e.t.Helper()
	out := e.mustPost("/api/listeners/subscriptionsstate", `["`+id+`"]`)
	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("subscriptionsstate: %v: %s", err, out)
	}
	return m[id]
}

// waitState polls subscriptionsstate until the mailbox reaches want.
func (e *env) waitState(id, want string, within time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(within)
	var st map[string]any
	for time.Now().Before(deadline) {
		if st = e.state(id); st["State"] == want {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("mailbox %s: state %v, want %q after %v", id, st, want, within)
	return nil
}

// waitEmails waits until the collector holds n emails with the given subject prefix.
func (e *env) waitEmails(prefix string, n int, within time.Duration) []testenv.Email {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []testenv.Email
	_ = e.col.WaitFor(ctx, func([]testenv.Request) bool {
		got = e.emails(prefix)
		return len(got) >= n
	})
	if len(got) < n {
		e.t.Fatalf("got %d emails with subject %q, want %d", len(got), prefix, n)
	}
	return got
}

func (e *env) emails(prefix string) []testenv.Email {
	var out []testenv.Email
	for _, m := range e.col.Emails() {
		if s, _ := m.Data["Subject"].(string); strings.HasPrefix(s, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) appendMail(user, pass, folder string, raw []byte) uint32 {
	e.t.Helper()
	uid, err := e.dc.Append(user, pass, folder, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return uid
}

// simpleMail builds a small RFC 5322 message.
func simpleMail(subject, msgID string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody of %s\r\n", msgID, subject)
	return b.Bytes()
}

type testenvRequest = testenv.Request

// waitRequests waits for at least n requests of op.
func (e *env) waitRequests(op string, n int) []testenv.Request {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.col.WaitFor(ctx, func([]testenv.Request) bool { return len(e.col.Requests(op)) >= n }); err != nil {
		e.t.Fatalf("waiting for %d %s requests: %v", n, op, err)
	}
	return e.col.Requests(op)
}

// waitRequestsFor waits for a request of op for mailbox id whose body matches.
func (e *env) waitRequestsFor(op, id string, match func(map[string]any) bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.col.WaitFor(ctx, func([]testenv.Request) bool {
		for _, r := range e.col.Requests(op) {
			if r.JSON["MailboxId"] == id && match(r.JSON) {
				return true
			}
		}
		return false
	})
	if err != nil {
		e.t.Fatalf("waiting for %s of %s: %v", op, id, err)
	}
}

type testConfig = config.Config

// lenientToStd decodes Creatio's unquoted-key JSON with the service's decoder.
func lenientToStd(s string, v any) error { return creatio.Decode([]byte(s), v) }

func postfixSASL(on bool) string {
	if on {
		return "\n" + testenv.DovecotSASLConf
	}
	return ""
}
