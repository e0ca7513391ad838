// SPDX-License-Identifier: Apache-2.0

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
	return backoff.Patient(ctx, busyPolicy, patience, maxBusyWait, func(err error) (time.Duration, bool) {
		if !busy(err) {
			return 0, false
		}
		d, _ := ews.BackOff(err)
		return d, true
	}, f)
}

// busy reports whether err is the server throttling or overloaded.
func busy(err error) bool {
	if errors.Is(err, ews.ErrServerBusy) {
		return true
	}
	_, ok := ews.BackOff(err)
	return ok
}
