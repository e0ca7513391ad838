// SPDX-License-Identifier: Apache-2.0

package hostile

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// TestWrongKeyRestart restarts a clustered node with another EL_SECRET_KEY:
// it must say so (readiness 503 with the reason), subscriptionsstate must
// stop reporting the previous process's "exists" (so that Creatio's failover
// re-creates the mailboxes), and a re-registration must work. Back on the
// right key, one record it cannot open does not keep the others from being
// restored.
func TestWrongKeyRestart(t *testing.T) {
	bin := testenv.BuildService(t, "../..")
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	dc := testenv.NewT(t, testenv.DovecotOptions{AnyPassword: "pw", ExtraConf: "mail_fsync = never"})
	col := testenv.NewCollectorT(t)
	keyA := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyB := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	node := func(key string) *testenv.Service {
		return testenv.StartService(t, bin, serviceEnv("ExchangeListenerRedisHost="+r.Addr, "EL_SECRET_KEY="+key, "EL_NODE_ID=node-1")...)
	}

	a := node(keyA)
	s := &suite{svc: a, dc: dc, col: col}
	ids := make([]string, 10)
	mbs := make([]mailbox, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("key-%02d", i)
		mbs[i] = mailbox{ID: ids[i], User: fmt.Sprintf("key%d@example.com", i), Addr: dc.IMAPAddr}
	}
	s.create(t, "/api/listeners/create", mbs)
	s.waitExists(t, ids, 30*time.Second)
	a.Kill()

	b := node(keyB)
	s.svc = b
	start := time.Now()
	code, body := waitReady(t, b, 503, 20*time.Second)
	if !strings.Contains(body, "secret key") {
		t.Fatalf("readyz %d %q does not name the secret key", code, body)
	}
	t.Logf("FIGURE restart with a wrong EL_SECRET_KEY: /readyz 503 after %v: %s", time.Since(start).Round(time.Millisecond), body)
	// The previous process's "exists" expires with its leases.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.states(t, ids)
		n := 0
		for _, id := range ids {
			if st[id] == "exists" {
				n++
			}
		}
		if n == 0 {
			t.Logf("FIGURE wrong key: subscriptionsstate stopped reporting the previous process's exists after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mailboxes still exists on a node that cannot open them: %v", n, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Creatio's failover job re-creates a mailbox: it is served again, and
	// the node is ready since it can open a record.
	s.create(t, "/api/listeners/recreate", mbs[:1])
	s.waitExists(t, ids[:1], 20*time.Second)
	if code, body := waitReady(t, b, 200, 20*time.Second); code != 200 {
		t.Fatalf("readyz after a re-registration: %d %s", code, body)
	}
	b.Kill()

	// Back on key A: key-00 is now sealed with key B; the other nine are
	// restored, key-00 is quarantined, and the node is ready.
	c := node(keyA)
	s.svc = c
	s.waitExists(t, ids[1:], 30*time.Second)
	if st := s.states(t, ids[:1]); st[ids[0]] == "exists" {
		t.Errorf("a record sealed with another key reported exists")
	}
	if code, body := waitReady(t, c, 200, 20*time.Second); code != 200 {
		t.Fatalf("readyz with one unreadable record: %d %s", code, body)
	}
	if n := c.Count("mailbox record cannot be opened", ids[0]); n != 1 {
		t.Errorf("the unreadable record was logged %d times, want once", n)
	}
	peak, _ := c.PeakRSS()
	t.Logf("FIGURE one unreadable record among 10: 9 restored, 1 quarantined (logged once); node peak RSS %.1f MiB", float64(peak)/(1<<20))
}

// waitReady polls /readyz until it answers want and returns the last answer.
func waitReady(t *testing.T, svc *testenv.Service, want int, within time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(svc.Base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == want || time.Now().After(deadline) {
			return resp.StatusCode, string(b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
