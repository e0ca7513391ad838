// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

// An Exchange mailbox registered through /v1/ against the fake EWS server:
// state by event, new mail as signed message.new events, the message fetched
// again by its id, a history load by date, sending (JSON and raw MIME)
// through Exchange itself, and a wrong password reported by account.state.
func TestNativeExchangeAccount(t *testing.T) {
	const apiToken = "e2e-native-api-token-exchange01"
	e := newExchangeEnv(t, ewsfake.Options{}, func(c *config.Config, _ *ewsfake.Server) {
		c.APITokens = config.Secret("e2e:" + apiToken)
	})
	recv, secret, hookURL := newWebhookReceiver(t)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return apiJSON(t, e.base, apiToken, method, path, body)
	}
	ofType := func(typ string) func(map[string]any) bool {
		return func(ev map[string]any) bool { return ev["account"] == "alice-ews" && ev["type"] == typ }
	}
	withSubject := func(prefix string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			m, _ := ev["message"].(map[string]any)
			return ev["type"] == "message.new" && strings.HasPrefix(fmt.Sprint(m["subject"]), prefix)
		}
	}

	e.deliver("alice@example.com", "inbox", simpleMail("older 1", "older-1@example.com"))
	time.Sleep(1100 * time.Millisecond) // arrival times have whole seconds
	body, _ := json.Marshal(map[string]any{
		"id": "alice-ews", "email": "alice@example.com",
		"exchange": map[string]any{"url": e.ex.URL(), "password": "alicepw"},
		"webhook":  map[string]any{"url": hookURL, "secret": secret},
	})
	if code, out := call("POST", "/v1/accounts", string(body)); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	ev := recv.waitFor("account.state", 1, 15*time.Second, ofType("account.state"))[0]
	if st, _ := ev["state"].(map[string]any); st["state"] != "exists" {
		t.Fatalf("state event %v", ev)
	}
	code, acc := call("GET", "/v1/accounts/alice-ews", "")
	if ex, _ := acc["exchange"].(map[string]any); code != http.StatusOK || ex["url"] != e.ex.URL() || acc["imap"] != nil ||
		strings.Contains(fmt.Sprint(acc), "alicepw") {
		t.Fatalf("account: %d %v", code, acc)
	}
	if code, v := call("POST", "/v1/accounts/alice-ews/validate", "{}"); code != http.StatusOK || v["valid"] != true {
		t.Fatalf("validate: %d %v", code, v)
	}
	code, raw, _ := apiCall(t, e.base, apiToken, "GET", "/v1/accounts/alice-ews/folders", "", "")
	if inbox := e.ex.FolderID("alice@example.com", "inbox"); code != http.StatusOK || !strings.Contains(string(raw), inbox) {
		t.Fatalf("folders: %d %s", code, raw)
	}

	// New mail: one signed event, the message fetched again by its id.
	e.deliver("alice@example.com", "inbox", simpleMail("live 1", "live-1@example.com"))
	live := recv.waitFor("message.new (live)", 1, 15*time.Second, withSubject("live "))[0]
	msg := live["message"].(map[string]any)
	if live["folder"] != e.ex.FolderID("alice@example.com", "inbox") || msg["messageId"] != "<live-1@example.com>" {
		t.Fatalf("event %v", live)
	}
	code, raw, _ = apiCall(t, e.base, apiToken, "GET", "/v1/accounts/alice-ews/messages/"+fmt.Sprint(msg["id"])+"?format=raw", "", "")
	if code != http.StatusOK || !strings.Contains(string(raw), "Subject: live 1") {
		t.Fatalf("fetch %v: %d %.300s", msg["id"], code, raw)
	}

	// The mail from before the account, by a history load.
	since := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	if code, out := call("POST", "/v1/accounts/alice-ews/sync", `{"since":"`+since+`"}`); code != http.StatusAccepted {
		t.Fatalf("sync: %d %v", code, out)
	}
	recv.waitFor("message.new (older)", 1, 20*time.Second, withSubject("older "))
	recv.waitFor("sync.progress done", 1, 20*time.Second, func(ev map[string]any) bool {
		p, _ := ev["progress"].(map[string]any)
		return ofType("sync.progress")(ev) && p["state"] == "done"
	})

	// Sending goes through Exchange, which keeps the copy in Sent Items.
	if code, out := call("POST", "/v1/accounts/alice-ews/send",
		`{"to":[{"address":"bob@example.com"}],"bcc":[{"address":"carol@example.com"}],"subject":"json send","text":"hello"}`); code != http.StatusOK {
		t.Fatalf("send: %d %v", code, out)
	}
	mime := "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: raw send\r\nMessage-ID: <raw-ews@example.com>\r\n\r\nraw body\r\n"
	code, raw, _ = apiCall(t, e.base, apiToken, "POST", "/v1/accounts/alice-ews/send", "message/rfc822", mime)
	if code != http.StatusOK || !strings.Contains(string(raw), "raw-ews@example.com") {
		t.Fatalf("raw send: %d %s", code, raw)
	}
	sent, err := e.ex.Sent("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range sent {
		if s, _, ok := strings.Cut(string(m), "\r\n\r\n"); ok {
			for _, l := range strings.Split(s, "\r\n") {
				if v, ok := strings.CutPrefix(l, "Subject: "); ok {
					subjects = append(subjects, v)
				}
			}
		}
	}
	if strings.Join(subjects, ",") != "json send,raw send" {
		t.Fatalf("sent through Exchange: %q", subjects)
	}

	// A wrong password: account.state error, class auth.
	if code, out := call("PATCH", "/v1/accounts/alice-ews", `{"exchange":{"password":"wrong"}}`); code != http.StatusOK {
		t.Fatalf("patch: %d %v", code, out)
	}
	recv.waitFor("account.state error", 1, 15*time.Second, func(ev map[string]any) bool {
		st, _ := ev["state"].(map[string]any)
		return ofType("account.state")(ev) && st["state"] == "error" && st["errorClass"] == "auth"
	})
	if n := len(recv.bad); n > 0 {
		t.Fatalf("%d bad webhook requests: %v", n, recv.bad)
	}
}

