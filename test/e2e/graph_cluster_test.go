// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv"
	"github.com/emaillistener/emaillistener/internal/testenv/graphfake"
)

// TestClusterGraphNotifications: two nodes behind one notification URL, as
// behind a load balancer. Graph posts every change notification to the node
// that does not serve the mailbox; that node relays it through Redis to the
// one that does, which delivers at once instead of at its safety poll
// (5 minutes here).
func TestClusterGraphNotifications(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	g := graphfake.NewT(t, graphfake.Options{})
	users := []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	for _, u := range users {
		if err := g.AddMailbox(u); err != nil {
			t.Fatal(err)
		}
	}
	col := testenv.NewCollectorT(t)
	var target atomic.Pointer[url.URL]
	front := newLoopbackServer(t, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target.Load()) }})
	graphCfg := func(c *config.Config) {
		c.GraphURL, c.GraphLoginURL = g.URL(), g.LoginURL()
		c.GraphTenantID, c.GraphClientID, c.GraphClientSecret = g.Tenant(), g.ClientID(), config.Secret(g.ClientSecret())
		c.GraphNotificationURL = front + "/graph/Notifications"
		c.GraphPollInterval = 30 * time.Second // safety polls every 5 min: notifications must do the work
		c.EWSClockSkew = 0
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	nodes := map[string]*clusterNode{}
	for _, id := range []string{"node-a", "node-b"} {
		nodes[id] = startNode(t, id, r, nil, key, graphCfg)
	}
	a := nodes["node-a"]
	u, _ := url.Parse(a.base)
	target.Store(u) // validations while subscribing: any node answers them

	e := &graphEnv{env: &env{t: t, col: col}}
	var ids []string
	for i, user := range users {
		id := fmt.Sprintf("e0000000-0000-4000-8000-0000000c%04d", i)
		ids = append(ids, id)
		a.post(t, "/api/listeners/create", "["+e.creds(id, user, m365Token(user, "EWS.AccessAsUser.All"), nil, false)+"]")
	}
	holders := a.waitAllExist(t, ids, 30*time.Second)
	waitFor(t, "a subscription per mailbox", func() bool { return len(g.Subscriptions()) == len(users) })
	time.Sleep(1500 * time.Millisecond) // the first catch-ups are over

	for i, user := range users {
		// Graph posts to the node that does not serve this mailbox.
		other := "node-a"
		if holders[ids[i]] == "node-a" {
			other = "node-b"
		}
		u, _ := url.Parse(nodes[other].base)
		target.Store(u)
		start := time.Now()
		subject := fmt.Sprintf("relayed-%d", i)
		if _, err := g.Deliver(user, "inbox", simpleMail(subject, subject+"@example.com")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for countSubject(col, subject) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s (served by %s, notified at %s) not delivered within 10 s", subject, holders[ids[i]], other)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("FIGURE notification at %s → relayed → %s delivered in %v", other, holders[ids[i]], time.Since(start).Round(time.Millisecond))
	}
	for i := range users {
		if n := countSubject(col, fmt.Sprintf("relayed-%d", i)); n != 1 {
			t.Errorf("relayed-%d delivered %d times", i, n)
		}
	}
}
