// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// panics is shared by every Membership in the tests; TestMain fails if it moved.
var panics = obs.NewPanics(nil)

func TestMain(m *testing.M) { os.Exit(testenv.RunCountingPanics(m, panics, "cluster")) }

// start starts a Membership that is stopped at cleanup.
func start(t *testing.T, c cluster.Client, opts cluster.Options) *cluster.Membership {
	t.Helper()
	opts.Panics = panics
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil)).With("test_node", opts.NodeID)
	}
	m, err := cluster.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Logf("stop %s: %v", opts.NodeID, err)
		}
	})
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ids lists the node ids of a view.
func ids(ns []cluster.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func viewIs(m *cluster.Membership, want ...string) func() bool {
	return func() bool { return fmt.Sprint(ids(m.View())) == fmt.Sprint(want) }
}

// drain empties a kick channel.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// metricValue reads an unlabelled counter or gauge from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return value(m)
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}
