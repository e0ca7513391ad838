// SPDX-License-Identifier: Apache-2.0

package lease

import "github.com/emaillistener/emaillistener/internal/clock"

// Clock is the time source of the renew loop and of lease deadlines. Tests pass
// a simulated clock; the Redis-side TTL always runs on the server's real clock.
type Clock = clock.Clock

// Timer is the part of *time.Timer the renew loop uses.
type Timer = clock.Timer

// realClock is the wall clock.
type realClock = clock.Real
