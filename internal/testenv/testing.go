// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/obs"
)

// NewT starts a Dovecot for the test in a fresh t.TempDir (unless opts.Dir is set),
// logs through t.Logf, and stops it in t.Cleanup; if the test failed, the Dovecot log
// is printed first. A missing dovecot binary fails the test with the install hint: it is
// never skipped, because a skipped integration test would count as passing.
func NewT(t testing.TB, opts DovecotOptions) *Dovecot {
	t.Helper()
	if _, err := findDovecot(opts.Binary); err != nil {
		t.Fatalf("%v", err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
		// t.TempDir creates the per-test parent and the directory itself with mode 0700;
		// as root the mail processes run as the dovecot user and must traverse both.
		// Cleanup (RemoveAll) still works: it runs as root, or everything is ours.
		for _, p := range []string{filepath.Dir(opts.Dir), opts.Dir} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatalf("testenv: %v", err)
			}
		}
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	d, err := StartDovecot(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Registered after t.TempDir's own cleanup, so it runs before the directory is
	// removed (cleanups run last-in first-out).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log (%s):\n%s", d.Dir, tail(d.Log(), logTailBytes))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return d
}

// NewCollectorT starts a Collector that is closed in t.Cleanup; if the test failed, the
// recorded requests are listed first.
func NewCollectorT(t testing.TB) *Collector {
	t.Helper()
	c := NewCollector()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector requests:\n%s", c.Summary())
		}
		c.Close()
	})
	return c
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// RunCountingPanics runs a package's tests (from TestMain) and fails the run
// if p recovered any panic of component meanwhile: a recovered panic keeps a
// test green, so it must be checked for separately.
func RunCountingPanics(m *testing.M, p *obs.Panics, component string) int {
	code := m.Run()
	if n := p.Count(component); n != 0 {
		fmt.Fprintf(os.Stderr, "%s: %v panics recovered during the tests\n", component, n)
		code = 1
	}
	return code
}
