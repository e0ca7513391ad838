// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"net/http"
	"testing"

	"github.com/emaillistener/emaillistener/internal/config"
)

// Go's profiles are served only when EL_PPROF is on.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	for _, on := range []bool{false, true} {
		e := newEnv(t, func(c *config.Config) { c.Pprof = on })
		resp, err := http.Get(e.base + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("EL_PPROF=%v: /debug/pprof/goroutine = %d, want %d", on, resp.StatusCode, want)
		}
	}
}
