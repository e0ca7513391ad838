// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv/rediscli"
)

// inbox records what a relay's handler got.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (b *inbox) handle(msg []byte) {
	b.mu.Lock()
	b.got = append(b.got, string(msg))
	b.mu.Unlock()
}

func (b *inbox) messages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// A message forwarded by one node reaches every node's relay of the topic,
// the sender's included, and no relay of another topic; a handler's panic
// is counted and the relay goes on; Stop ends it.
func TestRelay(t *testing.T) {
	_, c := rediscli.Start(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	own := obs.NewPanics(nil) // not the package's: this test panics on purpose
	var a, b, other inbox
	reg := prometheus.NewRegistry()
	relays := []*cluster.Relay{
		cluster.NewRelay(c, cluster.RelayOptions{Prefix: "t:", Topic: "graph", Handle: a.handle, Logger: log, Registerer: reg, Panics: panics}),
		cluster.NewRelay(c, cluster.RelayOptions{Prefix: "t:", Topic: "graph", Handle: func(msg []byte) {
			if string(msg) == "boom" {
				panic("handler failed")
			}
			b.handle(msg)
		}, Logger: log, Registerer: reg, Panics: own}),
		cluster.NewRelay(c, cluster.RelayOptions{Prefix: "t:", Topic: "other", Handle: other.handle, Logger: log, Registerer: reg, Panics: panics}),
	}
	for _, r := range relays {
		if err := r.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, msg := range []string{"one", "boom", "two"} {
		if err := relays[0].Forward(t.Context(), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both nodes' relays", func() bool { return len(a.messages()) == 3 && len(b.messages()) == 2 })
	if got := a.messages(); !slices.Equal(got, []string{"one", "boom", "two"}) {
		t.Errorf("sender's relay got %q", got)
	}
	if got := b.messages(); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("other node's relay got %q", got)
	}
	if n := own.Count("cluster relay"); n != 1 {
		t.Errorf("%v panics counted, want 1", n)
	}
	if got := other.messages(); len(got) != 0 {
		t.Errorf("a relay of another topic got %q", got)
	}
	want := map[string]float64{"graph/published": 3, "graph/received": 6, "other/received": 0}
	for key, n := range want {
		topic, result, _ := strings.Cut(key, "/")
		if got := relayCount(t, reg, topic, result); got != n {
			t.Errorf("%s: %v, want %v", key, got, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range relays {
		if err := r.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// relayCount reads the relay metric of topic and result from reg (0 when
// it has no such series).
func relayCount(t *testing.T, reg *prometheus.Registry, topic, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "emaillistener_cluster_relay_messages_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] == topic && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
