// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv/ewsfake"
)

// TestChaos is the cluster acceptance run: 3 service processes, one Redis, one
// Dovecot and one fake Exchange server, 300 IMAP and 60 Exchange mailboxes and
// a steady stream of mail to both while one node is killed with SIGKILL, a
// fourth joins, another gets SIGTERM and Redis restarts empty. Afterwards
// every email must have arrived (duplicates are counted and reported), the
// fence log must show no mailbox held by two nodes at once, and every live
// node must have answered the API throughout.
func TestChaos(t *testing.T) {
	const mailboxes, exchanges, rate = 300, 60, 25 // emails/s; every fourth to Exchange
	e := newProcEnv(t, true)
	r, dc, col := e.r, e.dc, e.col
	ex := ewsfake.NewT(t, ewsfake.Options{Heartbeat: time.Second, ConnectionLifetime: 20 * time.Second})
	for i := range exchanges {
		if err := ex.AddMailbox(fmt.Sprintf("x%d@example.com", i), "", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	var nodesMu sync.Mutex
	nodes := map[string]*procNode{}
	start := func(id string) *procNode {
		n := e.start(t, id)
		nodesMu.Lock()
		nodes[id] = n
		nodesMu.Unlock()
		return n
	}
	n1, n2, _ := start("n1"), start("n2"), start("n3")

	ids := make([]string, mailboxes)
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < mailboxes; i += 8 {
				ids[i] = fmt.Sprintf("c4a05000-0000-4000-8000-%012d", i)
				n1.post(t, "/api/listeners/create", fmt.Sprintf(`[{Id:"%s",UserName:"u%d@example.com",Password:"pw",ServiceUrl:"%s",Port:%s,`+
					`SecureOption:3,ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"u%d@example.com",FolderIds:["INBOX"]}]`,
					ids[i], i, host, port, imapServerType, col.Endpoint(), i))
			}
		}(w)
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < exchanges; i += 4 {
				id := fmt.Sprintf("c4a0e000-0000-4000-8000-%012d", i)
				n1.post(t, "/api/listeners/create", fmt.Sprintf(`[{Id:"%s",UserName:"x%d@example.com",Password:"pw",ServiceUrl:"%s",Port:0,`+
					`ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"x%d@example.com",FolderIds:[]}]`,
					id, i, ex.URL(), exchangeServerType, col.Endpoint(), i))
			}
		}(w)
	}
	wg.Wait()
	for i := range exchanges {
		ids = append(ids, fmt.Sprintf("c4a0e000-0000-4000-8000-%012d", i))
	}
	t0 := time.Now()
	n2.waitAllExist(t, ids, 120*time.Second)
	t.Logf("%d mailboxes exist on 3 nodes after %v", len(ids), time.Since(t0).Round(100*time.Millisecond))

	// Steady mail and API probes for the whole scenario.
	stop := make(chan struct{})
	var sent []string
	var sentMu sync.Mutex
	var apiErrors, apiCalls atomic.Int64
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			subj := fmt.Sprintf("chaos-%d", i)
			if i%4 == 3 {
				if _, err := ex.Deliver(fmt.Sprintf("x%d@example.com", (i/4)%exchanges), "inbox", simpleMail(subj, subj+"@example.com")); err != nil {
					t.Errorf("deliver: %v", err)
					return
				}
			} else if _, err := dc.Append(fmt.Sprintf("u%d@example.com", i%mailboxes), "pw", "INBOX", simpleMail(subj, subj+"@example.com")); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			sentMu.Lock()
			sent = append(sent, subj)
			sentMu.Unlock()
		}
	}()
	dead := map[string]bool{}
	var deadMu sync.Mutex
	go func() {
		defer bg.Done()
		body, _ := json.Marshal(ids[:20])
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			nodesMu.Lock()
			live := make([]*procNode, 0, len(nodes))
			for id, n := range nodes {
				deadMu.Lock()
				if !dead[id] {
					live = append(live, n)
				}
				deadMu.Unlock()
			}
			nodesMu.Unlock()
			for _, n := range live {
				apiCalls.Add(1)
				resp, err := http.Post(n.base+"/api/listeners/subscriptionsstate", "application/json", strings.NewReader(string(body)))
				deadMu.Lock()
				gone := dead[n.id]
				deadMu.Unlock()
				if gone {
					continue // stopped while we asked
				}
				if err != nil || resp.StatusCode != 200 {
					apiErrors.Add(1)
					t.Logf("API on %s: %v %v", n.id, err, resp)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}
	}()
	markDead := func(id string) {
		deadMu.Lock()
		dead[id] = true
		deadMu.Unlock()
	}
	allOn := func(via *procNode, except string, within time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		for {
			holders := via.waitAllExist(t, ids, within)
			ok := true
			for _, h := range holders {
				if h == except {
					ok = false
				}
			}
			if ok {
				return time.Since(begin)
			}
			if time.Since(begin) > within {
				t.Fatalf("mailboxes still on %s after %v", except, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	time.Sleep(2 * time.Second)
	markDead("n1")
	killAt := time.Now()
	_ = n1.cmd.Process.Signal(syscall.SIGKILL)
	<-n1.exit
	failover := allOn(n2, "n1", 60*time.Second)
	t.Logf("failover after SIGKILL: all mailboxes exist again %v after the kill", time.Since(killAt).Round(100*time.Millisecond))
	_ = failover

	n4 := start("n4")
	time.Sleep(3 * time.Second)
	markDead("n2")
	_ = n2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n2.exit:
	case <-time.After(30 * time.Second):
		t.Fatal("n2 did not exit within 30 s of SIGTERM")
	}
	allOn(n4, "n2", 60*time.Second)
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	close(stop)
	bg.Wait()

	// Every email arrives.
	sentMu.Lock()
	want := append([]string(nil), sent...)
	sentMu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	for {
		got = map[string]int{}
		for _, m := range col.Emails() {
			if s, _ := m.Data["Subject"].(string); strings.HasPrefix(s, "chaos-") {
				got[s]++
			}
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	lost, dups := 0, 0
	var lostIdx []string
	for _, s := range want {
		if got[s] == 0 {
			lost++
			lostIdx = append(lostIdx, strings.TrimPrefix(s, "chaos-"))
		}
	}
	if lost > 0 {
		t.Logf("lost: %s", strings.Join(lostIdx, " "))
	}
	exSent, exDups := 0, 0
	for _, s := range want {
		var i int
		if _, err := fmt.Sscanf(s, "chaos-%d", &i); err == nil && i%4 == 3 {
			exSent++
			exDups += max(got[s]-1, 0)
		}
	}
	for _, k := range got {
		dups += k - 1
	}
	t.Logf("sent %d emails (%d to Exchange): lost %d, duplicates %d (Exchange %d); API calls %d, errors %d",
		len(want), exSent, lost, dups, exDups, apiCalls.Load(), apiErrors.Load())
	if lost != 0 {
		t.Errorf("%d emails lost", lost)
		for id, n := range nodes {
			shown := 0
			for _, l := range n.logLines() {
				if (strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`)) && shown < 15 {
					t.Logf("%s: %s", id, l)
					shown++
				}
			}
		}
	}
	if apiErrors.Load() != 0 {
		t.Errorf("%d API calls to live nodes failed", apiErrors.Load())
	}
	checkFenceLog(t, nodes, map[string]time.Time{"n1": killAt})
}

// checkFenceLog rebuilds each mailbox's holders from the nodes' "lease
// obtained/released" log lines and fails if two nodes' holds overlap.
func checkFenceLog(t *testing.T, nodes map[string]*procNode, killed map[string]time.Time) {
	t.Helper()
	type hold struct {
		node     string
		from, to time.Time
		fence    float64
		open     bool
	}
	holds := map[string][]*hold{}
	openHold := map[string]*hold{} // node|mailbox
	for id, n := range nodes {
		for _, line := range n.logLines() {
			var rec struct {
				Time    time.Time `json:"time"`
				Msg     string    `json:"msg"`
				Mailbox string    `json:"mailbox"`
				Fence   float64   `json:"fence"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Mailbox == "" {
				continue
			}
			switch rec.Msg {
			case "mailbox lease obtained":
				h := &hold{node: id, from: rec.Time, fence: rec.Fence, open: true}
				holds[rec.Mailbox] = append(holds[rec.Mailbox], h)
				openHold[id+"|"+rec.Mailbox] = h
			case "mailbox lease released":
				if h := openHold[id+"|"+rec.Mailbox]; h != nil {
					h.to, h.open = rec.Time, false
					delete(openHold, id+"|"+rec.Mailbox)
				}
			}
		}
	}
	far := time.Now().Add(time.Hour)
	overlaps := 0
	for mb, hs := range holds {
		for _, h := range hs {
			if h.open {
				h.to = far
				if k, ok := killed[h.node]; ok {
					h.to = k
				}
			}
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].from.Before(hs[j].from) })
		for i := 1; i < len(hs); i++ {
			if hs[i].node != hs[i-1].node && hs[i].from.Before(hs[i-1].to) {
				overlaps++
				if overlaps <= 5 {
					t.Errorf("mailbox %s held by %s (fence %.0f) from %v while %s (fence %.0f) held it until %v",
						mb, hs[i].node, hs[i].fence, hs[i].from.Format("15:04:05.000"), hs[i-1].node, hs[i-1].fence, hs[i-1].to.Format("15:04:05.000"))
				}
			}
			if hs[i].fence < hs[i-1].fence {
				t.Errorf("mailbox %s: fence went backwards (%v after %v)", mb, hs[i].fence, hs[i-1].fence)
			}
		}
	}
	t.Logf("fence log: %d mailboxes, %d overlapping holds", len(holds), overlaps)
}
