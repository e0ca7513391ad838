// SPDX-License-Identifier: Apache-2.0

package cluster

import "github.com/emaillistener/emaillistener/internal/clock"

// Clock is the time source of the heartbeat loop and of node timestamps. Tests
// pass a simulated clock; key expiry in Redis always runs on the server's real
// clock.
type Clock = clock.Clock

// Timer is the part of *time.Timer the heartbeat loop uses.
type Timer = clock.Timer

// realClock is the wall clock.
type realClock = clock.Real
