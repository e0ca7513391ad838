// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Usage is what a call cost the process: wall time, bytes allocated, and how
// far the live heap grew above where it started.
type Usage struct {
	Took     time.Duration
	Alloc    uint64 // bytes allocated meanwhile (runtime.MemStats.TotalAlloc)
	HeapPeak uint64 // peak live heap minus the live heap before
}

// Measure runs f and returns its Usage, for tests that a hostile peer cannot
// make the code hold (or churn) much memory. The live heap is sampled every
// millisecond (runtime/metrics, which does not stop the world), so a short
// peak can be missed; Alloc catches what the sampling misses. The process is
// measured as a whole: run such tests without t.Parallel.
func Measure(f func()) Usage {
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	live := func() uint64 { metrics.Read(heap); return heap[0].Value.Uint64() }
	runtime.GC()
	base := live()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done, peak := make(chan struct{}), make(chan uint64)
	go func() {
		p := base
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			p = max(p, live())
			select {
			case <-done:
				peak <- p
				return
			case <-tick.C:
			}
		}
	}()
	t0 := time.Now()
	f()
	u := Usage{Took: time.Since(t0)}
	close(done)
	u.HeapPeak = <-peak - base
	runtime.ReadMemStats(&after)
	u.Alloc = after.TotalAlloc - before.TotalAlloc
	return u
}
