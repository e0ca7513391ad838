// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ntlmssp "github.com/Azure/go-ntlmssp"
)

const getInbox = `<msg:GetFolder><msg:FolderShape><typ:BaseShape>IdOnly</typ:BaseShape></msg:FolderShape>` +
	`<msg:FolderIds><typ:DistinguishedFolderId Id="inbox"/></msg:FolderIds></msg:GetFolder>`

func TestAuthChallenges(t *testing.T) {
	for _, tc := range []struct {
		mode AuthMode
		want []string
	}{
		{AuthBasic, []string{`Basic realm="127.0.0.1"`}},
		{AuthNTLM, []string{"Negotiate", "NTLM"}},
		{0, []string{"Negotiate", "NTLM", `Basic realm="127.0.0.1"`}},
		{AuthBearer, []string{`Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			s, _ := newFake(t, Options{Auth: tc.mode})
			anon := newClient(t, s, "", "")
			resp, _ := anon.post(anon.envelope(getInbox))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("HTTP %d, want 401", resp.StatusCode)
			}
			if got := resp.Header.Values("WWW-Authenticate"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBasicAuthLogins(t *testing.T) {
	s, _ := newFake(t, Options{})
	mustOK(t, s.AddMailbox("carol@corp.example", "carol.k@corp.example", "pw-carol"))
	for _, login := range []string{"alice@ewsfake.test", `EWSFAKE\alice`, `ewsfake\ALICE`, "alice@EWSFAKE", "carol.k@corp.example", `CORP\carol.k`, "carol@corp.example"} {
		pw := "pw-alice"
		if strings.Contains(strings.ToLower(login), "carol") {
			pw = "pw-carol"
		}
		resp, body := newClient(t, s, login, pw).post(newClient(t, s, "", "").envelope(getInbox))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("login %s: HTTP %d %s", login, resp.StatusCode, body)
		}
	}
	resp, _ := newClient(t, s, alice, "wrong").post(newClient(t, s, "", "").envelope(getInbox))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: HTTP %d", resp.StatusCode)
	}
}

func TestBearerTokens(t *testing.T) {
	s, _ := newFake(t, Options{Auth: AuthBearer, ServiceAccount: "svc@ewsfake.test"})
	mustOK(t, s.AddToken("good", alice, time.Now().Add(time.Hour)))
	mustOK(t, s.AddToken("old", alice, time.Now().Add(-time.Minute)))
	mustOK(t, s.AddToken("app", "svc@ewsfake.test", time.Now().Add(time.Hour)))
	call := func(tok, header string) (*http.Response, []byte) {
		c := newClient(t, s, "", "")
		c.httpHeader = map[string]string{"Authorization": "Bearer " + tok}
		c.header = header
		return c.post(c.envelope(getInbox))
	}
	if resp, body := call("good", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("valid token: HTTP %d %s", resp.StatusCode, body)
	}
	for tok, diag := range map[string]string{"old": "2000008;", "unknown": "2000001;"} {
		resp, _ := call(tok, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("x-ms-diagnostics"), diag) ||
			!strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("token %s: HTTP %d %v", tok, resp.StatusCode, resp.Header)
		}
	}
	// An app-only token must impersonate, as in Exchange Online.
	resp, body := call("app", "")
	if code, _ := faultCode(t, resp, body); code != "ErrorInvalidExchangeImpersonationHeaderData" {
		t.Errorf("app token without impersonation: %s", code)
	}
	resp, body = call("app", `<typ:ExchangeImpersonation><typ:ConnectingSID><typ:SmtpAddress>`+alice+`</typ:SmtpAddress></typ:ConnectingSID></typ:ExchangeImpersonation>`)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("app token impersonating: HTTP %d %s", resp.StatusCode, body)
	}
}

// TestNTLMWithGoNTLMSSP logs in with the NTLM client library the service uses.
func TestNTLMWithGoNTLMSSP(t *testing.T) {
	s, _ := newFake(t, Options{Auth: AuthNTLM})
	mustOK(t, s.AddMailbox("dave@corp.example", "dave@corp.example", "pw-dave"))
	for _, tc := range []struct{ user, pass string }{
		{`EWSFAKE\alice`, "pw-alice"},
		{"dave@corp.example", "pw-dave"},
		{`CORP\dave`, "pw-dave"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			var conns atomic.Int32
			hc := &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: &http.Transport{}}, Timeout: 10 * time.Second}
			post := func(user, pass string) int {
				req, err := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(newClient(t, s, "", "").envelope(getInbox)))
				mustOK(t, err)
				req.SetBasicAuth(user, pass)
				req.Header.Set("Content-Type", "text/xml; charset=utf-8")
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
					if !info.Reused {
						conns.Add(1)
					}
				}}
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
				resp, err := hc.Do(req)
				mustOK(t, err)
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
				return resp.StatusCode
			}
			if code := post(tc.user, tc.pass); code != http.StatusOK {
				t.Fatalf("NTLM login: HTTP %d", code)
			}
			// The connection is authenticated now: go-ntlmssp first tries without
			// credentials, and the fake lets that through on the same connection, so
			// the second request needs neither a handshake nor a new connection.
			before, connsBefore := s.Stats().Requests["unauthorized"], conns.Load()
			if code := post(tc.user, tc.pass); code != http.StatusOK {
				t.Fatalf("second request: HTTP %d", code)
			}
			if n := s.Stats().Requests["unauthorized"] - before; n != 0 || conns.Load() != connsBefore {
				t.Errorf("second request: %d 401s, %d new connections; want none", n, conns.Load()-connsBefore)
			}
		})
	}
	hc := &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: &http.Transport{}}}
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(newClient(t, s, "", "").envelope(getInbox)))
	req.SetBasicAuth(`EWSFAKE\alice`, "wrong")
	resp, err := hc.Do(req)
	mustOK(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password over NTLM: HTTP %d", resp.StatusCode)
	}
}

// TestTLSWithNTLM: HTTPS with the fake's own CA, NTLM over it.
func TestTLSWithNTLM(t *testing.T) {
	s, _ := newFake(t, Options{TLS: true, Auth: AuthNTLM})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM()) {
		t.Fatal("CertPEM is not a PEM certificate")
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL())
	}
	hc := &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	req, err := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(newClient(t, s, "", "").envelope(getInbox)))
	mustOK(t, err)
	req.SetBasicAuth(`EWSFAKE\alice`, "pw-alice")
	resp, err := hc.Do(req)
	mustOK(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("HTTP %d over TLS %v", resp.StatusCode, resp.TLS != nil)
	}
}
