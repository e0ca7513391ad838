// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf16"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func folderOK(w http.ResponseWriter) {
	reply(w, opResp("GetFolder", okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="`+testFolder+`"/><t:DisplayName>Inbox</t:DisplayName></t:Folder></m:Folders>`)))
}

// AuthAuto against a Basic-only server: one 401, then Basic on every
// request without another 401.
func TestAuthAutoBasic(t *testing.T) {
	var unauth atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		u, p, ok := r.BasicAuth()
		if !ok || u != testUser || p != testPass {
			unauth.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="mail.contoso.com"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		folderOK(w)
	})
	c := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{User: testUser, Password: testPass} })
	for range 3 {
		if _, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 4 || unauth.Load() != 1 {
		t.Fatalf("%d requests, %d unauthorized; want 4 and 1", len(reqs), unauth.Load())
	}
	for _, r := range reqs[1:] {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
			t.Errorf("request without pre-emptive Basic: %q", r.Header.Get("Authorization"))
		}
	}

	// Wrong password: ClassAuth, naming the scheme, never the password.
	bad := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{User: testUser, Password: testPass + "x"} })
	_, err := bad.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassAuth)
	if !strings.Contains(err.Error(), "Basic authentication") {
		t.Errorf("err = %v", err)
	}
	noSecret(t, err)
}

// ntlmServer speaks enough NTLM to check the client's handshake: anonymous
// requests get a 401 offering Negotiate and NTLM; a NEGOTIATE message gets a
// CHALLENGE; an AUTHENTICATE message on the same connection, from testUser,
// authenticates the connection (as IIS does), after which anonymous requests
// on it pass.
type ntlmServer struct {
	mu         sync.Mutex
	challenged map[string]bool
	authed     map[string]bool
	handshakes int
	users      []string
}

func (s *ntlmServer) handle(w http.ResponseWriter, r *http.Request, req *soapReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conn := r.RemoteAddr
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	msg, _ := base64.StdEncoding.DecodeString(tok)
	switch {
	case scheme == "" && s.authed[conn]:
		folderOK(w)
	case scheme == "":
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", "NTLM")
		w.WriteHeader(http.StatusUnauthorized)
	case scheme == "NTLM" && ntlmType(msg) == 1:
		s.challenged[conn] = true
		w.Header().Set("WWW-Authenticate", "NTLM "+base64.StdEncoding.EncodeToString(ntlmChallenge()))
		w.WriteHeader(http.StatusUnauthorized)
	case scheme == "NTLM" && ntlmType(msg) == 3 && s.challenged[conn]:
		user := ntlmUser(msg)
		s.users = append(s.users, user)
		if user != "svc-listener@contoso.com" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.handshakes++
		s.authed[conn] = true
		folderOK(w)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

func ntlmType(m []byte) uint32 {
	if len(m) < 12 || !bytes.HasPrefix(m, []byte("NTLMSSP\x00")) {
		return 0
	}
	return binary.LittleEndian.Uint32(m[8:])
}

// ntlmChallenge builds a minimal CHALLENGE message: Unicode and NTLM flags,
// a server challenge, and target info holding only its terminator.
func ntlmChallenge() []byte {
	b := make([]byte, 48+4)
	copy(b, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(b[8:], 2)
	// An empty target name at the payload start; flags UNICODE, NTLM, TARGET_INFO.
	binary.LittleEndian.PutUint32(b[16:], 48)
	binary.LittleEndian.PutUint32(b[20:], 0x00000001|0x00000200|0x00800000)
	copy(b[24:32], "\x01\x23\x45\x67\x89\xab\xcd\xef")
	binary.LittleEndian.PutUint16(b[40:], 4) // target info: MsvAvEOL
	binary.LittleEndian.PutUint16(b[42:], 4)
	binary.LittleEndian.PutUint32(b[44:], 48)
	return b
}

// ntlmUser reads the user name of an AUTHENTICATE message (UTF-16LE).
func ntlmUser(m []byte) string {
	if len(m) < 44 {
		return ""
	}
	n, off := int(binary.LittleEndian.Uint16(m[36:])), int(binary.LittleEndian.Uint32(m[40:]))
	if off+n > len(m) {
		return ""
	}
	u := make([]uint16, n/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(m[off+2*i:])
	}
	return string(utf16.Decode(u))
}

func TestAuthAutoNTLM(t *testing.T) {
	ns := &ntlmServer{challenged: map[string]bool{}, authed: map[string]bool{}}
	f := newFake(t, ns.handle)
	c := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{User: testUser, Password: testPass} })
	if _, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}); err != nil {
		t.Fatal(err)
	}
	if c.auth.mode.Load() != autoNTLM {
		t.Fatal("AuthAuto did not settle on NTLM")
	}
	n := len(f.requests())
	if n != 3 {
		t.Fatalf("%d requests for the first call, want 3 (anonymous, negotiate, authenticate)", n)
	}
	// The connection is authenticated: the next call needs one request.
	if _, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}); err != nil {
		t.Fatal(err)
	}
	if got := len(f.requests()) - n; got != 1 {
		t.Errorf("%d requests on an authenticated connection, want 1", got)
	}
	// A new connection authenticates again.
	c.CloseIdleConnections()
	if _, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}); err != nil {
		t.Fatal(err)
	}
	if ns.handshakes != 2 {
		t.Errorf("%d handshakes, want 2", ns.handshakes)
	}
	for _, r := range f.requests() {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Basic") {
			t.Fatal("Basic credentials sent to an NTLM server")
		}
	}

	// A wrong user: ClassAuth naming NTLM, no password.
	bad := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{Scheme: AuthNTLM, User: `CONTOSO\mallory`, Password: testPass} })
	_, err := bad.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassAuth)
	if !strings.Contains(err.Error(), "NTLM authentication") {
		t.Errorf("err = %v", err)
	}
	noSecret(t, err)
}

// Explicit NTLM never falls back to Basic.
func TestAuthNTLMAgainstBasicServer(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		if _, _, ok := r.BasicAuth(); ok {
			t.Error("Basic credentials sent with Scheme NTLM")
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="mail.contoso.com"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{Scheme: AuthNTLM, User: testUser, Password: testPass} })
	_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassAuth)
	if !strings.Contains(err.Error(), "offers Basic") {
		t.Errorf("err = %v", err)
	}
}

func TestAuthBearer(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		if r.Header.Get("Authorization") != "Bearer tok-good" {
			w.Header().Set("WWW-Authenticate", `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*"`)
			w.Header().Set("x-ms-diagnostics", `2000001;reason="The token has an invalid signature.";error_category="invalid_signature"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		folderOK(w)
	})
	c := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{Scheme: AuthBearer, Token: "tok-good"} })
	if _, err := c.GetFolder(ctxT(t), Target{Impersonate: testMailbox}, FolderID{Distinguished: "inbox"}); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	bad := newClient(t, f.url(), func(o *Options) {
		o.Auth = Auth{Scheme: AuthBearer, TokenFunc: func(context.Context) (string, error) {
			calls.Add(1)
			return "tok-expired", nil
		}}
	})
	_, err := bad.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassAuth)
	if !strings.Contains(err.Error(), "Bearer authentication") || !strings.Contains(err.Error(), "invalid signature") {
		t.Errorf("err = %v", err)
	}
	noSecret(t, err)
	if calls.Load() != 1 {
		t.Errorf("TokenFunc called %d times", calls.Load())
	}
}

// NewAuthTransport authenticates like a Client (for autodiscover), and
// HTTPClient does not follow redirects.
func TestAuthTransportExport(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "https://elsewhere.contoso.com/", http.StatusFound)
	})
	rt, err := NewAuthTransport(nil, Auth{Scheme: AuthBasic, User: testUser, Password: testPass})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		Post(f.url(), "text/xml", strings.NewReader("<x/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status %d", resp.StatusCode)
	}
	if _, err := NewAuthTransport(nil, Auth{Scheme: AuthBasic}); err == nil {
		t.Error("Basic without a user accepted")
	}

	c := newClient(t, f.url(), func(o *Options) { o.Auth = Auth{Scheme: AuthBasic, User: testUser, Password: testPass} })
	resp, err = c.HTTPClient().Post(f.url(), "text/xml", strings.NewReader("<x/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("HTTPClient followed a redirect: %d", resp.StatusCode)
	}
	if c.transport == nil || c.transport.Protocols == nil || c.transport.Protocols.HTTP2() || !c.transport.Protocols.HTTP1() {
		t.Error("the client's transport is not limited to HTTP/1.1")
	}
}
