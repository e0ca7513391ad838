// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// tokenServer is an OAuth2 token introspection endpoint (RFC 7662) for
// Dovecot's oauth2 passdb: the test decides which access tokens are valid.
type tokenServer struct {
	mu    sync.Mutex
	valid map[string]string // token -> user
	srv   *httptest.Server
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{valid: map[string]string{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		ts.mu.Lock()
		user, ok := ts.valid[r.Form.Get("token")]
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": ok, "username": user})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) set(token, user string, ok bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ok {
		ts.valid[token] = user
	} else {
		delete(ts.valid, token)
	}
}

// dovecotOAuth configures XOAUTH2/OAUTHBEARER against the token server.
func dovecotOAuth(t *testing.T, ts *tokenServer) string {
	dir := t.TempDir()
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	_ = os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	body := fmt.Sprintf("introspection_mode = post\nintrospection_url = %s/introspect\nusername_attribute = username\n"+
		"active_attribute = active\nactive_value = true\n", ts.srv.URL)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("auth_mechanisms = plain login xoauth2 oauthbearer\npassdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}\n", conf)
}

// TestOAuthTokenRefresh: an XOAUTH2 mailbox works with a valid token; when the
// token is rejected on reconnect the service asks Creatio (RefreshToken), and
// Creatio's update with a fresh token restores the subscription without a
// failure report. If no update comes in time, the failure is reported.
func TestOAuthTokenRefresh(t *testing.T) {
	ts := newTokenServer(t)
	e := newEnvWith(t, envOptions{trustCA: true, dovecotExtra: dovecotOAuth(t, ts),
		tweak: func(c *config.Config) { c.TokenRefreshWait = 3 * time.Second }})
	const id = "0a000000-0000-4000-8000-00000000a0a0"
	ts.set("token-1", "alice@example.com", true)
	spec := mailboxSpec{ID: id, User: "alice@example.com"}
	oauthBody := func(token string) string {
		b := e.createBody(spec)
		b = strings.Replace(b, "UseOAuth:false", "UseOAuth:true", 1)
		return strings.Replace(b, `AccessToken:""`, `AccessToken:"`+token+`"`, 1)
	}
	e.mustPost("/api/listeners/create", oauthBody("token-1"))
	e.waitState(id, "exists", 10*time.Second)
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("via-oauth", "oauth-1@example.com"))
	e.waitEmails("via-oauth", 1, 10*time.Second)

	// Creatio stand-in: answer RefreshToken by calling update with a new token.
	refreshed := make(chan struct{})
	var once sync.Once
	e.col.OnRequest(func(r testenv.Request) {
		if r.Op != "RefreshToken" || r.JSON["MailboxId"] != id {
			return
		}
		once.Do(func() {
			go func() {
				defer close(refreshed)
				ts.set("token-2", "alice@example.com", true)
				e.mustPost("/api/listeners/update", oauthBody("token-2"))
			}()
		})
	})
	// The token expires and the server restarts: reconnect with token-1 fails.
	ts.set("token-1", "", false)
	if err := e.dc.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-refreshed:
	case <-time.After(15 * time.Second):
		t.Fatal("no RefreshToken request within 15 s of the token being rejected")
	}
	e.waitState(id, "exists", 10*time.Second)
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("after-refresh", "oauth-2@example.com"))
	e.waitEmails("after-refresh", 1, 10*time.Second)
	for _, r := range e.col.Requests("ProcessMailboxState") {
		if r.JSON["MailboxId"] == id && r.JSON["Avaliable"] == false && strings.Contains(fmt.Sprint(r.JSON["ExceptionClassName"]), "Authentication") {
			t.Errorf("auth failure reported although the refreshed token arrived: %v", r.JSON)
		}
	}
	rt := e.col.Requests("RefreshToken")
	if len(rt) != 1 || rt[0].JSON["SenderEmailAddress"] != "alice@example.com" || rt[0].JSON["BpmUserName"] != "Supervisor" {
		t.Errorf("RefreshToken requests = %v", rt)
	}

	// No answer this time: after the wait the failure is reported.
	e.col.OnRequest(nil)
	ts.set("token-2", "", false)
	if err := e.dc.Restart(); err != nil {
		t.Fatal(err)
	}
	e.waitRequestsFor("ProcessMailboxState", id, func(m map[string]any) bool {
		return m["Avaliable"] == false && strings.HasSuffix(fmt.Sprint(m["ExceptionClassName"]), "AuthenticationException")
	})
	if st := e.state(id); st["State"] != "error" || st["ErrorClass"] != "auth" {
		t.Errorf("state = %v", st)
	}
}
