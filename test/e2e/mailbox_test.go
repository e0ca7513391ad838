// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// credentials renders one credentials object (validate/folders take an object,
// not an array), with unquoted keys like Creatio.
func (e *env) credentials(s mailboxSpec) string {
	b := e.createBody(s)
	return strings.TrimSuffix(strings.TrimPrefix(b, "["), "]")
}

type validation struct {
	IsValid bool
	Message string
	Data    string
}

func (e *env) validate(s mailboxSpec) validation {
	e.t.Helper()
	start := time.Now()
	out := e.mustPost("/api/mailbox/validate", e.credentials(s))
	var v validation
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("validate answer %q: %v", out, err)
	}
	e.t.Logf("validate %s@%s: %+v in %v", s.User, s.Addr, v, time.Since(start))
	return v
}

func TestValidate(t *testing.T) {
	e := newEnv(t, func(c *testConfig) { c.ValidateTimeout = 3 * time.Second })
	const id = "aaaaaaaa-0000-4000-8000-00000000000a"
	ok := e.validate(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw"})
	var data struct{ MailboxName string }
	if !ok.IsValid || json.Unmarshal([]byte(ok.Data), &data) != nil || data.MailboxName != "alice@example.com" {
		t.Errorf("good credentials: %+v", ok)
	}
	if v := e.validate(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw", Addr: e.dc.IMAPSAddr, SecureOption: 2}); !v.IsValid {
		t.Errorf("good credentials over TLS: %+v", v)
	}
	bad := e.validate(mailboxSpec{ID: id, User: "alice@example.com", Password: wrongPassword})
	if bad.IsValid || !strings.Contains(bad.Message, "Authentication failed") || bad.Data != "EmailTroubleShoot" {
		t.Errorf("wrong password: %+v", bad)
	}
	host := e.validate(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw", Addr: "no-such-host.invalid:143"})
	if host.IsValid || !strings.Contains(host.Message, "Unknown mail server host") {
		t.Errorf("bad host: %+v", host)
	}
	closed := e.validate(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw", Addr: "127.0.0.1:1"})
	if closed.IsValid || !strings.Contains(closed.Message, "Cannot connect") {
		t.Errorf("closed port: %+v", closed)
	}
	// Garbage body: still 200, with IsValid=false.
	if code, out := e.post("/api/mailbox/validate", "{{{"); code != 200 || !strings.Contains(out, `"IsValid":false`) {
		t.Errorf("garbage: %d %s", code, out)
	}
}

func TestValidateSelfSignedAndTimeout(t *testing.T) {
	e := newEnvTLS(t, func(c *testConfig) { c.ValidateTimeout = 2 * time.Second }, false)
	v := e.validate(mailboxSpec{ID: "aaaaaaaa-0000-4000-8000-00000000000b", User: "alice@example.com", Password: "alicepw",
		Addr: e.dc.IMAPSAddr, SecureOption: 2})
	if v.IsValid || !strings.Contains(v.Message, "certificate") || !strings.Contains(v.Message, "not trusted") {
		t.Errorf("self-signed certificate: %+v", v)
	}
	// A server that accepts TCP but never greets: the validate budget ends it.
	silent := testenv.SilentListener(t)
	start := time.Now()
	v = e.validate(mailboxSpec{ID: "aaaaaaaa-0000-4000-8000-00000000000b", User: "alice@example.com", Password: "alicepw", Addr: silent})
	if v.IsValid || !strings.Contains(v.Message, "did not answer in time") || time.Since(start) > 10*time.Second {
		t.Errorf("silent server: %+v after %v", v, time.Since(start))
	}
}

func TestFolders(t *testing.T) {
	e := newEnv(t, nil)
	for _, f := range []string{"Проекты/2026/Клиенты", "Archive", "Sent"} {
		if err := e.dc.CreateFolder("bob@example.com", "bobpw", f); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustPost("/api/mailbox/folders", e.credentials(mailboxSpec{ID: "bbbbbbbb-0000-4000-8000-00000000000f", User: "bob@example.com", Password: "bobpw"}))
	var folders []struct{ Id, Name, ParentId string }
	if err := json.Unmarshal([]byte(out), &folders); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	byID := map[string][2]string{}
	for _, f := range folders {
		byID[f.Id] = [2]string{f.Name, f.ParentId}
	}
	want := map[string][2]string{
		"INBOX":                {"INBOX", ""},
		"Проекты":              {"Проекты", ""},
		"Проекты/2026":         {"2026", "Проекты"},
		"Проекты/2026/Клиенты": {"Клиенты", "Проекты/2026"},
		"Archive":              {"Archive", ""},
		"Sent":                 {"Sent", ""},
	}
	for id, w := range want {
		if got, ok := byID[id]; !ok || got != w {
			t.Errorf("folder %q = %v (present %v), want %v; all: %s", id, got, ok, w, out)
		}
	}
	// The listed Id subscribes: mail in the nested non-ASCII folder is delivered.
	const id = "bbbbbbbb-0000-4000-8000-0000000000f1"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "bob@example.com", Password: "bobpw", Folders: []string{"Проекты/2026/Клиенты"}}))
	e.waitState(id, "exists", 10*time.Second)
	e.appendMail("bob@example.com", "bobpw", "Проекты/2026/Клиенты", simpleMail("nested-folder", "nested@example.com"))
	e.waitEmails("nested-folder", 1, 10*time.Second)
	// Wrong password: a clear error, not a crash.
	code, body := e.post("/api/mailbox/folders", e.credentials(mailboxSpec{ID: id, User: "bob@example.com", Password: wrongPassword}))
	if code == 200 || !strings.Contains(body, "Authentication failed") {
		t.Errorf("folders with wrong password: %d %s", code, body)
	}
}

func TestAvailability(t *testing.T) {
	e := newEnv(t, nil)
	if code, out := e.post("/api/availability/app", `"`+e.col.Endpoint()+`"`); code != 200 || out != "pong" {
		t.Errorf("reachable Creatio: %d %q", code, out)
	}
	if code, out := e.post("/api/availability/app", `"http://127.0.0.1:1/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"`); code != 200 || out == "pong" || !strings.Contains(out, "cannot reach") {
		t.Errorf("unreachable Creatio: %d %q", code, out)
	}
}
