// SPDX-License-Identifier: Apache-2.0

// Package obs holds the observability plumbing every component shares: the slog
// logger setup, the Check helper that keeps expected shutdown errors out of
// error logs, and panic recovery with a counter.
package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// NewLogger builds the process logger. format is "text" or "json"; level is a
// slog level name (debug, info, warn, error).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// Discard is a logger that drops everything, for tests and benchmarks.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Expected reports whether err is the normal result of shutting something down
// (context cancelled, connection closed) rather than a failure worth an error log.
func Expected(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

// Check logs err at error level unless it is nil or Expected, in which case it
// is logged at debug level (or not at all).
func Check(log *slog.Logger, err error, msg string, args ...any) {
	if err == nil {
		return
	}
	if Expected(err) {
		log.Debug(msg, append(args, "err", err)...)
		return
	}
	log.Error(msg, append(args, "err", err)...)
}

// Panics counts recovered panics per component. Tests assert it stays at zero.
type Panics struct {
	counter *prometheus.CounterVec
}

// NewPanics registers emaillistener_panics_total with reg (nil: not registered).
func NewPanics(reg prometheus.Registerer) *Panics {
	return &Panics{counter: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "emaillistener_panics_total",
		Help: "Panics recovered in goroutine roots, by component.",
	}, []string{"component"})}
}

// Recover must be deferred at the root of every goroutine. It logs the stack and
// counts the panic instead of killing the process, so one bad mailbox cannot take
// down ten thousand others. It reports whether a panic was recovered via *panicked.
func (p *Panics) Recover(log *slog.Logger, component string, panicked *bool) {
	v := recover()
	if v == nil {
		return
	}
	if p != nil {
		p.counter.WithLabelValues(component).Inc()
	}
	log.Error("panic recovered", "component", component, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if panicked != nil {
		*panicked = true
	}
}

// Count returns the number of panics recovered in component.
func (p *Panics) Count(component string) float64 {
	m := &dtoMetric{}
	return m.read(p.counter.WithLabelValues(component))
}
