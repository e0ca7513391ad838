// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRedisOutage: two service processes share Redis, which first hangs
// (SIGSTOP) and then dies, each time for longer than the lease TTL (9 s), the
// second time coming back empty. Throughout, every subscription stays up on
// the node that held it: mail appended during each outage is delivered before
// Redis returns, no lease is lost or handed over, readiness reports the
// outage, and afterwards the cluster carries on with the same holders (leases
// restored by fence) and no email is lost.
func TestRedisOutage(t *testing.T) {
	const n, outage = 20, 14 * time.Second
	e := newProcEnv(t, true)
	r, dc, col := e.r, e.dc, e.col
	nodes := map[string]*procNode{"a": e.start(t, "a"), "b": e.start(t, "b")}
	a := nodes["a"]
	ids := make([]string, n)
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	for i := range ids {
		ids[i] = fmt.Sprintf("c4a0a6e0-0000-4000-8000-%012d", i)
		a.post(t, "/api/listeners/create", fmt.Sprintf(`[{Id:"%s",UserName:"u%d@example.com",Password:"pw",ServiceUrl:"%s",Port:%s,`+
			`SecureOption:3,ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"u%d@example.com",FolderIds:["INBOX"]}]`,
			ids[i], i, host, port, imapServerType, col.Endpoint(), i))
	}
	before := a.waitAllExist(t, ids, 60*time.Second)
	obtained := func() int {
		c := 0
		for _, p := range nodes {
			for _, l := range p.logLines() {
				if strings.Contains(l, `"msg":"mailbox lease obtained"`) {
					c++
				}
			}
		}
		return c
	}
	holds := obtained()

	// Appends one mail per mailbox, then waits for all of them while Redis is
	// still out, and checks that readiness reports the outage.
	phase := func(name string) {
		t.Helper()
		time.Sleep(2 * time.Second) // past the first failing renewals and heartbeats
		for i := range ids {
			if _, err := dc.Append(fmt.Sprintf("u%d@example.com", i), "pw", "INBOX", simpleMail(name+"-"+fmt.Sprint(i), fmt.Sprintf("%s-%d@example.com", name, i))); err != nil {
				t.Fatal(err)
			}
		}
		end := time.Now().Add(outage - 2*time.Second)
		for countSubject(col, name+"-") < n && time.Now().Before(end) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := countSubject(col, name+"-"); got < n {
			t.Errorf("%s: %d of %d emails appended during the Redis outage were delivered during it", name, got, n)
		}
		for id, p := range nodes {
			resp, err := http.Get(p.base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s: node %s /readyz = %d during the Redis outage, want 503", name, id, resp.StatusCode)
			}
		}
		time.Sleep(time.Until(end.Add(2 * time.Second)))
	}

	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	phase("hung")
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // a renewal round confirms the leases

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	phase("down")
	if err := r.Start(); err != nil { // empty: restored from the nodes' memory
		t.Fatal(err)
	}
	back := time.Now()
	for id, p := range nodes {
		for {
			resp, err := http.Get(p.base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Since(back) > 30*time.Second {
				t.Fatalf("node %s not ready 30 s after Redis returned", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("both nodes ready %v after Redis returned", time.Since(back).Round(10*time.Millisecond))

	after := a.waitAllExist(t, ids, 60*time.Second)
	for _, id := range ids {
		if before[id] != after[id] {
			t.Errorf("mailbox %s moved from %s to %s", id, before[id], after[id])
		}
	}
	for i := range ids {
		if _, err := dc.Append(fmt.Sprintf("u%d@example.com", i), "pw", "INBOX", simpleMail(fmt.Sprintf("after-%d", i), fmt.Sprintf("after-%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for countSubject(col, "after-") < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := countSubject(col, "after-"); got != n {
		t.Errorf("after the outages: %d of %d emails delivered", got, n)
	}
	dups := 0
	seen := map[string]bool{}
	for _, m := range col.Emails() {
		s, _ := m.Data["Subject"].(string)
		if seen[s] {
			dups++
		}
		seen[s] = true
	}
	if got := obtained(); got != holds {
		t.Errorf("leases obtained: %d before the outages, %d after (sessions restarted)", holds, got)
	}
	for id, p := range nodes {
		for _, l := range p.logLines() {
			if strings.Contains(l, "mailbox lease lost") {
				t.Errorf("node %s: %s", id, l)
				break
			}
		}
	}
	t.Logf("Redis hung %v, then down %v and back empty: %d mailboxes stayed on their nodes, %d emails delivered, %d duplicates",
		outage, outage, n, len(seen), dups)
	checkFenceLog(t, nodes, nil)
}
