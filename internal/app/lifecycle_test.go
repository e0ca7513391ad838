// SPDX-License-Identifier: Apache-2.0

package app

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
)

// Components start in order and stop in reverse; when one fails to start,
// those already started are stopped, in reverse, and the rest never start.
func TestLifecycleOrder(t *testing.T) {
	var log []string
	part := func(name string, failStart bool) component {
		return component{name: name,
			start: func(context.Context) error {
				log = append(log, "start "+name)
				if failStart {
					return errors.New("boom")
				}
				return nil
			},
			stop: func(context.Context) error { log = append(log, "stop "+name); return nil }}
	}
	cfg := config.Default()
	cfg.ShutdownTimeout = time.Second
	a := &App{cfg: cfg, parts: []component{part("a", false), part("b", false), part("c", true), part("d", false)}}
	err := a.startParts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start c") {
		t.Fatalf("startParts = %v, want the failure of c", err)
	}
	if got := strings.Join(log, ", "); got != "start a, start b, start c, stop b, stop a" {
		t.Fatalf("order: %s", got)
	}
	log = nil
	a = &App{cfg: cfg, parts: []component{part("a", false), {name: "no-op"}, part("b", false)}}
	if err := a.startParts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.stopParts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(log, ", "); got != "start a, start b, stop b, stop a" {
		t.Fatalf("order: %s", got)
	}
}
