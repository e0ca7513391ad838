// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/graph"
)

// recordingRelay records what is forwarded; while hold is open, Forward
// waits for it.
type recordingRelay struct {
	mu   sync.Mutex
	got  [][]byte
	hold chan struct{}
}

func (r *recordingRelay) Forward(ctx context.Context, body []byte) error {
	if r.hold != nil {
		select {
		case <-r.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	r.got = append(r.got, body)
	r.mu.Unlock()
	return nil
}

func (r *recordingRelay) forwarded() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

func postNotification(t *testing.T, h http.Handler, subID string) {
	t.Helper()
	body := `{"value":[{"subscriptionId":"` + subID + `","clientState":"0123","changeType":"created","resource":"Users/u/Messages/m"}]}`
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/graph/n", strings.NewReader(body)))
	if w.Code != http.StatusAccepted {
		t.Fatalf("notification answered %d", w.Code)
	}
}

// A notification for a subscription this process did not make goes to the
// relay; a relayed one is never relayed again; with relayParallel publishes
// in flight, more are dropped instead of piling up.
func TestUnknownNotificationsRelayed(t *testing.T) {
	relay := &recordingRelay{}
	a, err := New(Options{NotificationURL: "https://listener.example.com/graph/n", Relay: relay})
	if err != nil {
		t.Fatal(err)
	}
	postNotification(t, a.Handler(), "sub-elsewhere")
	deadline := time.Now().Add(5 * time.Second)
	for len(relay.forwarded()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing relayed")
		}
		time.Sleep(time.Millisecond)
	}
	body := relay.forwarded()[0]
	list, err := graph.ParseNotifications(bytes.NewReader(body), 0)
	if err != nil || len(list) != 1 || list[0].SubscriptionID != "sub-elsewhere" || list[0].ClientState != "0123" {
		t.Fatalf("relayed %s: %v %+v", body, err, list)
	}
	a.Relayed(body) // as every replica's relay hands it back
	time.Sleep(50 * time.Millisecond)
	if n := len(relay.forwarded()); n != 1 {
		t.Fatalf("a relayed notification was relayed again (%d publishes)", n)
	}

	relay.hold = make(chan struct{})
	for range relayParallel + 3 {
		postNotification(t, a.Handler(), "sub-elsewhere")
	}
	if n := len(a.poll.hook.relays); n != relayParallel {
		t.Fatalf("%d publishes in flight, want the cap %d", n, relayParallel)
	}
	close(relay.hold)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.poll.hook.close(ctx)
	if n := len(relay.forwarded()); n != 1+relayParallel {
		t.Fatalf("%d publishes, want %d (the rest dropped)", n, 1+relayParallel)
	}
}
