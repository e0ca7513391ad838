// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/app"
	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

const exchangeServerType = "3490bd45-4f4d-4613-aa06-454546f3342a"

// exchangeEnv is the service against the fake Exchange server (HTTPS, Basic
// and NTLM offered, fast heartbeats and short streams) and the Creatio
// stand-in. Mailboxes alice, bob and carol @example.com.
type exchangeEnv struct {
	*env
	ex *ewsfake.Server
}

var exchangeUsers = map[string]string{"alice@example.com": "alicepw", "bob@example.com": "bobpw", "carol@example.com": "carolpw"}

func newExchangeEnv(t *testing.T, fo ewsfake.Options, tweak func(*config.Config, *ewsfake.Server)) *exchangeEnv {
	t.Helper()
	fo.TLS = true
	if fo.Heartbeat == 0 {
		fo.Heartbeat = 200 * time.Millisecond
	}
	if fo.ConnectionLifetime == 0 {
		fo.ConnectionLifetime = 3 * time.Second
	}
	ex := ewsfake.NewT(t, fo)
	for user, pw := range exchangeUsers {
		if err := ex.AddMailbox(user, "CORP\\"+strings.TrimSuffix(user, "@example.com"), pw); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ex.CertPEM()) {
		t.Fatal("the fake's certificate does not parse")
	}
	col := testenv.NewCollectorT(t)
	cfg := config.Default()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.IMAPFolderPoll = 500 * time.Millisecond
	cfg.IMAPDialTimeout = 5 * time.Second
	cfg.EWSClockSkew = 0 // the fake's clock is ours
	cfg.EWSHeartbeatTimeout = 2 * time.Second
	if tweak != nil {
		tweak(&cfg, ex)
	}
	logs := &logBuffer{t: t}
	log, _ := obs.NewLogger(logs, "text", "debug")
	a, err := app.New(cfg, log, "e2e", &app.Options{
		IMAPTLS:         &tls.Config{RootCAs: pool},
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
		for _, secret := range []string{"alicepw", "bobpw", "carolpw", wrongPassword, "svcpw"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the service logged the password %q", secret)
			}
		}
	})
	return &exchangeEnv{env: &env{t: t, logs: logs, col: col, app: a, base: "http://" + a.Addr()}, ex: ex}
}

// exchangeSpec is what a test varies in an Exchange mailbox's credentials.
type exchangeSpec struct {
	ID, User, Password string
	ServiceURL         string // default: the fake's EWS URL
	Folders            []string
	Mark               bool   // FeatureValues.MarkEmailsAsSynchronized
	FolderClass        string // FolderClassName (folders call)
	Context            string
	Token              string // an OAuth access token: UseOAuth, no password
	Autodiscover       bool   // IsAutodiscover, no ServiceUrl
}

// credentials renders the mailbox as Creatio does for Exchange: unquoted
// keys, ServerTypeId Exchange, Port 0, EWS folder ids.
func (e *exchangeEnv) credentials(s exchangeSpec) string {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	url := s.ServiceURL
	if url == "" {
		url = e.ex.URL()
	}
	folders, _ := json.Marshal(s.Folders)
	if s.Folders == nil {
		folders = []byte("[]")
	}
	class := "null"
	if s.FolderClass != "" {
		class = q(s.FolderClass)
	}
	ctx := s.Context
	if ctx == "" {
		ctx = "{UserRequested:true,HasError:false}"
	}
	serviceURL, redirect := q(url), `""`
	if s.Autodiscover {
		serviceURL, redirect = "null", `".*"`
	}
	return fmt.Sprintf(`{FolderIds:%s,PersonalMetrics:false,UseFullEmail:true,BpmUserTimeZone:"Russian Standard Time",`+
		`FeatureValues:{MarkEmailsAsSynchronized:%v,UseBinaryData:false},BpmUser:"Supervisor",BpmEndpoint:%s,`+
		`BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:%s,Port:0,UseOAuth:%v,IsAutodiscover:%v,`+
		`AutodiscoverRedirectUrl:%s,Context:%s,ServerTypeId:"%s",UseSsl:true,SubscriptionTtl:0,FolderClassName:%s,`+
		`SecureOption:2,Id:%s,UserName:%s,Password:%s,AccessToken:%s}`,
		folders, s.Mark, q(e.col.Endpoint()), q(s.User), serviceURL, s.Token != "", s.Autodiscover, redirect, q(ctx),
		exchangeServerType, class, q(s.ID), q(s.User), q(s.Password), q(s.Token))
}

