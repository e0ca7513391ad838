// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

const accountBody = `{"id":"acc-1","email":"jane@example.com","imap":{"host":"imap.example.com","password":"pw"},
	"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}}`

func created(t *testing.T) (*Handler, *fakeAccounts) {
	t.Helper()
	h, f := newHandler(t, token)
	if w := do(h, "POST", "/v1/accounts", "Bearer "+token, accountBody); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	return h, f
}

// PATCH changes what it names and keeps the rest, secrets included.
func TestUpdate(t *testing.T) {
	h, f := created(t)
	auth := "Bearer " + token
	w := do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"webhook":{"events":["message.new","sync.progress"],"payload":"raw",
		"maxInlineAttachmentBytes":0},"smtp":{"host":"smtp.example.com","secure":"starttls"},"folders":["INBOX","Sent"]}`)
	if w.Code != 200 {
		t.Fatalf("patch: %d %s", w.Code, w.Body)
	}
	mb := f.mbs["acc-1"]
	if mb.Password != "pw" || mb.WebhookSecret != "0123456789abcdef0123" || mb.WebhookURL != "https://hooks.example.com/in" ||
		strings.Join(mb.WebhookEvents, ",") != "message.new,sync.progress" || !mb.WebhookRaw || mb.WebhookInlineMax != -1 ||
		mb.SMTP == nil || mb.SMTP.Port != 587 || mb.SMTP.UserName != "jane@example.com" || mb.SMTP.Password != "pw" ||
		strings.Join(mb.FolderIDs, ",") != "INBOX,Sent" || mb.Host != "imap.example.com" {
		t.Fatalf("after patch %+v %+v", mb, mb.SMTP)
	}
	var acc Account
	if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || acc.Webhook.Payload != "raw" || *acc.Webhook.MaxInlineAttachmentBytes != 0 ||
		acc.SMTP == nil || acc.SMTP.Password != "" || strings.Contains(w.Body.String(), `"pw"`) {
		t.Fatalf("answer %s", w.Body)
	}
	// New password; smtp removed; defaults back.
	w = do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"imap":{"password":"pw2"},"smtp":null,"webhook":{"events":[],"payload":"parsed",
		"maxInlineAttachmentBytes":1024}}`)
	mb = f.mbs["acc-1"]
	if w.Code != 200 || mb.Password != "pw2" || mb.SMTP != nil || mb.WebhookEvents != nil || mb.WebhookRaw || mb.WebhookInlineMax != 1024 {
		t.Fatalf("second patch: %d %s %+v", w.Code, w.Body, mb)
	}
	// A new "secure" brings its default port, unless the port was set.
	if w = do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"imap":{"secure":"starttls"}}`); w.Code != 200 || f.mbs["acc-1"].Port != 143 {
		t.Fatalf("secure changed: %d port %d", w.Code, f.mbs["acc-1"].Port)
	}
	do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"imap":{"port":1143}}`)
	if w = do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"imap":{"secure":"tls"}}`); w.Code != 200 || f.mbs["acc-1"].Port != 1143 {
		t.Fatalf("secure changed with a set port: %d port %d", w.Code, f.mbs["acc-1"].Port)
	}
	// A PATCH that changes nothing leaves the mailbox as it was.
	before := *f.mbs["acc-1"]
	if w = do(h, "PATCH", "/v1/accounts/acc-1", auth, `{}`); w.Code != 200 || !before.SameConnection(f.mbs["acc-1"]) {
		t.Fatalf("empty patch changed the account: %d %+v", w.Code, f.mbs["acc-1"])
	}
	for body, want := range map[string]int{
		`{"id":"other"}`:                              400,
		`{"webhook":{"events":["mail.new"]}}`:         400,
		`{"webhook":{"payload":"mime"}}`:              400,
		`{"webhook":{"secret":"short"}}`:              400,
		`{"smtp":{"host":"s","port":0,"secure":"x"}}`: 400,
		`{"nope":1}`: 400,
		`{"webhook":{"maxInlineAttachmentBytes":-5}}`: 400,
	} {
		if w := do(h, "PATCH", "/v1/accounts/acc-1", auth, body); w.Code != want {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	if w := do(h, "PATCH", "/v1/accounts/creatio-1", auth, `{}`); w.Code != 404 {
		t.Errorf("patch a Creatio mailbox: %d", w.Code)
	}
}

func TestSync(t *testing.T) {
	h, f := created(t)
	auth := "Bearer " + token
	for body, want := range map[string]mail.Query{
		`{"since":"2026-11-01"}`: {Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		`{"since":"2026-11-01T10:00:00+02:00","sentSince":true,"excludeFlags":["\\Draft","$Junk"],"uidFrom":7}`: {
			Since: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), SentSince: true, NotFlags: []string{`\Draft`, "$Junk"}, UIDFrom: 7},
		`{"filter":"UNDRAFT SENTSINCE 01-Nov-2026"}`: {Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), SentSince: true,
			NotFlags: []string{`\Draft`}},
	} {
		f.queries = nil
		w := do(h, "POST", "/v1/accounts/acc-1/sync", auth, body)
		if w.Code != 202 || len(f.queries) != 1 || !sameQuery(f.queries[0], want) || !strings.Contains(w.Body.String(), `"sync":{"state":"queued"`) {
			t.Errorf("%s: %d %s, query %+v", body, w.Code, w.Body, f.queries)
		}
	}
	for _, body := range []string{`{}`, `{"since":"yesterday"}`, `{"filter":"FLAGGED"}`, `{"filter":"UNDRAFT","since":"2026-11-01"}`,
		`{"since":"2026-11-01","excludeFlags":["a b"]}`} {
		if w := do(h, "POST", "/v1/accounts/acc-1/sync", auth, body); w.Code != 400 {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}

func sameQuery(a, b mail.Query) bool {
	return a.Since.Equal(b.Since) && a.SentSince == b.SentSince && strings.Join(a.NotFlags, ",") == strings.Join(b.NotFlags, ",") &&
		a.UIDFrom == b.UIDFrom
}

func TestSend(t *testing.T) {
	h, f := created(t)
	auth := "Bearer " + token
	if w := do(h, "POST", "/v1/accounts/acc-1/send", auth, `{"to":[{"address":"bob@example.com"}]}`); w.Code != 409 ||
		!strings.Contains(w.Body.String(), "smtp") {
		t.Fatalf("send without smtp settings: %d %s", w.Code, w.Body)
	}
	do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"smtp":{"host":"smtp.example.com","user":"jane","password":"smtp-pw"}}`)
	w := do(h, "POST", "/v1/accounts/acc-1/send", auth, `{"to":[{"name":"Bob","address":"bob@example.com"}],"bcc":[{"address":"c@example.com"}],
		"subject":"Hi","text":"hello","importance":"high","attachments":[{"name":"a.txt","data":"YWJj"}]}`)
	if w.Code != 200 || len(f.sent) != 1 {
		t.Fatalf("send: %d %s", w.Code, w.Body)
	}
	s := f.sent[0]
	if s.mb.ID != "acc-1" || s.mb.Host != "smtp.example.com" || s.mb.Port != 465 || s.mb.Secure != mail.SecureSSL || s.mb.UserName != "jane" ||
		s.mb.Password != "smtp-pw" || s.msg.From.Address != "jane@example.com" || s.msg.To[0].Name != "Bob" || s.msg.Bcc[0].Address != "c@example.com" ||
		s.msg.Importance != mail.ImportanceHigh || string(s.msg.Attachments[0].Data) != "abc" ||
		s.msg.Attachments[0].ContentType != "application/octet-stream" || !strings.Contains(w.Body.String(), s.msg.MessageID) ||
		!strings.HasSuffix(s.msg.MessageID, "@example.com>") {
		t.Fatalf("sent %+v %+v; answer %s", s.mb, s.msg, w.Body)
	}
	raw := "From: jane@example.com\r\nTo: bob@example.com\r\nMessage-ID: <raw@x>\r\nSubject: raw\r\n\r\nbody\r\n"
	req := httptest.NewRequest("POST", "/v1/accounts/acc-1/send", strings.NewReader(raw))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "message/rfc822")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || len(f.sent) != 2 || string(f.sent[1].raw) != raw || !strings.Contains(rec.Body.String(), "<raw@x>") {
		t.Fatalf("raw send: %d %s", rec.Code, rec.Body)
	}
	for body, want := range map[string]int{
		`{"subject":"no one"}`:                                     400,
		`{"to":[{"address":"b@x"}],"importance":"urgent"}`:         400,
		`{"to":[{"address":"b@x"}],"attachments":[{"data":"YQ"}]}`: 400,
		`{"to":[{"address":"b@x"}],"bogus":1}`:                     400,
	} {
		if w := do(h, "POST", "/v1/accounts/acc-1/send", auth, body); w.Code != want {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
	// The server's refusal is a 502 with its words.
	do(h, "PATCH", "/v1/accounts/acc-1", auth, `{"smtp":{"password":"wrong"}}`)
	if w := do(h, "POST", "/v1/accounts/acc-1/send", auth, `{"to":[{"address":"b@x"}]}`); w.Code != 502 ||
		!strings.Contains(w.Body.String(), "refused the login") {
		t.Errorf("refused login: %d %s", w.Code, w.Body)
	}
}

func TestMessageFetch(t *testing.T) {
	h, f := created(t)
	auth := "Bearer " + token
	big := strings.Repeat("x", 300<<10)
	raw := "From: Bob <bob@example.com>\r\nTo: jane@example.com\r\nSubject: Files\r\nMessage-ID: <m1@x>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n" +
		"--b\r\nContent-Type: text/plain; name=small.txt\r\nContent-Disposition: attachment; filename=small.txt\r\n\r\nsmall\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=big.bin\r\nContent-Disposition: attachment; filename=big.bin\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(big)) + "\r\n--b--\r\n"
	f.messages = map[string][]byte{"Archive/2026/42": []byte(raw)}
	key := webhook.MessageKey("Archive/2026", "42")

	w := do(h, "GET", "/v1/accounts/acc-1/messages/"+key, auth, "")
	var m webhook.Message
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Code != 200 || m.ID != key || m.ServerID != "42" || m.Subject != "Files" ||
		len(m.Attachments) != 2 || string(m.Attachments[0].Data) != "small" ||
		m.Attachments[1].URL != "/v1/accounts/acc-1/messages/"+key+"/attachments/1" || m.Attachments[1].Data != nil {
		t.Fatalf("json: %d %.500s", w.Code, w.Body)
	}
	if w = do(h, "GET", "/v1/accounts/acc-1/messages/"+key+"?format=raw", auth, ""); w.Code != 200 || w.Body.String() != raw ||
		w.Header().Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw: %d %.200s", w.Code, w.Body)
	}
	w = do(h, "GET", "/v1/accounts/acc-1/messages/"+key+"/attachments/1", auth, "")
	if w.Code != 200 || w.Body.String() != big || w.Header().Get("Content-Disposition") != `attachment; filename=big.bin` {
		t.Fatalf("attachment: %d %v", w.Code, w.Header())
	}
	for path, want := range map[string]int{
		"/v1/accounts/acc-1/messages/" + key + "/attachments/2":                   404,
		"/v1/accounts/acc-1/messages/" + key + "/attachments/-1":                  404,
		"/v1/accounts/acc-1/messages/" + webhook.MessageKey("INBOX", "42"):        404, // gone
		"/v1/accounts/acc-1/messages/" + webhook.MessageKey("INBOX", "AAMk=")[:8]: 404,
		"/v1/accounts/acc-1/messages/" + webhook.MessageKey("INBOX", "x"):         404,
		"/v1/accounts/acc-1/messages/" + key + "?format=pdf":                      400,
		"/v1/accounts/creatio-1/messages/" + key:                                  404,
	} {
		if w := do(h, "GET", path, auth, ""); w.Code != want {
			t.Errorf("%s: %d, want %d: %s", path, w.Code, want, w.Body)
		}
	}
}

