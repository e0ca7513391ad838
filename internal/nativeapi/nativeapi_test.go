// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
	"github.com/emaillistener/emaillistener/internal/source"
)

const token = "tok-0123456789abcdef"

// fakeAccounts is a registry in memory; every mailbox it holds "exists".
type fakeAccounts struct {
	mu       sync.Mutex
	mbs      map[mail.MailboxID]*mail.Mailbox
	queries  []mail.Query
	sent     []sent
	messages map[string][]byte // "folder/uid"
	hold     chan struct{}     // when set, Message waits for it (after a send on holding)
	holding  chan struct{}
	tokens   int // access tokens handed out
}

func (f *fakeAccounts) Subscribe(_ context.Context, mbs []*mail.Mailbox, _ mail.Mode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, mb := range mbs {
		f.mbs[mb.ID] = mb
	}
	return nil
}

func (f *fakeAccounts) Close(_ context.Context, ids []mail.MailboxID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.mbs, id)
	}
	return nil
}

func (f *fakeAccounts) Mailboxes(context.Context) ([]*mail.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*mail.Mailbox
	for _, mb := range f.mbs {
		out = append(out, mb)
	}
	return out, nil
}

func (f *fakeAccounts) Mailbox(_ context.Context, id mail.MailboxID) (*mail.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mbs[id], nil
}

func (f *fakeAccounts) Folders(_ context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error) {
	if mb.Password == "wrong" {
		return nil, mail.Errorf(mail.ClassAuth, "login", "authentication failed")
	}
	return []creatio.MailboxFolder{{ID: "INBOX", Name: "INBOX"}, {ID: "INBOX/Projects", Name: "Projects", ParentID: "INBOX"}}, nil
}

func (f *fakeAccounts) Validate(_ context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo {
	if mb.Password == "wrong" {
		return creatio.CredentialsValidationInfo{Message: "Authentication failed for " + mb.UserName}
	}
	return creatio.CredentialsValidationInfo{IsValid: true}
}

func (f *fakeAccounts) Statuses(_ context.Context, ids []mail.MailboxID) (map[mail.MailboxID]mail.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[mail.MailboxID]mail.Status{}
	for _, id := range ids {
		if _, ok := f.mbs[id]; ok {
			out[id] = mail.Status{State: mail.StateExists, Folders: []string{"INBOX"}}
		}
	}
	return out, nil
}

func (f *fakeAccounts) Synchronize(_ context.Context, mb *mail.Mailbox, q mail.Query) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return nil
}

func (f *fakeAccounts) History(id mail.MailboxID) (mail.HistoryProgress, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return mail.HistoryProgress{}, false
	}
	return mail.HistoryProgress{State: mail.HistoryQueued, Filter: "since"}, true
}

func (f *fakeAccounts) Send(_ context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mb.Password == "wrong" || (mb.UseOAuth && mb.AccessToken == "expired") {
		return &mail.UserError{Err: mail.Errorf(mail.ClassAuth, "smtp", "535"), Msg: "The SMTP server refused the login."}
	}
	f.sent = append(f.sent, sent{mb: mb, msg: msg})
	return nil
}

func (f *fakeAccounts) SendRaw(_ context.Context, mb *mail.Mailbox, raw []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sent{mb: mb, raw: raw})
	return nil
}

func (f *fakeAccounts) Message(ctx context.Context, mb *mail.Mailbox, folder, id string) (*source.Fetched, error) {
	if f.hold != nil {
		f.holding <- struct{}{}
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	raw, ok := f.messages[folder+"/"+id]
	if !ok {
		return nil, source.ErrGone
	}
	return &source.Fetched{Ref: source.Ref{Folder: folder, ID: id}, Raw: raw}, nil
}

func (f *fakeAccounts) AccessToken(_ context.Context, o *mail.OAuth2) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.RefreshToken == "revoked" {
		return "", "", mail.Errorf(mail.ClassAuth, "oauth token", "the token endpoint refused the refresh token: invalid_grant")
	}
	f.tokens++
	return fmt.Sprintf("access-%d", f.tokens), o.RefreshToken + "+", nil
}

