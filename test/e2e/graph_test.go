// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/app"
	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/graphfake"
)

// graphEnv is the service against the fake Microsoft Graph (and its token
// endpoint) and the Creatio stand-in. Mailboxes alice, bob and carol
// @example.com exist in the tenant.
type graphEnv struct {
	*env
	g *graphfake.Server
}

type graphSetup struct {
	app     bool // the service has the tenant's application credentials
	webhook bool // EL_GRAPH_NOTIFICATION_URL points at the service
	fake    graphfake.Options
	tweak   func(*config.Config)
}

func newGraphEnv(t *testing.T, s graphSetup) *graphEnv {
	t.Helper()
	g := graphfake.NewT(t, s.fake)
	for _, u := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		if err := g.AddMailbox(u); err != nil {
			t.Fatal(err)
		}
	}
	col := testenv.NewCollectorT(t)
	cfg := config.Default()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.EWSClockSkew = 0 // the fake's clock is ours
	cfg.GraphURL, cfg.GraphLoginURL = g.URL(), g.LoginURL()
	cfg.GraphPollInterval = time.Second
	if s.app {
		cfg.GraphTenantID, cfg.GraphClientID, cfg.GraphClientSecret = g.Tenant(), g.ClientID(), config.Secret(g.ClientSecret())
	}
	// The notification URL is public before the service listens: a proxy
	// in front of it stands in for the load balancer.
	var target atomic.Pointer[url.URL]
	if s.webhook {
		proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target.Load()) }}
		front := newLoopbackServer(t, proxy)
		cfg.GraphNotificationURL = front + "/graph/Notifications"
		cfg.GraphPollInterval = 30 * time.Second // safety polls every 5 min: notifications must do the work
	}
	if s.tweak != nil {
		s.tweak(&cfg)
	}
	logs := &logBuffer{t: t}
	log, _ := obs.NewLogger(logs, "text", "debug")
	a, err := app.New(cfg, log, "e2e", &app.Options{
		Reconnect:       backoff.Policy{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond},
		DeliveryBackoff: backoff.Policy{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://" + a.Addr())
	target.Store(u)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if n := a.Panics().Count("syncer") + a.Panics().Count("httpapi"); n != 0 {
			t.Errorf("%v panics recovered", n)
		}
		if strings.Contains(logs.String(), g.ClientSecret()) {
			t.Error("the service logged the client secret")
		}
	})
	return &graphEnv{env: &env{t: t, logs: logs, col: col, app: a, base: "http://" + a.Addr()}, g: g}
}

// newLoopbackServer serves h on a random loopback port until the test ends.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// creds is Creatio's credentials object for a Microsoft 365 mailbox it
// registered for EWS: ServiceUrl outlook.office365.com, an OAuth token for
// Exchange, and EWS folder ids.
func (e *graphEnv) creds(id, user, token string, folders []string, mark bool) string {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	f, _ := json.Marshal(folders)
	if folders == nil {
		f = []byte("[]")
	}
	return fmt.Sprintf(`{FolderIds:%s,UseFullEmail:true,FeatureValues:{MarkEmailsAsSynchronized:%v,UseBinaryData:false},`+
		`BpmUser:"Supervisor",BpmEndpoint:%s,BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:"outlook.office365.com",`+
		`Port:0,UseOAuth:true,IsAutodiscover:false,ServerTypeId:"%s",UseSsl:true,SecureOption:2,Id:%s,UserName:%s,Password:"",AccessToken:%s}`,
		f, mark, q(e.col.Endpoint()), q(user), exchangeServerType, q(id), q(user), q(token))
}

