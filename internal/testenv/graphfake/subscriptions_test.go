// SPDX-License-Identifier: Apache-2.0

package graphfake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fastNotify makes notification retries quick enough for tests.
var fastNotify = Options{
	NotifyBatchWindow:  2 * time.Millisecond,
	NotifyRetryInitial: 10 * time.Millisecond,
	NotifyRetryMax:     40 * time.Millisecond,
	NotifyRetryFor:     2 * time.Second,
	NotifyTimeout:      500 * time.Millisecond,
	ValidationTimeout:  300 * time.Millisecond,
}

func TestSubscriptionHandshake(t *testing.T) {
	s, c := newFake(t, fastNotify)
	r := newReceiver(t)
	lc := newReceiver(t)
	sub := c.subscribe(r.srv.URL+"/notify?tenant=x", lc.srv.URL, "users/"+alice+"/mailFolders('inbox')/messages", "created,updated")
	if !isGUID(str(sub, "id")) || str(sub, "clientState") != "secret-state" || str(sub, "applicationId") != s.ClientID() ||
		str(sub, "latestSupportedTlsVersion") != "v1_2" || str(sub, "lifecycleNotificationUrl") != lc.srv.URL || str(sub, "creatorId") == "" {
		t.Errorf("subscription: %v", sub)
	}
	// Both URLs were validated with a readable token that needed decoding.
	if rt, lt := r.tokenList(), lc.tokenList(); len(rt) != 1 || len(lt) != 1 || !strings.HasPrefix(rt[0], "Validation: ") {
		t.Errorf("validation tokens: %q %q", rt, lt)
	}
	if l := s.Subscriptions(); len(l) != 1 || l[0].ID != str(sub, "id") || l[0].User != alice {
		t.Errorf("Subscriptions: %+v", l)
	}
	if got := values(c.call(200, "GET", "/subscriptions", nil)); len(got) != 1 {
		t.Errorf("GET /subscriptions: %v", got)
	}

	// Failed handshakes: an error status, an encoded echo, a timeout.
	for _, mode := range []string{"500", "wrong"} {
		bad := newReceiver(t)
		bad.validate = mode
		resp, body := c.do("POST", "/subscriptions", mustJSON(t, map[string]any{"changeType": "created", "notificationUrl": bad.srv.URL,
			"resource": "/users/" + alice + "/messages", "expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)}))
		if resp.StatusCode != 400 || errCode(t, body) != "ValidationError" || !strings.Contains(string(body), "Subscription validation request failed") {
			t.Errorf("validation %s: %d %s", mode, resp.StatusCode, body)
		}
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { time.Sleep(500 * time.Millisecond) }))
	t.Cleanup(slow.Close)
	if resp, body := c.do("POST", "/subscriptions", mustJSON(t, map[string]any{"changeType": "created", "notificationUrl": slow.URL,
		"resource": "/users/" + alice + "/messages", "expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)})); resp.StatusCode != 400 {
		t.Errorf("slow validation: %d %s", resp.StatusCode, body)
	}
	// Requests Graph refuses before any validation.
	for name, body := range map[string]map[string]any{
		"too long":     {"changeType": "created", "notificationUrl": r.srv.URL, "resource": "me/messages", "expirationDateTime": time.Now().Add(5 * 24 * time.Hour).Format(time.RFC3339)},
		"not loopback": {"changeType": "created", "notificationUrl": "https://example.com/hook", "resource": "users/" + alice + "/messages", "expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)},
		"bad resource": {"changeType": "created", "notificationUrl": r.srv.URL, "resource": "users/" + alice + "/events", "expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)},
		"bad type":     {"changeType": "moved", "notificationUrl": r.srv.URL, "resource": "users/" + alice + "/messages", "expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)},
	} {
		if resp, b := c.do("POST", "/subscriptions", mustJSON(t, body)); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
	if n := len(r.tokenList()); n != 1 {
		t.Errorf("refused requests were validated: %d", n)
	}

	// Short expirations are moved out to 45 minutes; renewal and deletion.
	id := str(sub, "id")
	renewed := c.call(200, "PATCH", "/subscriptions/"+id, map[string]any{"expirationDateTime": time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)})
	exp, err := time.Parse(time.RFC3339Nano, str(renewed, "expirationDateTime"))
	if err != nil || exp.Before(time.Now().Add(44*time.Minute)) {
		t.Errorf("renewed: %v %v", renewed, err)
	}
	c.call(204, "POST", "/subscriptions/"+id+"/reauthorize", nil)
	c.call(204, "DELETE", "/subscriptions/"+id, nil)
	if resp, body := c.do("GET", "/subscriptions/"+id, nil); resp.StatusCode != 404 {
		t.Errorf("deleted subscription: %d %s", resp.StatusCode, body)
	}
	if st := s.Stats(); st.Subscriptions != 0 || st.Validations != 5 {
		t.Errorf("stats: %+v", st)
	}
}

func TestNotifications(t *testing.T) {
	o := fastNotify
	o.NotifyBatchWindow = 30 * time.Millisecond // room for a burst under -race
	s, c := newFake(t, o)
	r := newReceiver(t)
	sub := c.subscribe(r.srv.URL, "", "/users/"+s.UserID(alice)+"/mailFolders/inbox/messages", "created")
	other, err := s.CreateFolder(alice, "", "Other")
	mustOK(t, err)

	id, err := s.Deliver(alice, "inbox", testMessage("n", bob, alice))
	mustOK(t, err)
	_, err = s.Deliver(alice, other, testMessage("elsewhere", bob, alice)) // not watched
	mustOK(t, err)
	mustOK(t, s.MarkRead(alice, id, true)) // "updated" is not subscribed
	waitFor(t, 2*time.Second, "notification", func() bool { return len(r.items()) >= 1 })
	time.Sleep(20 * time.Millisecond)
	items := r.items()
	if len(items) != 1 {
		t.Fatalf("items: %v", items)
	}
	n := items[0]
	rd, _ := n["resourceData"].(map[string]any)
	wantRes := "Users/" + s.UserID(alice) + "/Messages/" + id
	if str(n, "subscriptionId") != str(sub, "id") || str(n, "changeType") != "created" || str(n, "clientState") != "secret-state" ||
		str(n, "tenantId") != s.Tenant() || str(n, "resource") != wantRes || str(rd, "id") != id ||
		str(rd, "@odata.type") != "#Microsoft.Graph.Message" || str(rd, "@odata.id") != wantRes || str(n, "subscriptionExpirationDateTime") == "" {
		t.Errorf("notification: %v", n)
	}

	// Several changes within the batch window arrive in one POST.
	posts := r.postCount()
	for range 3 {
		_, err := s.Deliver(alice, "inbox", testMessage("burst", bob, alice))
		mustOK(t, err)
	}
	waitFor(t, 2*time.Second, "burst", func() bool { return len(r.items()) >= 4 })
	if got := r.postCount() - posts; got != 1 {
		t.Errorf("burst took %d POSTs", got)
	}

	// A receiver failing with 500 gets the notification again.
	r.mu.Lock()
	r.status = []int{500, 500}
	r.mu.Unlock()
	retried, err := s.Deliver(alice, "inbox", testMessage("retry", bob, alice))
	mustOK(t, err)
	waitFor(t, 2*time.Second, "retries", func() bool { return r.postCount() >= posts+4 })
	count := 0
	for _, it := range r.items() {
		if rd, _ := it["resourceData"].(map[string]any); str(rd, "id") == retried {
			count++
		}
	}
	if count != 3 {
		t.Errorf("retried notification seen %d times", count)
	}
	// The fake counts a POST once it has its answer.
	waitFor(t, time.Second, "stats", func() bool {
		st := s.Stats()
		return st.NotificationFailures == 2 && st.Notifications == 7 && st.NotificationPosts == int64(r.postCount())
	})

	// Dropped notifications and expired subscriptions produce nothing.
	s.DropNotifications(true)
	_, err = s.Deliver(alice, "inbox", testMessage("lost", bob, alice))
	mustOK(t, err)
	s.DropNotifications(false)
	time.Sleep(30 * time.Millisecond)
	if got := len(r.items()); got != 7 {
		t.Errorf("after DropNotifications: %d items", got)
	}
}

func TestNotificationGiveUp(t *testing.T) {
	o := fastNotify
	o.NotifyRetryFor = 100 * time.Millisecond
	s, c := newFake(t, o)
	r := newReceiver(t)
	c.subscribe(r.srv.URL, "", "users/"+alice+"/messages", "created")
	r.mu.Lock()
	r.status = []int{503, 503, 503, 503, 503, 503, 503, 503, 503, 503}
	r.mu.Unlock()
	_, err := s.Deliver(alice, "inbox", testMessage("x", bob, alice))
	mustOK(t, err)
	waitFor(t, 2*time.Second, "give up", func() bool { return s.Stats().NotificationsDropped == 1 })
	if n := r.postCount(); n < 2 || n > 6 {
		t.Errorf("%d attempts", n)
	}
}

func TestLifecycleEvents(t *testing.T) {
	o := fastNotify
	o.ReauthorizationGrace = time.Millisecond
	s, _ := newFake(t, o)
	r := newReceiver(t)
	lc := newReceiver(t)
	d := &client{t: t, s: s, hc: http.DefaultClient, token: s.DelegatedToken(alice, []string{"Mail.Read"}, 0)}
	sub := d.subscribe(r.srv.URL, lc.srv.URL, "me/mailFolders('inbox')/messages", "created")
	id := str(sub, "id")
	if str(sub, "creatorId") != s.UserID(alice) {
		t.Errorf("creatorId: %v", sub)
	}
	// A subscription without a lifecycle URL gets no lifecycle events.
	plain := newReceiver(t)
	d.subscribe(plain.srv.URL, "", "me/messages", "created")

	event := func(want string) map[string]any {
		t.Helper()
		var found map[string]any
		waitFor(t, 2*time.Second, want, func() bool {
			for _, it := range lc.items() {
				if str(it, "lifecycleEvent") == want {
					found = it
					return true
				}
			}
			return false
		})
		return found
	}
	s.RequireReauthorization(alice)
	ev := event("reauthorizationRequired")
	if str(ev, "subscriptionId") != id || str(ev, "clientState") != "secret-state" || str(ev, "tenantId") != s.Tenant() ||
		str(ev, "subscriptionExpirationDateTime") == "" {
		t.Errorf("lifecycle event: %v", ev)
	}
	// After the grace, notifications pause until the client reauthorizes.
	time.Sleep(5 * time.Millisecond)
	_, err := s.Deliver(alice, "inbox", testMessage("paused", bob, alice))
	mustOK(t, err)
	d.call(204, "POST", "/subscriptions/"+id+"/reauthorize", nil)
	resumed, err := s.Deliver(alice, "inbox", testMessage("resumed", bob, alice))
	mustOK(t, err)
	waitFor(t, 2*time.Second, "resumed notification", func() bool { return len(r.items()) >= 1 })
	time.Sleep(20 * time.Millisecond)
	if items := r.items(); len(items) != 1 || str(items[0]["resourceData"].(map[string]any), "id") != resumed {
		t.Errorf("after reauthorization: %v", items)
	}

	s.SendMissed(alice)
	event("missed")
	s.RemoveSubscriptions(alice)
	event("subscriptionRemoved")
	if l := s.Subscriptions(); len(l) != 0 {
		t.Errorf("removed subscriptions remain: %+v", l)
	}
	_, err = s.Deliver(alice, "inbox", testMessage("gone", bob, alice))
	mustOK(t, err)
	time.Sleep(30 * time.Millisecond)
	if n := len(r.items()); n != 1 {
		t.Errorf("notified after removal: %d", n)
	}
	// The plain subscription got change notifications only.
	for _, it := range plain.items() {
		if it["lifecycleEvent"] != nil {
			t.Errorf("lifecycle event without lifecycle URL: %v", it)
		}
	}
	if st := s.Stats(); st.NotificationsDropped < 1 || st.LifecycleNotifications != 3 {
		t.Errorf("stats: %+v", st)
	}
	// Another user's delegated token sees none of alice's subscriptions.
	e := &client{t: t, s: s, hc: http.DefaultClient, token: s.DelegatedToken(bob, []string{"Mail.Read"}, 0)}
	if got := values(e.call(200, "GET", "/subscriptions", nil)); len(got) != 0 {
		t.Errorf("bob sees %v", got)
	}
}
