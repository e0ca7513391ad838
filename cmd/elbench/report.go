// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one scenario run produces: the human table and the JSON file are both
// rendered from it.
type Result struct {
	Scenario string `json:"scenario"`
	// OK is false when the service misbehaved: mailboxes that never reached "exists",
	// lost messages, duplicates. The numbers are still reported.
	OK bool `json:"ok"`
	// Error is set when the run was aborted (infrastructure failure, timeout).
	Error    string         `json:"error,omitempty"`
	Started  time.Time      `json:"started"`
	WallSec  float64        `json:"wall_seconds"`
	Params   map[string]any `json:"params"`
	Machine  Machine        `json:"machine"`
	Metrics  Metrics        `json:"metrics"`
	Warnings []string       `json:"warnings,omitempty"`
	// Notes carry non-numeric observations: service state counts, sample errors.
	Notes map[string]any `json:"notes,omitempty"`
}

func newResult(scenario string, params map[string]any) *Result {
	return &Result{
		Scenario: scenario, OK: true, Started: time.Now(), Params: params,
		Machine: describeMachine(dovecotBinary()), Notes: map[string]any{},
	}
}

// warn adds a warning.
func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// fail adds a warning and marks the result not OK.
func (r *Result) fail(format string, args ...any) {
	r.OK = false
	r.warn(format, args...)
}

// finish stamps the wall time and the load average at the end.
func (r *Result) finish() {
	r.WallSec = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = loadavg()
}

// Metric is one measured number.
type Metric struct {
	Name  string
	Value float64
	Unit  string
	Help  string
}

// Metrics is an ordered list of metrics; in JSON it is an object {name: value} in
// insertion order (units are in the names: _ms, _mib, _pct, …).
type Metrics []Metric

// Add appends a metric; NaN and infinities are stored as 0 so the JSON stays valid.
func (m *Metrics) Add(name string, v float64, unit, help string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	*m = append(*m, Metric{Name: name, Value: v, Unit: unit, Help: help})
}

// Get returns the value of name and whether it exists.
func (m Metrics) Get(name string) (float64, bool) {
	for _, x := range m {
		if x.Name == name {
			return x.Value, true
		}
	}
	return 0, false
}

// MarshalJSON implements json.Marshaler.
func (m Metrics) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, x := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(x.Name)
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(strconv.FormatFloat(round(x.Value), 'f', -1, 64))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// round keeps 4 significant decimals for small numbers, 2 for large ones.
func round(v float64) float64 {
	if math.Abs(v) >= 100 {
		return math.Round(v*100) / 100
	}
	return math.Round(v*10000) / 10000
}

// WriteTable prints the result for humans.
func (r *Result) WriteTable(w io.Writer) {
	verdict := "OK"
	if !r.OK {
		verdict = "NOT OK"
	}
	fmt.Fprintf(w, "\n== elbench %s  (%s, %.1f s)  %s\n", r.Scenario, r.Started.Format(time.RFC3339), r.WallSec, verdict)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(w, "params:  %s\n", strings.Join(ps, " "))
	fmt.Fprintf(w, "machine: %d CPU, %d MiB, %s, %s, loadavg before %s after %s\n",
		r.Machine.NumCPU, r.Machine.MemTotalMiB, r.Machine.GoVersion, r.Machine.Dovecot, r.Machine.LoadBefore, r.Machine.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tvalue\tunit\t")
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s\t%s\t  %s\n", m.Name, formatValue(m.Value), m.Unit, m.Help)
	}
	_ = tw.Flush()
	for _, k := range sortedKeys(r.Notes) {
		fmt.Fprintf(w, "note %s: %v\n", k, r.Notes[k])
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatValue(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e12:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// WriteJSON writes the result to path (creating its directory); "" means
// bench-results/<scenario>-<timestamp>.json. It returns the path written.
func (r *Result) WriteJSON(path string) (string, error) {
	if path == "" {
		path = filepath.Join("bench-results", fmt.Sprintf("%s-%s.json", r.Scenario, r.Started.Format("20060102-150405")))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mib converts bytes to MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// addLatencies adds count, p50/p90/p95/p99/max and mean of ds (unsorted) under prefix.
func addLatencies(m *Metrics, prefix string, ds []time.Duration, help string) {
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	mean := time.Duration(0)
	if len(s) > 0 {
		mean = sum / time.Duration(len(s))
	}
	m.Add(prefix+"_min_ms", ms(percentile(s, 0)), "ms", help+" minimum")
	m.Add(prefix+"_p50_ms", ms(percentile(s, 50)), "ms", help+" median")
	m.Add(prefix+"_p90_ms", ms(percentile(s, 90)), "ms", "")
	m.Add(prefix+"_p95_ms", ms(percentile(s, 95)), "ms", "")
	m.Add(prefix+"_p99_ms", ms(percentile(s, 99)), "ms", "")
	if len(s) > 0 {
		m.Add(prefix+"_max_ms", ms(s[len(s)-1]), "ms", "")
	} else {
		m.Add(prefix+"_max_ms", 0, "ms", "")
	}
	m.Add(prefix+"_mean_ms", ms(mean), "ms", "")
}

// writeTrace writes one CSV line per message: sequence number, mailbox index, APPEND
// start (Unix ms), APPEND round trip (ms), first arrival (Unix ms, empty if lost),
// latency (ms, empty if lost), number of arrivals. For correlating outliers with the
// Dovecot and service logs (run with -keep).
func writeTrace(path string, a *arrivals, recs []sendRecord) error {
	return writeTraceFrom(path, a, recs, 0)
}

// writeTraceFrom is writeTrace of messages whose sequence numbers start at
// firstSeq (recs[i] is message firstSeq+i).
func writeTraceFrom(path string, a *arrivals, recs []sendRecord, firstSeq int) error {
	var b strings.Builder
	b.WriteString("seq,mailbox,sent_unix_ms,append_ms,arrived_unix_ms,latency_ms,arrivals\n")
	unixMS := func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMicro())/1000, 'f', 3, 64) }
	for i, r := range recs {
		seq := firstSeq + i
		if r.sent.IsZero() {
			continue
		}
		fmt.Fprintf(&b, "%d,%d,%s,%.3f,", seq, r.mailbox, unixMS(r.sent), ms(r.dur))
		ts := a.all(seq)
		if len(ts) > 0 {
			fmt.Fprintf(&b, "%s,%.3f,%d\n", unixMS(ts[0]), ms(ts[0].Sub(r.sent)), len(ts))
		} else {
			b.WriteString(",,0\n")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
