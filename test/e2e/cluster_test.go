// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/app"
	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

type clusterNode struct {
	id   string
	app  *app.App
	base string
	logs *logBuffer
}

// startNode runs one service instance in cluster mode against the shared Redis.
func startNode(t *testing.T, id string, r *testenv.Redis, dc *testenv.Dovecot, key string, tweaks ...func(*config.Config)) *clusterNode {
	t.Helper()
	cfg := config.Default()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeID = id
	cfg.RedisHost = r.Addr
	cfg.SecretKey = config.Secret(key)
	cfg.IMAPFolderPoll = 500 * time.Millisecond
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	logs := &logBuffer{t: t}
	log, _ := obs.NewLogger(logs, "text", "info")
	opts := &app.Options{
		Reconnect:       backoff.Policy{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond},
		DeliveryBackoff: backoff.Policy{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	if dc != nil { // nil: the nodes serve no IMAP mailbox
		opts.IMAPTLS = dc.TLSConfig()
	}
	a, err := app.New(cfg, log.With("node", id), "e2e", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{id: id, app: a, base: "http://" + a.Addr(), logs: logs}
	t.Cleanup(func() { n.stop(t) })
	return n
}

func (n *clusterNode) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.app.Stop(ctx); err != nil {
		t.Errorf("stop %s: %v", n.id, err)
	}
}

func (n *clusterNode) post(t *testing.T, path, body string) string {
	t.Helper()
	resp, err := http.Post(n.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", n.id, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", n.id, path, resp.StatusCode, b)
	}
	return string(b)
}

func (n *clusterNode) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(n.base + path)
	if err != nil {
		t.Fatalf("%s %s: %v", n.id, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s GET %s: %d %s", n.id, path, resp.StatusCode, b)
	}
	return string(b)
}

func (n *clusterNode) states(t *testing.T, ids []string) map[string]map[string]any {
	t.Helper()
	b, _ := json.Marshal(ids)
	var out map[string]map[string]any
	if err := json.Unmarshal([]byte(n.post(t, "/api/listeners/subscriptionsstate", string(b))), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitAllExist polls one node until every id is exists; it returns who holds them.
func (n *clusterNode) waitAllExist(t *testing.T, ids []string, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	var st map[string]map[string]any
	for time.Now().Before(deadline) {
		st = n.states(t, ids)
		all := true
		for _, id := range ids {
			if st[id]["State"] != "exists" {
				all = false
			}
		}
		if all {
			holders := map[string]string{}
			for _, id := range ids {
				holders[id], _ = st[id]["Node"].(string)
			}
			return holders
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("via %s: not all exist after %v: %v", n.id, within, st)
	return nil
}

// TestClusterPlacementAndFailover: two nodes share Redis; mailboxes registered
// through one node spread over both; every node answers for every mailbox;
// when a node stops its mailboxes move to the survivor, and when a third joins
// it takes a share; every email is delivered exactly once throughout.
func TestClusterPlacementAndFailover(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	dc := testenv.NewT(t, testenv.DovecotOptions{AnyPassword: "pw", ExtraConf: "mail_fsync = never"})
	col := testenv.NewCollectorT(t)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	a := startNode(t, "node-a", r, dc, key)
	b := startNode(t, "node-b", r, dc, key)

	const n = 24
	var ids []string
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c1a55000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		body := fmt.Sprintf(`[{Id:"%s",UserName:"u%d@example.com",Password:"pw",ServiceUrl:"%s",Port:%s,SecureOption:0,`+
			`ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"u%d@example.com",FolderIds:["INBOX"]}]`,
			id, i, host, port, imapServerType, col.Endpoint(), i)
		a.post(t, "/api/listeners/create", body)
	}
	holders := b.waitAllExist(t, ids, 30*time.Second) // asked through the other node
	count := map[string]int{}
	for _, h := range holders {
		count[h]++
	}
	if count["node-a"] == 0 || count["node-b"] == 0 || count["node-a"]+count["node-b"] != n {
		t.Fatalf("placement over two nodes: %v", count)
	}
	round := 0
	deliverAll := func(label string) {
		t.Helper()
		round++
		for i := 0; i < n; i++ {
			msg := simpleMail(fmt.Sprintf("%s-%d", label, i), fmt.Sprintf("%s-%d@example.com", label, i))
			if _, err := dc.Append(fmt.Sprintf("u%d@example.com", i), "pw", "INBOX", msg); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = col.WaitFor(ctx, func([]testenv.Request) bool { return countSubject(col, label+"-") >= n })
		if got := countSubject(col, label+"-"); got != n {
			t.Fatalf("%s: %d of %d emails delivered", label, got, n)
		}
	}
	deliverAll("two-nodes")

	// Node A leaves (SIGTERM path): B takes everything over.
	start := time.Now()
	a.stop(t)
	// States are eventually consistent: node-a's last published "exists"
	// stands until node-b publishes its own, a moment later.
	deadline := time.Now().Add(30 * time.Second)
	for {
		holders = b.waitAllExist(t, ids, 30*time.Second)
		onB := 0
		for _, h := range holders {
			if h == "node-b" {
				onB++
			}
		}
		if onB == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after node-a left: holders %v", holders)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("hand-over of %d mailboxes after a graceful stop took %v", count["node-a"], time.Since(start))
	deliverAll("after-leave")

	// Node C joins and takes a share.
	c := startNode(t, "node-c", r, dc, key)
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		holders = c.waitAllExist(t, ids, 30*time.Second)
		onC := 0
		for _, h := range holders {
			if h == "node-c" {
				onC++
			}
		}
		if onC > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	count = map[string]int{}
	for _, h := range holders {
		count[h]++
	}
	if count["node-c"] == 0 {
		t.Fatalf("node-c took nothing: %v", count)
	}
	deliverAll("after-join")

	// Redis restarts empty (no persistence): subscriptions keep running, the
	// registry is written back, and mail keeps flowing.
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		st := c.states(t, ids)
		ok := 0
		for _, id := range ids {
			if st[id]["State"] == "exists" {
				ok++
			}
		}
		if ok == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the Redis restart only %d of %d exist: %v", ok, n, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	deliverAll("after-redis-restart")
	var view struct {
		Mode  string
		Nodes []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(c.get(t, "/api/cluster")), &view); err != nil || view.Mode != "cluster" || len(view.Nodes) != 2 {
		t.Errorf("cluster view = %+v, %v", view, err)
	}
	c.get(t, "/readyz")

	// Exactly once overall.
	seen := map[string]int{}
	for _, m := range col.Emails() {
		seen[m.Data["MessageId"].(string)]++
	}
	for mid, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times", mid, k)
		}
	}
	if len(seen) != 4*n {
		t.Errorf("%d distinct emails, want %d", len(seen), 4*n)
	}
}

func countSubject(col *testenv.Collector, prefix string) int {
	n := 0
	for _, m := range col.Emails() {
		if s, _ := m.Data["Subject"].(string); strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