func (e *graphEnv) deliver(user, folder string, raw []byte) string {
	e.t.Helper()
	id, err := e.g.Deliver(user, folder, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// The Graph acceptance timeline in polling mode, through the Creatio API: a
// Microsoft 365 mailbox registered as Exchange (an EWS token, EWS folder
// ids) is served over Graph with the service's application credentials;
// rich mail arrives complete and is marked; a dead delta link (410 Gone)
// and throttling (429 with Retry-After) lose and duplicate nothing; folders,
// validate, synchronize and send work on Graph.
func TestGraphPolling(t *testing.T) {
	e := newGraphEnv(t, graphSetup{app: true})
	const id = "e0000000-0000-4000-8000-00000000a001"
	token := m365Token("alice@example.com", "EWS.AccessAsUser.All")
	inbox := e.g.FolderID("alice@example.com", "inbox")
	ewsInbox := e.g.EWSFolderID("alice@example.com", inbox)
	e.deliver("alice@example.com", "inbox", simpleMail("before-subscription", "old@example.com"))
	time.Sleep(1100 * time.Millisecond) // arrival times have whole seconds

	e.mustPost("/api/listeners/create", "["+e.creds(id, "alice@example.com", token, []string{ewsInbox}, true)+"]")
	st := e.waitState(id, "exists", 10*time.Second)
	if st["Transport"] != "graph" || fmt.Sprint(st["Folders"]) != "["+inbox+"]" {
		t.Errorf("state = %v, want transport graph watching the inbox's Graph id", st)
	}

	// 1. Rich mail arrives complete, in Creatio's shape, and is marked.
	raw, png, pdf := richMail("rich-1@example.com")
	item := e.deliver("alice@example.com", "inbox", raw)
	got := e.waitEmails("Привет", 1, 10*time.Second)[0]
	checkRichEmail(t, got.Data, png, pdf)
	waitFor(t, "the delivered message gets the Creatio category", func() bool {
		m, err := e.g.Message("alice@example.com", item)
		return err == nil && slices.Contains(m.Categories, "Creatio")
	})

	// 2. Every delta link dies (410 Gone): the resync delivers what is new,
	// once, and nothing delivered before.
	e.deliver("alice@example.com", "inbox", simpleMail("gone-1", "gone-1@example.com"))
	e.waitEmails("gone-1", 1, 10*time.Second)
	e.g.ExpireDeltaTokens("alice@example.com")
	e.deliver("alice@example.com", "inbox", simpleMail("gone-2", "gone-2@example.com"))
	e.waitEmails("gone-2", 1, 10*time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("gone-3", "gone-3@example.com"))
	e.waitEmails("gone-3", 1, 10*time.Second)

	// 3. Throttling: 429 with Retry-After 2 s on the next 6 requests; mail
	// arriving meanwhile comes once, and Creatio hears of no failure.
	before := e.g.Stats().Throttled
	e.g.ThrottleNext(6, 2*time.Second)
	for i := range 3 {
		e.deliver("alice@example.com", "inbox", simpleMail(fmt.Sprintf("throttled-%d", i), fmt.Sprintf("t-%d@example.com", i)))
	}
	e.waitEmails("throttled-", 3, 30*time.Second)
	if n := e.g.Stats().Throttled - before; n < 1 {
		t.Errorf("the fake throttled %d requests", n)
	}
	time.Sleep(1500 * time.Millisecond) // a poll or two more: nothing comes twice
	e.once("Привет", "gone-1", "gone-2", "gone-3", "throttled-0", "throttled-1", "throttled-2")
	if n := len(e.emails("before-subscription")); n != 0 {
		t.Errorf("mail from before the subscription was delivered %d times", n)
	}
	if n := countFor(e.col.Requests("ProcessMailboxState"), id); n != 0 {
		t.Errorf("Creatio was told of %d failures", n)
	}

	// 4. Folders: Graph ids and parents.
	projects, err := e.g.CreateFolder("alice@example.com", inbox, "Projects")
	if err != nil {
		t.Fatal(err)
	}
	var folders []struct{ Id, Name, ParentId string }
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/folders", e.creds(id, "alice@example.com", token, nil, false))), &folders); err != nil {
		t.Fatal(err)
	}
	byName := map[string]struct{ Id, ParentId string }{}
	for _, f := range folders {
		byName[f.Name] = struct{ Id, ParentId string }{f.Id, f.ParentId}
	}
	if byName["Inbox"].Id != inbox || byName["Projects"].Id != projects || byName["Projects"].ParentId != inbox {
		t.Errorf("folders = %+v", folders)
	}

	// 5. Validate: a mailbox the tenant has is valid; one it does not is not.
	var v validation
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.creds(id, "alice@example.com", token, nil, false))), &v); err != nil {
		t.Fatal(err)
	}
	if !v.IsValid {
		t.Errorf("validate alice = %+v", v)
	}
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.creds(id, "nobody@example.com", token, nil, false))), &v); err != nil {
		t.Fatal(err)
	}
	if v.IsValid || !strings.Contains(v.Message, "nobody@example.com") {
		t.Errorf("validate nobody = %+v", v)
	}

	// 6. Synchronize with Creatio's ticks filter: what arrived since then, in
	// both folders.
	time.Sleep(1100 * time.Millisecond)
	since := time.Now().Truncate(time.Second)
	e.deliver("alice@example.com", "inbox", simpleMail("hist-new-1", "h1@example.com"))
	e.deliver("alice@example.com", projects, simpleMail("hist-new-2", "h2@example.com"))
	ticks := since.UTC().UnixNano()/100 + 621355968000000000
	body := fmt.Sprintf(`{"Credentials":%s,"Filters":"%d"}`, e.creds(id, "alice@example.com", token, []string{inbox, projects}, false), ticks)
	e.mustPost("/api/email/synchronize", body)
	e.waitEmails("hist-new-2", 1, 15*time.Second)
	if n := len(e.emails("gone-1")); n != 1 {
		t.Errorf("mail from before the filter delivered again (%d)", n)
	}

	// 7. Send: MIME to sendMail, saved in Sent Items.
	send := fmt.Sprintf(`{"Email":{"Subject":"sent through graph","Body":"<p>hello</p>","IsHtmlBody":true,`+
		`"Sender":"alice@example.com","Recepients":["bob@example.com"],"Importance":1,"Attachments":[]},`+
		`"Attachments":null,"Credentials":%s}`, mustStd(t, e.creds(id, "alice@example.com", token, nil, false)))
	resp, err := http.Post(e.base+"/apiv2/email/send", "application/json", strings.NewReader(send))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	sent := e.g.Sent("alice@example.com")
	if len(sent) != 1 || !strings.Contains(string(sent[0]), "Subject: sent through graph") {
		t.Fatalf("fake Sent = %d messages", len(sent))
	}

	// 8. Close ends the watch: no more requests for the mailbox.
	e.mustPost("/api/listeners/close", `["`+id+`"]`)
	time.Sleep(1500 * time.Millisecond)
	n := e.g.Stats().ByUser["alice@example.com"]
	time.Sleep(2500 * time.Millisecond)
	if m := e.g.Stats().ByUser["alice@example.com"]; m != n {
		t.Errorf("%d requests for a closed mailbox", m-n)
	}
}