func (e *exchangeEnv) create(s exchangeSpec) {
	e.t.Helper()
	e.mustPost("/api/listeners/create", "["+e.credentials(s)+"]")
}

func (e *exchangeEnv) deliver(user, folder string, raw []byte) string {
	e.t.Helper()
	id, err := e.ex.Deliver(user, folder, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// once fails the test unless every prefix was delivered exactly once.
func (e *env) once(prefixes ...string) {
	e.t.Helper()
	for _, p := range prefixes {
		if n := len(e.emails(p)); n != 1 {
			e.t.Errorf("%q delivered %d times, want exactly once", p, n)
		}
	}
}

// TestExchangeLifecycle is the Exchange acceptance timeline through the
// Creatio API: exists, a rich item delivered in full and marked, a stream cut
// mid-envelope, a server restart that forgets subscriptions, 30 s of
// ErrorServerBusy, wrong credentials, and close.
func TestExchangeLifecycle(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{}, nil)
	const id = "e0000000-0000-4000-8000-000000000001"
	e.deliver("alice@example.com", "inbox", simpleMail("before-subscription", "old@example.com"))
	time.Sleep(1100 * time.Millisecond) // arrival times have whole seconds
	e.create(exchangeSpec{ID: id, User: "alice@example.com", Password: "alicepw", Mark: true})
	st := e.waitState(id, "exists", 10*time.Second)
	if f := anyStrings(st["Folders"]); len(f) != 1 || f[0] != e.ex.FolderID("alice@example.com", "inbox") {
		t.Errorf("watched folders %v, want the inbox's id", f)
	}
	waitFor(t, "one stream and one subscription at the fake", func() bool {
		s := e.ex.Stats()
		return s.OpenStreams == 1 && s.Subscriptions == 1
	})

	// 1. A rich item arrives complete, in Creatio's shape, and is marked.
	raw, png, pdf := richMail("rich-1@example.com")
	item := e.deliver("alice@example.com", "inbox", raw)
	got := e.waitEmails("Привет", 1, 10*time.Second)[0]
	checkRichEmail(t, got.Data, png, pdf)
	if got.Subscription["MailboxId"] != id || got.Subscription["SysAdminUnit"] != "Supervisor" {
		t.Errorf("SubscriptionInfo = %v", got.Subscription)
	}
	if ts, _ := got.Subscription["EventTimeStamp"].(float64); ts < 6.39e17 {
		t.Errorf("EventTimeStamp = %v, want .NET ticks of now", got.Subscription["EventTimeStamp"])
	}
	waitFor(t, "the delivered item gets the Creatio category", func() bool {
		it, err := e.ex.Item("alice@example.com", item)
		return err == nil && slices.Contains(it.Categories, "Creatio")
	})

	// 2. The stream is cut in the middle of an envelope: mail sent around the
	// cut arrives once.
	e.deliver("alice@example.com", "inbox", simpleMail("cut-1", "cut-1@example.com"))
	e.ex.DropStreams()
	e.deliver("alice@example.com", "inbox", simpleMail("cut-2", "cut-2@example.com"))
	e.waitEmails("cut-", 2, 15*time.Second)

	// 3. The server restarts and forgets every subscription.
	e.ex.Restart()
	e.deliver("alice@example.com", "inbox", simpleMail("restart-1", "restart-1@example.com"))
	e.waitEmails("restart-1", 1, 15*time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("restart-2", "restart-2@example.com"))
	e.waitEmails("restart-2", 1, 15*time.Second)

	// 4. 30 s of ErrorServerBusy with a 2 s back-off: mail arriving meanwhile
	// comes once the server serves again; the mailbox never fails.
	e.ex.Busy(30*time.Second, 2*time.Second)
	busyStart := time.Now()
	e.ex.DropStreams() // the next stream request meets the throttling
	for i := range 3 {
		e.deliver("alice@example.com", "inbox", simpleMail(fmt.Sprintf("busy-%d", i), fmt.Sprintf("busy-%d@example.com", i)))
		time.Sleep(time.Second)
	}
	e.waitEmails("busy-", 3, 60*time.Second)
	if time.Since(busyStart) < 25*time.Second {
		t.Errorf("mail delivered %v into a 30 s throttling window", time.Since(busyStart))
	}
	if n := countFor(e.col.Requests("ProcessMailboxState"), id); n != 0 {
		t.Errorf("throttling was reported to Creatio %d times", n)
	}
	e.once("Привет", "cut-1", "cut-2", "restart-1", "restart-2", "busy-0", "busy-1", "busy-2")
	if n := len(e.emails("before-subscription")); n != 0 {
		t.Errorf("mail from before the subscription was delivered %d times", n)
	}

	// 5. Wrong credentials reach ProcessMailboxState with Exchange's class.
	const bad = "e0000000-0000-4000-8000-0000000000bd"
	e.create(exchangeSpec{ID: bad, User: "bob@example.com", Password: wrongPassword, Context: "{UserRequested:false,HasError:true}"})
	st = e.waitState(bad, "error", 10*time.Second)
	if st["ErrorClass"] != "auth" || st["ExceptionClassName"] != "Microsoft.Exchange.WebServices.Data.ServiceRequestException" {
		t.Errorf("wrong password state = %v", st)
	}
	e.waitRequestsFor("ProcessMailboxState", bad, func(m map[string]any) bool {
		return m["Avaliable"] == false && m["ExceptionClassName"] == "Microsoft.Exchange.WebServices.Data.ServiceRequestException" &&
			strings.Contains(fmt.Sprint(m["ExceptionMessage"]), "401")
	})

	// 6. Close: state closed, the subscription's stream ends.
	e.mustPost("/api/listeners/close", `["`+id+`","`+bad+`"]`)
	if s := e.state(id); s["State"] != "closed" {
		t.Fatalf("after close state = %v", s)
	}
	waitFor(t, "no stream left", func() bool { return e.ex.Stats().OpenStreams == 0 })
}

// A mailbox watching chosen folders gets mail in each of them, and nothing
// from folders it does not watch.
func TestExchangeChosenFolders(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{}, nil)
	const id = "e0000000-0000-4000-8000-000000000002"
	projects, err := e.ex.CreateFolder("carol@example.com", e.ex.FolderID("carol@example.com", "inbox"), "Projects", "IPF.Note")
	if err != nil {
		t.Fatal(err)
	}
	e.create(exchangeSpec{ID: id, User: "carol@example.com", Password: "carolpw",
		Folders: []string{projects, e.ex.FolderID("carol@example.com", "inbox")}})
	e.waitState(id, "exists", 10*time.Second)
	e.deliver("carol@example.com", projects, simpleMail("in-projects", "p1@example.com"))
	e.deliver("carol@example.com", "inbox", simpleMail("in-inbox", "i1@example.com"))
	e.deliver("carol@example.com", "junkemail", simpleMail("in-junk", "j1@example.com"))
	e.waitEmails("in-", 2, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	e.once("in-projects", "in-inbox")
	if n := len(e.emails("in-junk")); n != 0 {
		t.Errorf("mail of an unwatched folder delivered %d times", n)
	}
}

// Folders, validate, synchronize (ticks) and send for an Exchange mailbox.
func TestExchangeMailboxCalls(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{}, func(c *config.Config, _ *ewsfake.Server) { c.ValidateTimeout = 5 * time.Second })
	const id = "e0000000-0000-4000-8000-000000000003"
	alice := exchangeSpec{ID: id, User: "alice@example.com", Password: "alicepw"}

	// Folders: Creatio asks for mail folders (IPF.Note) and gets EWS ids with
	// parents; calendars and contacts are left out.
	projects, err := e.ex.CreateFolder("alice@example.com", e.ex.FolderID("alice@example.com", "inbox"), "Projects", "IPF.Note")
	if err != nil {
		t.Fatal(err)
	}
	withClass := alice
	withClass.FolderClass = "IPF.Note"
	var folders []struct{ Id, Name, ParentId string }
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/folders", e.credentials(withClass))), &folders); err != nil {
		t.Fatal(err)
	}
	byName := map[string]struct{ Id, ParentId string }{}
	for _, f := range folders {
		byName[f.Name] = struct{ Id, ParentId string }{f.Id, f.ParentId}
	}
	inbox := e.ex.FolderID("alice@example.com", "inbox")
	if byName["Inbox"].Id != inbox || byName["Projects"].Id != projects || byName["Projects"].ParentId != inbox {
		t.Errorf("folders = %+v", folders)
	}
	for _, name := range []string{"Calendar", "Contacts"} {
		if _, ok := byName[name]; ok {
			t.Errorf("folders for IPF.Note list %s: %+v", name, folders)
		}
	}
	if _, ok := byName["Sent Items"]; !ok {
		t.Errorf("folders miss Sent Items: %+v", folders)
	}

	// Validate: precise messages.
	validate := func(s exchangeSpec) validation {
		var v validation
		if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.credentials(s))), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := validate(alice); !v.IsValid {
		t.Errorf("good credentials: %+v", v)
	}
	wrong := alice
	wrong.Password = wrongPassword
	if v := validate(wrong); v.IsValid || !strings.Contains(v.Message, "Authentication failed") || !strings.Contains(v.Message, "401") {
		t.Errorf("wrong password: %+v", v)
	}
	host := alice
	host.ServiceURL = "no-such-host.invalid"
	if v := validate(host); v.IsValid || !strings.Contains(v.Message, "Unknown Exchange server host") {
		t.Errorf("unknown host: %+v", v)
	}
	if err := e.ex.DisableEWS("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if v := validate(exchangeSpec{ID: id, User: "bob@example.com", Password: "bobpw"}); v.IsValid || !strings.Contains(v.Message, "disabled") {
		t.Errorf("EWS disabled: %+v", v)
	}

	// Synchronize with Creatio's ticks filter: what arrived since the instant,
	// from every watched folder.
	e.deliver("alice@example.com", "inbox", simpleMail("hist-old", "h0@example.com"))
	time.Sleep(1100 * time.Millisecond)
	since := time.Now().Truncate(time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("hist-new-1", "h1@example.com"))
	e.deliver("alice@example.com", projects, simpleMail("hist-new-2", "h2@example.com"))
	withFolders := alice
	withFolders.Folders = []string{inbox, projects}
	ticks := since.UTC().UnixNano()/100 + 621355968000000000
	body := fmt.Sprintf(`{"Credentials":%s,"Filters":"%d"}`, e.credentials(withFolders), ticks)
	e.mustPost("/api/email/synchronize", body)
	e.waitEmails("hist-new-", 2, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(e.emails("hist-old")); n != 0 {
		t.Errorf("mail from before the filter delivered %d times", n)
	}
	e.once("hist-new-1", "hist-new-2")

	// Send through EWS: Exchange files the copy and delivers to bob.
	send := fmt.Sprintf(`{"Email":{"Subject":"sent through ews","Body":"<p>hello</p>","IsHtmlBody":true,`+
		`"Sender":"alice@example.com","Recepients":["bob@example.com"],"Importance":1,"Attachments":[]},`+
		`"Attachments":null,"Credentials":%s}`, e.credentials(alice))
	req, _ := http.NewRequest(http.MethodPost, e.base+"/apiv2/email/send", strings.NewReader(send))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	sent, err := e.ex.Sent("alice@example.com")
	if err != nil || len(sent) != 1 || !strings.Contains(string(sent[0]), "Subject: sent through ews") {
		t.Fatalf("fake Sent = %d messages, %v", len(sent), err)
	}
	items, err := e.ex.Items("bob@example.com", "inbox")
	if err != nil || len(items) != 1 || items[0].Subject != "sent through ews" {
		t.Errorf("bob's inbox = %+v, %v", items, err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With an impersonation account, mailboxes share streams in groups (here of
// 5): 12 mailboxes need 3 connections, all get their mail, and a server
// restart that forgets the subscriptions loses nothing.
func TestExchangeImpersonationGroups(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{ServiceAccount: "svc@example.com", ServicePassword: "svcpw"}, func(c *config.Config, _ *ewsfake.Server) {
		c.EWSImpersonationUser, c.EWSImpersonationPassword, c.EWSGroupSize = "svc@example.com", "svcpw", 5
	})
	var users []string
	for i := range 12 {
		u := fmt.Sprintf("g%d@example.com", i)
		if err := e.ex.AddMailbox(u, "", "gpw"); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
		e.create(exchangeSpec{ID: fmt.Sprintf("e0000000-0000-4000-8000-0000000001%02d", i), User: u, Password: "gpw"})
	}
	for i := range users {
		e.waitState(fmt.Sprintf("e0000000-0000-4000-8000-0000000001%02d", i), "exists", 15*time.Second)
	}
	for i, u := range users {
		e.deliver(u, "inbox", simpleMail(fmt.Sprintf("grouped-%02d", i), fmt.Sprintf("g%d@example.com", i)))
	}
	e.waitEmails("grouped-", len(users), 20*time.Second)
	// A group re-issues its stream when members join (one closes as the next
	// opens), so the count is waited for, and the most ever open checked.
	waitFor(t, "3 streams open for 12 mailboxes in groups of 5", func() bool { return e.ex.Stats().OpenStreams == 3 })
	if s := e.ex.Stats(); s.MaxOpenStreams > 3 {
		t.Errorf("fake: at most %d streams were open, want 3 for 12 mailboxes in groups of 5", s.MaxOpenStreams)
	}
	e.ex.Restart()
	for i, u := range users {
		e.deliver(u, "inbox", simpleMail(fmt.Sprintf("regrouped-%02d", i), fmt.Sprintf("rg%d@example.com", i)))
	}
	e.waitEmails("regrouped-", len(users), 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	for i := range users {
		e.once(fmt.Sprintf("grouped-%02d", i), fmt.Sprintf("regrouped-%02d", i))
	}
}

// OAuth: the bearer token is used, and when Exchange rejects it the service
// asks Creatio for a fresh one (RefreshToken) and resumes with the token
// Creatio sends through update.
func TestExchangeOAuthRefresh(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{Auth: ewsfake.AuthBearer}, func(c *config.Config, _ *ewsfake.Server) { c.TokenRefreshWait = 10 * time.Second })
	const id = "e0000000-0000-4000-8000-000000000201"
	if err := e.ex.AddToken("token-one", "alice@example.com", time.Now().Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.create(exchangeSpec{ID: id, User: "alice@example.com", Token: "token-one"})
	e.waitState(id, "exists", 10*time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("oauth-1", "o1@example.com"))
	e.waitEmails("oauth-1", 1, 10*time.Second)
	// The token expires; the next stream is refused and Creatio is asked.
	e.waitRequests("RefreshToken", 1)
	if err := e.ex.AddToken("token-two", "alice@example.com", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.mustPost("/api/listeners/update", "["+e.credentials(exchangeSpec{ID: id, User: "alice@example.com", Token: "token-two"})+"]")
	e.deliver("alice@example.com", "inbox", simpleMail("oauth-2", "o2@example.com"))
	e.waitEmails("oauth-2", 1, 15*time.Second)
	e.once("oauth-1", "oauth-2")
}

// Autodiscover: a mailbox with IsAutodiscover and no ServiceUrl finds its EWS
// URL (here through EL_EWS_AUTODISCOVER_URL, as for an internal autodiscover
// host), validates, subscribes and gets its mail.
func TestExchangeAutodiscover(t *testing.T) {
	e := newExchangeEnv(t, ewsfake.Options{}, func(c *config.Config, ex *ewsfake.Server) { c.EWSAutodiscoverURLs = ex.BaseURL() })
	const id = "e0000000-0000-4000-8000-000000000301"
	spec := exchangeSpec{ID: id, User: "alice@example.com", Password: "alicepw", Autodiscover: true}
	var v validation
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.credentials(spec))), &v); err != nil {
		t.Fatal(err)
	}
	if !v.IsValid {
		t.Fatalf("validate through autodiscover: %+v", v)
	}
	e.create(spec)
	e.waitState(id, "exists", 10*time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("discovered", "d1@example.com"))
	e.waitEmails("discovered", 1, 10*time.Second)
	if n := e.ex.Stats().Requests["autodiscover.svc"] + e.ex.Stats().Requests["autodiscover.xml"]; n == 0 {
		t.Error("the fake's autodiscover was never asked")
	}
	bad := spec
	bad.Password = wrongPassword
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.credentials(bad))), &v); err != nil {
		t.Fatal(err)
	}
	if v.IsValid || !strings.Contains(v.Message, "Authentication failed") {
		t.Errorf("autodiscover with a wrong password: %+v", v)
	}
}
