// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// scaleSetup builds the shape of the service's benchmark: n mailboxes, each with a
// streaming subscription made by an impersonating service account, served over
// streams of 200 subscriptions.
type scaleSetup struct {
	s       *Server
	addrs   []string
	streams []*rawStream
}

const subsPerStream = 200

func newScale(tb testing.TB, n int) *scaleSetup {
	s := NewT(tb, Options{ServiceAccount: "svc@ewsfake.test", ServicePassword: "pw", Heartbeat: 10 * time.Second, HangingConnectionLimit: 1000})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sc := &scaleSetup{s: s, addrs: make([]string, n)}
	for i := range sc.addrs {
		sc.addrs[i] = fmt.Sprintf("m%05d@ewsfake.test", i)
		mustOK(tb, s.AddMailbox(sc.addrs[i], "", "pw"))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	tb.Logf("%d mailboxes, about %d bytes each", n, (after.HeapAlloc-before.HeapAlloc)/uint64(n))

	subs := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			c := newClient(tb, s, "svc@ewsfake.test", "pw")
			for i := w; i < n; i += 8 {
				c.header = impersonate(sc.addrs[i])
				subs[i] = c.subscribe(false)
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += subsPerStream {
		sc.streams = append(sc.streams, openRawStream(tb, s, "svc@ewsfake.test", "pw", subs[i:min(i+subsPerStream, n)]))
	}
	waitFor(tb, 10*time.Second, "streams to open", func() bool { return s.Stats().OpenStreams == len(sc.streams) })
	return sc
}

// round delivers one message into every mailbox and waits until every stream has
// carried a notification for each of its subscriptions.
func (sc *scaleSetup) round(tb testing.TB) {
	for _, a := range sc.addrs {
		_, err := sc.s.Deliver(a, "inbox", testMessage("scale", "x@example.org", a))
		mustOK(tb, err)
	}
	var wg sync.WaitGroup
	for i, rs := range sc.streams {
		want := min(subsPerStream, len(sc.addrs)-i*subsPerStream)
		wg.Go(func() {
			for seen := 0; seen < want; {
				m, _ := rs.envelope(10 * time.Second)
				if n := path(m, "Notifications"); n != nil {
					seen += len(n.kids)
				}
			}
		})
	}
	wg.Wait()
}

func TestScale(t *testing.T) {
	sc := newScale(t, 2000)
	t0 := time.Now()
	sc.round(t)
	st := sc.s.Stats()
	t.Logf("%d deliveries over %d streams in %v; %d goroutines", len(sc.addrs), len(sc.streams), time.Since(t0).Round(time.Millisecond), runtime.NumGoroutine())
	if st.Subscriptions != 2000 || st.OpenStreams != 10 {
		t.Errorf("stats %+v", st)
	}
}

// BenchmarkFanout is the benchmark's full size: 10,000 mailboxes and subscriptions
// over 50 streams; one op is a delivery into every mailbox, notified.
func BenchmarkFanout(b *testing.B) {
	sc := newScale(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		sc.round(b)
	}
}
