// SPDX-License-Identifier: Apache-2.0

package events

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

type poster struct {
	mu     sync.Mutex
	events []webhook.Event
	hold   chan struct{} // when set, each post waits for it
}

func (p *poster) PostSigned(ctx context.Context, op, target string, body []byte, headers func() http.Header, _ time.Duration) error {
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := headers()
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil || h.Get(webhook.HeaderID) != ev.ID || target != "https://hooks.example.com/in" {
		panic("bad post")
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	return nil
}

func (p *poster) got() []webhook.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]webhook.Event(nil), p.events...)
}

func native(id string, events ...string) *mail.Mailbox {
	return &mail.Mailbox{ID: mail.MailboxID(id), Client: mail.ClientNative, WebhookURL: "https://hooks.example.com/in",
		WebhookSecret: "0123456789abcdef", WebhookEvents: events}
}

func TestStatesOncePerChange(t *testing.T) {
	p := &poster{}
	e, err := New(Options{Post: p, ProgressEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Start(context.Background())
	mb := native("a")
	creatio := &mail.Mailbox{ID: "c"}
	quiet := native("q", webhook.TypeMessageNew)
	for _, st := range []mail.Status{
		{State: mail.StateConnecting}, {State: mail.StateExists}, {State: mail.StateError, ErrorClass: "auth"},
		{State: mail.StateConnecting}, {State: mail.StateError, ErrorClass: "auth"}, // the same failure again
		{State: mail.StateError, ErrorClass: "connect"}, {State: mail.StateExists}, {State: mail.StateClosed},
		{State: mail.StateExists}, // after a close (a hand-over): sent again
	} {
		e.State(mb, st)
		e.State(creatio, st)
		e.State(quiet, st)
	}
	for _, p2 := range []mail.HistoryProgress{
		{State: mail.HistoryQueued}, {State: mail.HistoryRunning, Folder: "INBOX", Delivered: 1},
		{State: mail.HistoryRunning, Folder: "INBOX", Delivered: 2}, // throttled
		{State: mail.HistoryRunning, Folder: "Sent", Delivered: 3}, {State: mail.HistoryDone, Delivered: 3},
	} {
		e.Progress(mb, p2)
		e.Progress(quiet, p2)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var states []string
	var progress []string
	for _, ev := range p.got() {
		if ev.Account != "a" {
			t.Fatalf("event for %s: %+v", ev.Account, ev)
		}
		switch ev.Type {
		case webhook.TypeAccountState:
			states = append(states, ev.State.State+"/"+ev.State.ErrorClass)
		case webhook.TypeSyncProgress:
			progress = append(progress, ev.Progress.State+"/"+ev.Progress.Folder)
		}
	}
	// Workers may reorder events; compare as sets with counts.
	want := map[string]int{"exists/": 3, "error/auth": 1, "error/connect": 1}
	if got := count(states); !equal(got, want) {
		t.Errorf("states %v, want %v", states, want)
	}
	wantP := map[string]int{"queued/": 1, "running/INBOX": 1, "running/Sent": 1, "done/": 1}
	if got := count(progress); !equal(got, wantP) {
		t.Errorf("progress %v, want %v", progress, wantP)
	}
}

func TestFullQueueDropsAndStopGivesUp(t *testing.T) {
	p := &poster{hold: make(chan struct{})}
	reg := prometheus.NewRegistry()
	e, err := New(Options{Post: p, Queue: 2, Workers: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Start(context.Background())
	for i := range 10 {
		e.Progress(native("a"), mail.HistoryProgress{State: mail.HistoryRunning, Folder: string(rune('a' + i))})
	}
	// One is held by the worker, two wait, the rest are dropped.
	dropped := testutil.ToFloat64(e.sent.WithLabelValues(webhook.TypeSyncProgress, "dropped"))
	if dropped < 7 || dropped > 8 {
		t.Fatalf("dropped %v of 10 with a queue of 2", dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.Stop(ctx); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Stop: %v after %v", err, time.Since(start))
	}
	e.Progress(native("a"), mail.HistoryProgress{State: mail.HistoryDone}) // after Stop: dropped, no panic
}

func count(s []string) map[string]int {
	m := map[string]int{}
	for _, v := range s {
		m[v]++
	}
	return m
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