// With a notification URL, each watched folder has a change notification
// subscription and mail arrives on notification, long before the next
// (safety) poll; a subscription Graph removes is made anew.
func TestGraphWebhook(t *testing.T) {
	e := newGraphEnv(t, graphSetup{app: true, webhook: true})
	const id = "e0000000-0000-4000-8000-00000000a002"
	token := m365Token("bob@example.com", "EWS.AccessAsUser.All")
	e.mustPost("/api/listeners/create", "["+e.creds(id, "bob@example.com", token, nil, false)+"]")
	e.waitState(id, "exists", 10*time.Second)
	waitFor(t, "a subscription for bob's inbox", func() bool { return len(e.g.Subscriptions()) == 1 })
	sub := e.g.Subscriptions()[0]
	if sub.ClientState == "" || !strings.HasSuffix(sub.NotificationURL, "/graph/Notifications") {
		t.Errorf("subscription = %+v", sub)
	}
	time.Sleep(1500 * time.Millisecond) // the first catch-up is over

	for i := range 3 {
		start := time.Now()
		e.deliver("bob@example.com", "inbox", simpleMail(fmt.Sprintf("pushed-%d", i), fmt.Sprintf("p-%d@example.com", i)))
		e.waitEmails(fmt.Sprintf("pushed-%d", i), 1, 5*time.Second)
		t.Logf("notification → Creatio in %v", time.Since(start))
	}

	// Graph removes the subscription: a new one is made, and mail flows.
	e.g.RemoveSubscriptions("bob@example.com")
	waitFor(t, "a new subscription", func() bool {
		s := e.g.Subscriptions()
		return len(s) == 1 && s[0].ID != sub.ID
	})
	e.deliver("bob@example.com", "inbox", simpleMail("after-removal", "r@example.com"))
	e.waitEmails("after-removal", 1, 5*time.Second)

	// A forged notification (wrong clientState) is refused quietly.
	forged := fmt.Sprintf(`{"value":[{"subscriptionId":%q,"clientState":"forged","changeType":"created","resource":"Users/x/Messages/y"}]}`,
		e.g.Subscriptions()[0].ID)
	resp, err := http.Post(e.base+"/graph/notifications", "application/json", strings.NewReader(forged))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("notification answered %d", resp.StatusCode)
	}
	e.once("pushed-0", "pushed-1", "pushed-2", "after-removal")

	e.mustPost("/api/listeners/close", `["`+id+`"]`)
	waitFor(t, "the subscription deleted", func() bool { return len(e.g.Subscriptions()) == 0 })
}