// An Exchange Online account through /v1/ with no password: the service's
// Graph application credentials serve it (the fake Graph, polled every
// second): message.new with the Graph item id, fetch by that id, a sync by
// date, and a raw MIME send through Graph's sendMail.
func TestNativeExchangeOnlineAccount(t *testing.T) {
	const apiToken = "e2e-native-api-token-exo000001"
	e := newGraphEnv(t, graphSetup{app: true, tweak: func(c *config.Config) { c.APITokens = config.Secret("e2e:" + apiToken) }})
	recv, secret, hookURL := newWebhookReceiver(t)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return apiJSON(t, e.base, apiToken, method, path, body)
	}
	withSubject := func(subject string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			m, _ := ev["message"].(map[string]any)
			return ev["type"] == "message.new" && m["subject"] == subject
		}
	}
	e.deliver("carol@example.com", "inbox", simpleMail("earlier", "earlier@example.com"))
	time.Sleep(1100 * time.Millisecond) // arrival times have whole seconds
	body, _ := json.Marshal(map[string]any{
		"id": "carol-365", "email": "carol@example.com",
		"exchange": map[string]any{"url": "outlook.office365.com"},
		"webhook":  map[string]any{"url": hookURL, "secret": secret},
	})
	if code, out := call("POST", "/v1/accounts", string(body)); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	recv.waitFor("account.state exists", 1, 15*time.Second, func(ev map[string]any) bool {
		st, _ := ev["state"].(map[string]any)
		return ev["type"] == "account.state" && st["state"] == "exists"
	})
	item := e.deliver("carol@example.com", "inbox", simpleMail("via graph", "via-graph@example.com"))
	ev := recv.waitFor("message.new", 1, 15*time.Second, withSubject("via graph"))[0]
	msg := ev["message"].(map[string]any)
	if msg["serverId"] != item {
		t.Errorf("serverId %v, want the Graph item id %s", msg["serverId"], item)
	}
	code, raw, _ := apiCall(t, e.base, apiToken, "GET", "/v1/accounts/carol-365/messages/"+fmt.Sprint(msg["id"])+"?format=raw", "", "")
	if code != http.StatusOK || !strings.Contains(string(raw), "Subject: via graph") {
		t.Fatalf("fetch: %d %.300s", code, raw)
	}
	since := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	if code, out := call("POST", "/v1/accounts/carol-365/sync", `{"since":"`+since+`"}`); code != http.StatusAccepted {
		t.Fatalf("sync: %d %v", code, out)
	}
	recv.waitFor("message.new (earlier)", 1, 20*time.Second, withSubject("earlier"))
	mime := "From: carol@example.com\r\nTo: bob@example.com\r\nSubject: raw via graph\r\nMessage-ID: <raw-graph@example.com>\r\n\r\nhello\r\n"
	if code, raw, _ = apiCall(t, e.base, apiToken, "POST", "/v1/accounts/carol-365/send", "message/rfc822", mime); code != http.StatusOK {
		t.Fatalf("raw send: %d %s", code, raw)
	}
	sent := e.g.Sent("carol@example.com")
	if len(sent) != 1 || !strings.Contains(string(sent[0]), "Subject: raw via graph") {
		t.Fatalf("sent through Graph: %q", sent)
	}
}