// At most maxFetches downloads run at once; the next waits, then gets 503.
func TestMessageFetchesCapped(t *testing.T) {
	h, f := created(t)
	h.fetchWait = 50 * time.Millisecond
	f.messages = map[string][]byte{"INBOX/1": []byte("Subject: x\r\n\r\nx")}
	f.hold, f.holding = make(chan struct{}), make(chan struct{}, maxFetches)
	path := "/v1/accounts/acc-1/messages/" + webhook.MessageKey("INBOX", "1") + "?format=raw"
	codes := make(chan int, maxFetches)
	for range maxFetches {
		go func() { codes <- do(h, "GET", path, "Bearer "+token, "").Code }()
	}
	for range maxFetches {
		<-f.holding
	}
	if w := do(h, "GET", path, "Bearer "+token, ""); w.Code != 503 || !strings.Contains(w.Body.String(), "too many message fetches") {
		t.Fatalf("fetch over the cap: %d %s", w.Code, w.Body)
	}
	close(f.hold)
	for range maxFetches {
		if c := <-codes; c != 200 {
			t.Fatalf("held fetch: %d", c)
		}
	}
	if w := do(h, "GET", path, "Bearer "+token, ""); w.Code != 200 {
		t.Fatalf("after the others: %d", w.Code)
	}
}

