// SPDX-License-Identifier: Apache-2.0

package backoff

import (
	"context"
	"time"
)

// Patient calls f again while busy says the server is throttling it or
// overloaded, waiting as long as busy reports the server asked for (capped
// at maxWait per wait, in case a server asks for minutes), or p's delay when
// it said nothing, for at most patience in total. Any other outcome, and the
// last one when patience runs out or ctx ends, is returned as it is.
// Throttling then never shows as a mailbox failure unless it lasts.
func Patient[T any](ctx context.Context, p Policy, patience, maxWait time.Duration, busy func(error) (wait time.Duration, ok bool),
	f func() (T, error)) (T, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil {
			return v, nil
		}
		d, ok := busy(err)
		if !ok {
			return v, err
		}
		if d <= 0 {
			d = p.Delay(attempt)
		}
		d = min(d, maxWait)
		if time.Since(start)+d > patience {
			return v, err
		}
		if serr := Sleep(ctx, d); serr != nil {
			return v, err
		}
	}
}
