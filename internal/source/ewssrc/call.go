package ewssrc

import (
	"context"
	"errors"
	"time"

	"github.com/emaillistener/emaillistener/internal/backoff"
	"github.com/emaillistener/emaillistener/internal/ews"
)

// busyPolicy spaces retries of a throttled call when the server did not say
// how long to wait.
var busyPolicy = backoff.Policy{Min: time.Second, Max: 30 * time.Second}

// maxBusyWait caps one wait the server asks for: a BackOffMilliseconds of
// minutes (Exchange Online sends up to five) is still waited out, in steps,
// while patience lasts.
const maxBusyWait = time.Minute

// retry calls f again while the server is busy (ErrorServerBusy, with or
// without a back-off, or an overloaded front end), waiting as long as it
// asks, for at most patience in total. Any other outcome is returned at once.
func retry[T any](ctx context.Context, patience time.Duration, f func() (T, error)) (T, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil || !busy(err) {
			return v, err
		}
		d, ok := ews.BackOff(err)
		if !ok || d <= 0 {
			d = busyPolicy.Delay(attempt)
		}
		d = min(d, maxBusyWait)
		if time.Since(start)+d > patience {
			return v, err
		}
		if serr := backoff.Sleep(ctx, d); serr != nil {
			return v, err
		}
	}
}

// busy reports whether err is the server throttling or overloaded.
func busy(err error) bool {
	if errors.Is(err, ews.ErrServerBusy) {
		return true
	}
	_, ok := ews.BackOff(err)
	return ok
}
