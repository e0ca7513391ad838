// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// msgIDPrefix starts the Message-ID of every benchmark message; the sequence number
// follows: <elbench-<seq>@bench.example>.
const (
	msgIDPrefix = "<elbench-"
	msgIDSuffix = "@bench.example>"
)

// messageID returns the Message-ID (with angle brackets) of benchmark message seq.
func messageID(seq int) string { return msgIDPrefix + strconv.Itoa(seq) + msgIDSuffix }

// seqOf parses messageID's output back; ok is false for foreign Message-IDs.
func seqOf(id string) (int, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(id), msgIDPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, msgIDSuffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// arrivals records, from the Collector's OnRequest hook, when each benchmark message
// reached "Creatio". The time is the Collector's arrival stamp, taken before the request
// body was read. Safe for concurrent use.
type arrivals struct {
	mu       sync.Mutex
	times    map[int][]time.Time // seq -> every arrival (more than one = duplicate)
	distinct int
	foreign  int            // emails whose Message-ID is not a benchmark one
	ops      map[string]int // requests by operation and status class, e.g. "ProcessFullEmail 2xx"
	changed  chan struct{}  // closed and replaced on every recorded email
}

func newArrivals() *arrivals {
	return &arrivals{times: map[int][]time.Time{}, ops: map[string]int{}, changed: make(chan struct{})}
}

// record is the Collector hook; it runs on the request's goroutine and does not block.
func (a *arrivals) record(r testenv.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ops[r.Op+" "+strconv.Itoa(r.Status/100)+"xx"]++
	if r.Op != testenv.OpProcessFullEmail || r.Status/100 != 2 || r.JSON == nil {
		return
	}
	list, _ := r.JSON["Emails"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		id, _ := m["MessageId"].(string)
		seq, ok := seqOf(id)
		if !ok {
			a.foreign++
			continue
		}
		if len(a.times[seq]) == 0 {
			a.distinct++
		}
		a.times[seq] = append(a.times[seq], r.Time)
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// waitDistinct blocks until at least n distinct benchmark messages arrived or ctx ends;
// it reports whether n was reached.
func (a *arrivals) waitDistinct(ctx context.Context, n int) bool {
	for {
		a.mu.Lock()
		got, ch := a.distinct, a.changed
		a.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// first returns the first arrival of seq.
func (a *arrivals) first(seq int) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := a.times[seq]
	if len(ts) == 0 {
		return time.Time{}, false
	}
	return ts[0], true
}

// all returns every arrival of seq (a copy).
func (a *arrivals) all(seq int) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times[seq]...)
}

// arrivalStats are the counts over all messages of a run.
type arrivalStats struct {
	Distinct   int            // distinct benchmark messages that arrived
	Duplicates int            // extra arrivals of a message beyond its first
	Foreign    int            // emails not sent by this run
	Last       time.Time      // latest first-arrival
	Ops        map[string]int // Collector requests by operation and status class
}

func (a *arrivals) stats() arrivalStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := arrivalStats{Distinct: a.distinct, Foreign: a.foreign, Ops: map[string]int{}}
	for _, ts := range a.times {
		s.Duplicates += len(ts) - 1
		if ts[0].After(s.Last) {
			s.Last = ts[0]
		}
	}
	for k, v := range a.ops {
		s.Ops[k] = v
	}
	return s
}