func (f *fakeAccounts) RenewToken(ctx context.Context, mb *mail.Mailbox) error {
	access, refresh, err := f.AccessToken(ctx, mb.OAuth2)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := *f.mbs[mb.ID]
	o := *cur.OAuth2
	o.RefreshToken, cur.OAuth2, cur.AccessToken = refresh, &o, access
	f.mbs[mb.ID] = &cur
	return nil
}

type sent struct {
	mb  *mail.Mailbox
	msg *mail.Message
	raw []byte
}

func newHandler(t *testing.T, tokens string) (*Handler, *fakeAccounts) {
	t.Helper()
	tk, err := ParseTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAccounts{mbs: map[mail.MailboxID]*mail.Mailbox{
		"creatio-1": {ID: "creatio-1", Kind: mail.ServerIMAP, Endpoint: "https://crm"},
	}}
	h, err := New(Options{Accounts: f, Tokens: tk, Parse: func(raw []byte) (*mail.Message, error) {
		return mime.Parse(raw, nil)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return h, f
}

func do(h http.Handler, method, path, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestParseTokens(t *testing.T) {
	tk, err := ParseTokens(" ci:" + token + " , bare-token-0123456789 ,")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := tk.Check("Bearer " + token); !ok || g.Name != "ci" || g.Scope != ScopeWrite || g.Prefix != "" {
		t.Fatalf("named token: %+v %v", g, ok)
	}
	if g, ok := tk.Check("bearer bare-token-0123456789"); !ok || g.Name != "token-2" {
		t.Fatalf("bare token: %+v %v", g, ok)
	}
	for _, bad := range []string{"", "Bearer", "Bearer ", "Basic " + token, "Bearer " + token + "x", token} {
		if _, ok := tk.Check(bad); ok {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
	ro, err := ParseTokens("dash:read-only-token-0123456789:read, ops:" + token + ":write")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := ro.Check("Bearer read-only-token-0123456789"); !ok || g.Name != "dash" || g.Scope != ScopeRead {
		t.Fatalf("read token: %+v %v", g, ok)
	}
	if g, ok := ro.Check("Bearer " + token); !ok || g.Scope != ScopeWrite {
		t.Fatalf("write token: %+v %v", g, ok)
	}
	tenant, err := ParseTokens("acme:tenant-token-0123456789:write:Acme-, viewer:viewer-token-0123456789::globex.")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := tenant.Check("Bearer tenant-token-0123456789"); !ok || g.Prefix != "acme-" || g.Scope != ScopeWrite {
		t.Fatalf("tenant token: %+v %v", g, ok)
	}
	if g, ok := tenant.Check("Bearer viewer-token-0123456789"); !ok || g.Prefix != "globex." || g.Scope != ScopeWrite {
		t.Fatalf("token with a prefix and the default scope: %+v %v", g, ok)
	}
	for _, bad := range []string{"x:" + token + ":write:-lead", "x:" + token + ":write:" + strings.Repeat("a", 28), "x:" + token + ":write:a:b"} {
		if _, err := ParseTokens(bad); err == nil {
			t.Errorf("ParseTokens accepted a bad prefix entry %q", bad)
		}
	}
	if _, err := ParseTokens("x:" + token + ":admin"); err == nil {
		t.Error("an unknown scope was accepted")
	}
	if _, err := ParseTokens("short"); err == nil {
		t.Error("a short token was accepted")
	}
	if _, err := ParseTokens("name:"); err == nil || strings.Contains(err.Error(), "name:") {
		t.Errorf("empty token: %v", err)
	}
	if _, err := ParseTokens("x:secret-but-short"); err != nil {
		t.Errorf("a 16-character token refused: %v", err)
	}
	// The token itself is never kept.
	tk2, _ := ParseTokens("n:" + token)
	if strings.Contains(fmt.Sprintf("%#v %+v", tk2, tk2), token) {
		t.Error("the token is kept in clear")
	}
	if empty, _ := ParseTokens(""); empty.Enabled() {
		t.Error("empty spec enabled the API")
	}
}

func TestAuth(t *testing.T) {
	disabled, _ := newHandler(t, "")
	if w := do(disabled, "GET", "/v1/accounts", "Bearer "+token, ""); w.Code != 503 ||
		!strings.Contains(w.Body.String(), "native API disabled: set EL_API_TOKENS") {
		t.Fatalf("disabled: %d %s", w.Code, w.Body)
	}
	if w := do(disabled, "GET", "/v1/openapi.json", "", ""); w.Code != 200 {
		t.Fatalf("openapi while disabled: %d", w.Code)
	}
	h, _ := newHandler(t, "ci:"+token)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + token} {
		if w := do(h, "GET", "/v1/accounts", auth, ""); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("auth %q: %d", auth, w.Code)
		}
	}
	if w := do(h, "GET", "/v1/accounts", "Bearer "+token, ""); w.Code != 200 {
		t.Fatalf("good token: %d %s", w.Code, w.Body)
	}
	// A read token reads and changes nothing.
	ro, _ := newHandler(t, "dash:read-only-token-0123456789:read")
	if w := do(ro, "GET", "/v1/accounts", "Bearer read-only-token-0123456789", ""); w.Code != 200 {
		t.Errorf("read token, GET: %d", w.Code)
	}
	for _, m := range []string{"POST", "DELETE"} {
		path := "/v1/accounts"
		if m == "DELETE" {
			path = "/v1/accounts/creatio-1"
		}
		if w := do(ro, m, path, "Bearer read-only-token-0123456789", `{"email":"a@b.c"}`); w.Code != 403 {
			t.Errorf("read token, %s: %d", m, w.Code)
		}
	}
}

func TestAccountsLifecycle(t *testing.T) {
	h, f := newHandler(t, token)
	auth := "Bearer " + token
	body := `{"id":"Acc-1","email":"jane@example.com","imap":{"host":"imap.example.com","secure":"starttls","password":"pw"},
		"folders":["INBOX"],"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}}`
	w := do(h, "POST", "/v1/accounts", auth, body)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "0123456789abcdef0123") || strings.Contains(w.Body.String(), `"pw"`) {
		t.Fatalf("secrets in the answer: %s", w.Body)
	}
	mb := f.mbs["acc-1"]
	if mb == nil || !mb.Native() || mb.Port != 143 || mb.Secure != mail.SecureStartTLS || mb.UserName != "jane@example.com" ||
		mb.WebhookSecret != "0123456789abcdef0123" || mb.WebhookURL != "https://hooks.example.com/in" {
		t.Fatalf("registered %+v", mb)
	}
	var acc Account
	w = do(h, "GET", "/v1/accounts/acc-1", auth, "")
	if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || w.Code != 200 || acc.State != "exists" || acc.Email != "jane@example.com" {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}
	if w = do(h, "POST", "/v1/accounts", auth, body); w.Code != 200 {
		t.Fatalf("replace: %d %s", w.Code, w.Body)
	}
	var list struct{ Accounts []Account }
	w = do(h, "GET", "/v1/accounts", auth, "")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Accounts) != 1 || list.Accounts[0].ID != "acc-1" {
		t.Fatalf("list (Creatio mailboxes hidden): %s", w.Body)
	}
	// Creatio's mailboxes are neither shown nor taken over.
	if w = do(h, "GET", "/v1/accounts/creatio-1", auth, ""); w.Code != 404 {
		t.Fatalf("get creatio mailbox: %d", w.Code)
	}
	if w = do(h, "DELETE", "/v1/accounts/creatio-1", auth, ""); w.Code != 404 || f.mbs["creatio-1"] == nil {
		t.Fatalf("delete creatio mailbox: %d", w.Code)
	}
	if w = do(h, "POST", "/v1/accounts", auth, strings.Replace(body, "Acc-1", "creatio-1", 1)); w.Code != 409 {
		t.Fatalf("create over a creatio mailbox: %d", w.Code)
	}
	if w = do(h, "DELETE", "/v1/accounts/acc-1", auth, ""); w.Code != 204 || f.mbs["acc-1"] != nil {
		t.Fatalf("delete: %d", w.Code)
	}
	if w = do(h, "GET", "/v1/accounts/acc-1", auth, ""); w.Code != 404 {
		t.Fatalf("get deleted: %d", w.Code)
	}
	// A generated id.
	w = do(h, "POST", "/v1/accounts", auth, strings.Replace(body, `"id":"Acc-1",`, "", 1))
	if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || w.Code != 201 || len(acc.ID) != 36 {
		t.Fatalf("generated id: %d %s", w.Code, w.Body)
	}
}

func TestCreateValidates(t *testing.T) {
	h, _ := newHandler(t, token)
	good := map[string]any{"email": "a@b", "imap": map[string]any{"host": "h", "password": "p"},
		"webhook": map[string]any{"url": "https://x/y", "secret": "0123456789abcdef"}}
	for name, mutate := range map[string]func(m map[string]any){
		"no email":        func(m map[string]any) { delete(m, "email") },
		"bad id":          func(m map[string]any) { m["id"] = "a/b" },
		"no host":         func(m map[string]any) { m["imap"].(map[string]any)["host"] = "" },
		"bad secure":      func(m map[string]any) { m["imap"].(map[string]any)["secure"] = "ssl3" },
		"bad port":        func(m map[string]any) { m["imap"].(map[string]any)["port"] = 70000 },
		"no password":     func(m map[string]any) { delete(m["imap"].(map[string]any), "password") },
		"bad url":         func(m map[string]any) { m["webhook"].(map[string]any)["url"] = "ftp://x" },
		"short secret":    func(m map[string]any) { m["webhook"].(map[string]any)["secret"] = "short" },
		"unknown field":   func(m map[string]any) { m["extra"] = 1 },
		"empty folder":    func(m map[string]any) { m["folders"] = []string{""} },
		"url credentials": func(m map[string]any) { m["webhook"].(map[string]any)["url"] = "https://u:p@x/" },
	} {
		b, _ := json.Marshal(good)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mutate(m)
		b, _ = json.Marshal(m)
		if w := do(h, "POST", "/v1/accounts", "Bearer "+token, string(b)); w.Code != 400 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	b, _ := json.Marshal(good)
	if w := do(h, "POST", "/v1/accounts", "Bearer "+token, string(b)); w.Code != 201 {
		t.Fatalf("good: %d %s", w.Code, w.Body)
	}
}

// Every route the handler serves is in openapi.json, and every operation
// there is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	var served []string
	for _, r := range routes {
		served = append(served, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented %v\nserved     %v", documented, served)
	}
	// And the handler really answers each (not the fallback 404).
	h, _ := newHandler(t, token)
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		w := do(h, method, strings.ReplaceAll(path, "{id}", "x"), "Bearer "+token, "{}")
		if strings.Contains(w.Body.String(), "no such endpoint") {
			t.Errorf("%s is documented but not served", op)
		}
	}
	if w := do(h, "GET", "/v1/nothing", "Bearer "+token, ""); w.Code != 404 || !strings.Contains(w.Body.String(), "no such endpoint") {
		t.Errorf("unknown path: %d %s", w.Code, w.Body)
	}
}

// Folders and validate run on the account's credentials; a Creatio
// mailbox's id is not an account.
func TestFoldersAndValidate(t *testing.T) {
	h, f := newHandler(t, token)
	auth := "Bearer " + token
	f.mbs["good"] = &mail.Mailbox{ID: "good", Client: mail.ClientNative, UserName: "jane@example.com", Password: "pw"}
	f.mbs["bad"] = &mail.Mailbox{ID: "bad", Client: mail.ClientNative, UserName: "joe@example.com", Password: "wrong"}
	var folders []Folder
	w := do(h, "GET", "/v1/accounts/good/folders", auth, "")
	if err := json.Unmarshal(w.Body.Bytes(), &folders); err != nil || w.Code != 200 || len(folders) != 2 ||
		folders[1] != (Folder{ID: "INBOX/Projects", Name: "Projects", Parent: "INBOX"}) {
		t.Fatalf("folders: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "/v1/accounts/bad/folders", auth, ""); w.Code < 400 {
		t.Errorf("folders with wrong credentials: %d %s", w.Code, w.Body)
	}
	var v Validation
	w = do(h, "POST", "/v1/accounts/bad/validate", auth, "{}")
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || w.Code != 200 || v.Valid || !strings.Contains(v.Message, "joe@example.com") {
		t.Fatalf("validate bad: %d %s", w.Code, w.Body)
	}
	w = do(h, "POST", "/v1/accounts/good/validate", auth, "{}")
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || !v.Valid {
		t.Fatalf("validate good: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "/v1/accounts/creatio-1/folders", auth, ""); w.Code != 404 {
		t.Errorf("a Creatio mailbox's folders: %d", w.Code)
	}
}

// A token with an account prefix reaches only the accounts whose id starts
// with it: it makes them (a random id gets the prefix), and the others do
// not exist for it; a token without a prefix reaches all.
func TestTokenPrefixes(t *testing.T) {
	const acme, globex = "acme-token-0123456789", "globex-token-0123456789"
	h, _ := newHandler(t, "acme:"+acme+":write:acme-, globex:"+globex+":write:globex-, ops:"+token)
	body := func(id string) string {
		return `{"id":"` + id + `","email":"a@b.example","imap":{"host":"imap.example.com","password":"pw"},` +
			`"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}}`
	}
	w := do(h, "POST", "/v1/accounts", "Bearer "+acme, body(""))
	var acc Account
	if err := json.Unmarshal(w.Body.Bytes(), &acc); w.Code != 201 || err != nil || !strings.HasPrefix(acc.ID, "acme-") || len(acc.ID) > 64 {
		t.Fatalf("create without id: %d %s", w.Code, w.Body)
	}
	if w = do(h, "POST", "/v1/accounts", "Bearer "+acme, body("globex-1")); w.Code != 403 {
		t.Fatalf("create outside the prefix: %d %s", w.Code, w.Body)
	}
	if w = do(h, "POST", "/v1/accounts", "Bearer "+globex, body("globex-1")); w.Code != 201 {
		t.Fatalf("globex create: %d %s", w.Code, w.Body)
	}
	list := func(tok string) []string {
		w := do(h, "GET", "/v1/accounts", "Bearer "+tok, "")
		var out struct{ Accounts []Account }
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		var ids []string
		for _, a := range out.Accounts {
			ids = append(ids, a.ID)
		}
		return ids
	}
	if got := list(globex); !slices.Equal(got, []string{"globex-1"}) {
		t.Errorf("globex lists %v", got)
	}
	if got := list(token); len(got) != 2 {
		t.Errorf("ops lists %v, want both", got)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/accounts/" + acc.ID, ""},
		{"PATCH", "/v1/accounts/" + acc.ID, `{"folders":["INBOX"]}`},
		{"DELETE", "/v1/accounts/" + acc.ID, ""},
		{"POST", "/v1/accounts/" + acc.ID + "/sync", `{"since":"2026-11-01"}`},
	} {
		if w := do(h, c.method, c.path, "Bearer "+globex, c.body); w.Code != 404 {
			t.Errorf("globex %s %s: %d %s", c.method, c.path, w.Code, w.Body)
		}
	}
	if w = do(h, "DELETE", "/v1/accounts/"+acc.ID, "Bearer "+token, ""); w.Code != 204 {
		t.Fatalf("ops delete: %d %s", w.Code, w.Body)
	}
}