// An exchange account: validated, stored as an Exchange mailbox (Autodiscover
// without a url), shown without its password, patched keeping its secrets,
// sending through its own server and fetching messages by Exchange item id.
func TestExchangeAccount(t *testing.T) {
	h, f := newHandler(t, token)
	auth := "Bearer " + token
	hook := `"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}`
	for name, body := range map[string]string{
		"both kinds":        `{"email":"s@contoso.com","imap":{"host":"h","password":"p"},"exchange":{"password":"p"},` + hook + `}`,
		"neither kind":      `{"email":"s@contoso.com",` + hook + `}`,
		"smtp with ews":     `{"email":"s@contoso.com","exchange":{"password":"p"},"smtp":{"host":"h"},` + hook + `}`,
		"ftp url":           `{"email":"s@contoso.com","exchange":{"url":"ftp://mail.contoso.com/","password":"p"},` + hook + `}`,
		"url credentials":   `{"email":"s@contoso.com","exchange":{"url":"https://u:p@mail.contoso.com/","password":"p"},` + hook + `}`,
		"host with a space": `{"email":"s@contoso.com","exchange":{"url":"mail contoso","password":"p"},` + hook + `}`,
	} {
		if w := do(h, "POST", "/v1/accounts", auth, body); w.Code != 400 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}

	w := do(h, "POST", "/v1/accounts", auth, `{"id":"sales","email":"sales@contoso.com","exchange":{"password":"ews-pw"},`+hook+`}`)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	mb := f.mbs["sales"]
	if mb.Kind != mail.ServerExchange || mb.Host != "" || mb.Extra[creatio.ExtraIsAutodiscover] != "true" ||
		mb.UserName != "sales@contoso.com" || mb.Password != "ews-pw" || !mb.Native() {
		t.Fatalf("mailbox %+v", mb)
	}
	var acc Account
	if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || acc.Exchange == nil || acc.IMAP != nil ||
		acc.Exchange.User != "sales@contoso.com" || strings.Contains(w.Body.String(), "ews-pw") {
		t.Fatalf("answer %s", w.Body)
	}

	// A url and an NTLM user; the password is kept.
	w = do(h, "PATCH", "/v1/accounts/sales", auth, `{"exchange":{"url":"https://mail.contoso.com/EWS/Exchange.asmx","user":"CONTOSO\\sales"}}`)
	if mb = f.mbs["sales"]; w.Code != 200 || mb.Host != "https://mail.contoso.com/EWS/Exchange.asmx" ||
		mb.Extra[creatio.ExtraIsAutodiscover] == "true" || mb.UserName != `CONTOSO\sales` || mb.Password != "ews-pw" {
		t.Fatalf("patch: %d %s %+v", w.Code, w.Body, mb)
	}
	// Turning it into an IMAP account takes exchange: null.
	if w = do(h, "PATCH", "/v1/accounts/sales", auth, `{"imap":{"host":"imap.contoso.com","password":"p"}}`); w.Code != 400 {
		t.Fatalf("patch to both kinds: %d %s", w.Code, w.Body)
	}

	// IMAP's sync criteria are refused; a date is taken.
	if w = do(h, "POST", "/v1/accounts/sales/sync", auth, `{"since":"2026-11-01","uidFrom":5}`); w.Code != 400 {
		t.Fatalf("sync with uidFrom: %d %s", w.Code, w.Body)
	}
	if w = do(h, "POST", "/v1/accounts/sales/sync", auth, `{"since":"2026-11-01"}`); w.Code != 202 {
		t.Fatalf("sync: %d %s", w.Code, w.Body)
	}

	// Sending goes through the account itself.
	if w = do(h, "POST", "/v1/accounts/sales/send", auth, `{"to":[{"address":"bob@example.com"}],"subject":"Hi","text":"hello"}`); w.Code != 200 {
		t.Fatalf("send: %d %s", w.Code, w.Body)
	}
	if s := f.sent[len(f.sent)-1]; s.mb != mb || s.msg == nil {
		t.Fatalf("sent with %+v", s.mb)
	}

	// Message ids carry Exchange item ids; an IMAP account refuses them.
	const item = "AAMkAGI2TG93AAA="
	f.messages = map[string][]byte{"inbox-id/" + item: []byte("From: a@example.com\r\nSubject: EWS\r\n\r\nbody\r\n")}
	key := webhook.MessageKey("inbox-id", item)
	if w = do(h, "GET", "/v1/accounts/sales/messages/"+key+"?format=raw", auth, ""); w.Code != 200 || !strings.Contains(w.Body.String(), "Subject: EWS") {
		t.Fatalf("fetch: %d %s", w.Code, w.Body)
	}
	created := `{"id":"imap-1","email":"jane@example.com","imap":{"host":"imap.example.com","password":"pw"},` + hook + `}`
	if w = do(h, "POST", "/v1/accounts", auth, created); w.Code != 201 {
		t.Fatalf("imap account: %d %s", w.Code, w.Body)
	}
	f.messages["INBOX/"+item] = []byte("Subject: x\r\n\r\n")
	if w = do(h, "GET", "/v1/accounts/imap-1/messages/"+webhook.MessageKey("INBOX", item), auth, ""); w.Code != 404 {
		t.Fatalf("an item id on an IMAP account: %d %s", w.Code, w.Body)
	}
}