// Without application credentials, a mailbox whose Creatio token is a
// Graph token is served over Graph with that token.
func TestGraphDelegatedToken(t *testing.T) {
	e := newGraphEnv(t, graphSetup{})
	const id = "e0000000-0000-4000-8000-00000000a003"
	token := e.g.DelegatedToken("carol@example.com", []string{"Mail.ReadWrite", "Mail.Send"}, time.Hour)
	e.mustPost("/api/listeners/create", "["+e.creds(id, "carol@example.com", token, nil, false)+"]")
	st := e.waitState(id, "exists", 10*time.Second)
	if st["Transport"] != "graph" {
		t.Errorf("state = %v", st)
	}
	e.deliver("carol@example.com", "inbox", simpleMail("delegated-1", "d1@example.com"))
	e.waitEmails("delegated-1", 1, 10*time.Second)
	if n := e.g.Stats().TokenRequests; n != 0 {
		t.Errorf("%d client-credentials token requests without application credentials", n)
	}
}

// A delegated Graph token expires: Creatio is asked for a new one
// (RefreshToken), and once it updates the mailbox, mail flows again and
// nothing is delivered twice.
func TestGraphTokenRefresh(t *testing.T) {
	e := newGraphEnv(t, graphSetup{})
	const id = "e0000000-0000-4000-8000-00000000a004"
	first := e.g.DelegatedToken("carol@example.com", []string{"Mail.ReadWrite", "Mail.Send"}, 4*time.Second)
	e.mustPost("/api/listeners/create", "["+e.creds(id, "carol@example.com", first, nil, false)+"]")
	e.waitState(id, "exists", 10*time.Second)
	e.deliver("carol@example.com", "inbox", simpleMail("refresh-1", "r1@example.com"))
	e.waitEmails("refresh-1", 1, 10*time.Second)
	e.waitRequests("RefreshToken", 1)
	second := e.g.DelegatedToken("carol@example.com", []string{"Mail.ReadWrite", "Mail.Send"}, time.Hour)
	e.mustPost("/api/listeners/update", "["+e.creds(id, "carol@example.com", second, nil, false)+"]")
	e.deliver("carol@example.com", "inbox", simpleMail("refresh-2", "r2@example.com"))
	e.waitEmails("refresh-2", 1, 15*time.Second)
	e.once("refresh-1", "refresh-2")
}
