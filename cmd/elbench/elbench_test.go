// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestScenariosSmoke runs the scenarios at tiny scale against a real
// Dovecot and the service binary, and checks only that the result JSON is well-formed and nothing
// was lost: timings on a shared CI machine prove nothing.
func TestScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot and the service binary (~20 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := buildService(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	common := commonOptions{
		stackOptions:  stackOptions{Bin: bin, Logf: t.Logf},
		N:             20,
		Batch:         1,
		Parallel:      8,
		ExistsTimeout: 30 * time.Second,
	}

	t.Run("density", func(t *testing.T) {
		res, err := runDensity(ctx, densityOptions{commonOptions: common,
			Baseline: 200 * time.Millisecond, Settle: time.Second, Idle: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["exists"] != float64(common.N) {
			t.Errorf("exists = %v, want %d", m["exists"], common.N)
		}
		for _, k := range []string{"rss_per_mailbox_kib", "goroutines_per_mailbox", "idle_cpu_pct_of_core"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("metric %s missing", k)
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		res, err := runLatency(ctx, latencyOptions{commonOptions: common,
			Rate: 20, Duration: 2 * time.Second, Settle: minSettle, Size: 2048, Drain: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["sent"] != float64(40) || m["lost"] != float64(0) || m["duplicates"] != float64(0) {
			t.Errorf("sent %v lost %v duplicates %v, want 40, 0, 0", m["sent"], m["lost"], m["duplicates"])
		}
		if _, ok := m["latency_p99_ms"].(float64); !ok {
			t.Error("metric latency_p99_ms missing")
		}
	})

	t.Run("history", func(t *testing.T) {
		res, err := runHistory(ctx, historyOptions{commonOptions: common, Messages: 200, Folders: 3,
			Filter: defaultHistoryFilter, Settle: 200 * time.Millisecond, LoadTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["expected"] != float64(200) || m["delivered"] != float64(200) || m["lost"] != float64(0) || m["duplicates"] != float64(0) {
			t.Errorf("expected %v delivered %v lost %v duplicates %v, want 200, 200, 0, 0",
				m["expected"], m["delivered"], m["lost"], m["duplicates"])
		}
		for _, k := range []string{"emails_per_s", "service_rss_peak_mib", "service_cpu_ms_per_email"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("metric %s missing", k)
			}
		}
	})

	t.Run("exchange", func(t *testing.T) {
		o := common
		o.TLS = true
		res, err := runExchange(ctx, exchangeOptions{commonOptions: o, Impersonation: true, GroupSize: 8, Heartbeat: time.Second,
			Settle: time.Second, Idle: time.Second, Rate: 10, Duration: 2 * time.Second, Drain: 20 * time.Second, Size: 2048})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["exists"] != float64(o.N) || m["streams"] != float64(3) || m["subscriptions"] != float64(o.N) {
			t.Errorf("exists %v streams %v subscriptions %v, want %d, 3, %d", m["exists"], m["streams"], m["subscriptions"], o.N, o.N)
		}
		if m["sent"] != float64(20) || m["lost"] != float64(0) || m["duplicates"] != float64(0) {
			t.Errorf("sent %v lost %v duplicates %v, want 20, 0, 0", m["sent"], m["lost"], m["duplicates"])
		}
	})

	t.Run("graph", func(t *testing.T) {
		res, err := runGraph(ctx, graphOptions{commonOptions: common, Poll: time.Second, Webhook: true,
			Settle: time.Second, Idle: 2 * time.Second, Rate: 10, Duration: 2 * time.Second, Drain: 20 * time.Second, Size: 2048})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["exists"] != float64(common.N) || m["subscriptions"] != float64(common.N) {
			t.Errorf("exists %v subscriptions %v, want %d, %d", m["exists"], m["subscriptions"], common.N, common.N)
		}
		if m["sent"] != float64(20) || m["lost"] != float64(0) || m["duplicates"] != float64(0) {
			t.Errorf("sent %v lost %v duplicates %v, want 20, 0, 0", m["sent"], m["lost"], m["duplicates"])
		}
	})

	t.Run("webhooks", func(t *testing.T) {
		res, err := runWebhooks(ctx, webhooksOptions{commonOptions: common, Engine: "self", Baseline: 300 * time.Millisecond,
			Settle: minSettle, Idle: time.Second, Rates: []float64{20}, Duration: 2 * time.Second, Drain: 20 * time.Second,
			Size: 2048, Folder: "INBOX"})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["connected"] != float64(common.N) || m["bad_signatures"] != float64(0) {
			t.Errorf("connected %v bad signatures %v, want %d, 0", m["connected"], m["bad_signatures"], common.N)
		}
		if m["r20_sent"] != float64(40) || m["r20_lost"] != float64(0) || m["r20_duplicates"] != float64(0) {
			t.Errorf("sent %v lost %v duplicates %v, want 40, 0, 0", m["r20_sent"], m["r20_lost"], m["r20_duplicates"])
		}
		for _, k := range []string{"rss_per_account_kib", "rss_before_mib", "r20_latency_p99_ms"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("metric %s missing", k)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		o := common
		o.N = 30
		res, err := runFailover(ctx, failoverOptions{commonOptions: o, Nodes: 3, Mail: 10,
			Settle: 500 * time.Millisecond, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		m := decodeResult(t, res)
		if m["moved"] != m["victim_mailboxes"] || m["mail_sent"] != float64(10) || m["mail_lost"] != float64(0) {
			t.Errorf("moved %v of %v; mail sent %v lost %v, want all moved, 10 sent, 0 lost",
				m["moved"], m["victim_mailboxes"], m["mail_sent"], m["mail_lost"])
		}
		if _, ok := m["failover_s"].(float64); !ok {
			t.Error("metric failover_s missing")
		}
	})
}

// decodeResult writes res as JSON, reads it back as generic JSON and returns its metrics.
func decodeResult(t *testing.T, res *Result) map[string]any {
	t.Helper()
	path, err := res.WriteJSON(filepath.Join(t.TempDir(), "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("result is not valid JSON: %v\n%s", err, b)
	}
	if doc["scenario"] != res.Scenario || doc["ok"] != true {
		t.Errorf("scenario %v ok %v, warnings %v", doc["scenario"], doc["ok"], doc["warnings"])
	}
	m, ok := doc["metrics"].(map[string]any)
	if !ok || len(m) == 0 {
		t.Fatalf("no metrics object in %s", b)
	}
	return m
}