// An OAuth account: its first access token is fetched at registration (a
// revoked grant is a 422 then), kept across a PATCH that leaves the client
// alone, shown without secrets; SMTP without a password logs in with the
// token, and a send refused for an expired token is retried once with a
// fresh one.
func TestOAuthAccount(t *testing.T) {
	h, f := newHandler(t, token)
	auth := "Bearer " + token
	body := func(refresh string) string {
		return `{"id":"gmail","email":"jane@gmail.com","imap":{"host":"imap.gmail.com","oauth2":{"tokenUrl":"https://oauth2.googleapis.com/token",` +
			`"clientId":"cid","clientSecret":"csecret","refreshToken":"` + refresh + `","scopes":["https://mail.google.com/"]}},` +
			`"smtp":{"host":"smtp.gmail.com","secure":"starttls"},` +
			`"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}}`
	}
	if w := do(h, "POST", "/v1/accounts", auth, body("revoked")); w.Code != 422 || !strings.Contains(w.Body.String(), "invalid_grant") {
		t.Fatalf("revoked grant: %d %s", w.Code, w.Body)
	}
	withPassword := strings.Replace(body("rt"), `"host":"imap.gmail.com",`, `"host":"imap.gmail.com","password":"pw",`, 1)
	if w := do(h, "POST", "/v1/accounts", auth, withPassword); w.Code != 400 {
		t.Fatalf("password and oauth2: %d %s", w.Code, w.Body)
	}
	w := do(h, "POST", "/v1/accounts", auth, body("rt"))
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	mb := f.mbs["gmail"]
	if !mb.UseOAuth || mb.AccessToken != "access-1" || mb.OAuth2.RefreshToken != "rt+" || mb.OAuth2.ClientSecret != "csecret" {
		t.Fatalf("mailbox %+v %+v", mb, mb.OAuth2)
	}
	for _, secret := range []string{"csecret", "rt", "access-1"} {
		if strings.Contains(w.Body.String(), `"`+secret) {
			t.Fatalf("the answer shows %q: %s", secret, w.Body)
		}
	}
	if !strings.Contains(w.Body.String(), `"clientId":"cid"`) {
		t.Fatalf("answer %s", w.Body)
	}
	if w = do(h, "PATCH", "/v1/accounts/gmail", auth, `{"folders":["INBOX"]}`); w.Code != 200 || f.mbs["gmail"].AccessToken != "access-1" || f.tokens != 1 {
		t.Fatalf("patch: %d, token %q after %d token requests", w.Code, f.mbs["gmail"].AccessToken, f.tokens)
	}

	// The token expired: the send is refused once, then goes out with a new one.
	f.mbs["gmail"].AccessToken = "expired"
	if w = do(h, "POST", "/v1/accounts/gmail/send", auth, `{"to":[{"address":"bob@example.com"}],"subject":"Hi","text":"x"}`); w.Code != 200 {
		t.Fatalf("send: %d %s", w.Code, w.Body)
	}
	s := f.sent[len(f.sent)-1].mb
	if !s.UseOAuth || s.AccessToken != "access-2" || s.Host != "smtp.gmail.com" || f.mbs["gmail"].AccessToken != "access-2" {
		t.Fatalf("sent with %+v; account token %q", s, f.mbs["gmail"].AccessToken)
	}
}
