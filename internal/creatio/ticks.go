// SPDX-License-Identifier: Apache-2.0

package creatio

import "time"

// .NET DateTime ticks: 100 ns intervals since 0001-01-01T00:00:00 UTC, used by
// SendDateTimeStamp, EventTimeStamp and Exchange Filters
// (docs/CREATIO-PROTOCOL.md §12).
const (
	// EpochTicks is the tick count of the Unix epoch, 1970-01-01T00:00:00Z.
	EpochTicks int64 = 621355968000000000
	// MaxTicks is DateTime.MaxValue.Ticks, 9999-12-31T23:59:59.9999999Z.
	MaxTicks int64 = 3155378975999999999

	ticksPerSecond = 10_000_000
	// unixYear1 is time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix().
	unixYear1 = -62135596800
)

// Ticks returns t as UTC .NET ticks. The zero time (and anything before year 1)
// is 0, DateTime.MinValue, which Creatio treats as "no date"; times after
// DateTime.MaxValue are clamped to MaxTicks. Dates before 1970 are exact: the
// computation uses whole seconds plus the non-negative nanosecond part, never
// UnixNano (which overflows before 1678).
func Ticks(t time.Time) int64 {
	sec := t.Unix()
	switch {
	case t.IsZero() || sec < unixYear1:
		return 0
	case sec >= (MaxTicks-EpochTicks)/ticksPerSecond+1:
		return MaxTicks
	}
	return sec*ticksPerSecond + int64(t.Nanosecond()/100) + EpochTicks
}

// FromTicks is the inverse of Ticks, in UTC. Ticks <= 0 give the zero
// time.Time; ticks above MaxTicks are clamped to it.
func FromTicks(ticks int64) time.Time {
	if ticks <= 0 {
		return time.Time{}
	}
	ticks = min(ticks, MaxTicks)
	return time.Unix(ticks/ticksPerSecond+unixYear1, ticks%ticksPerSecond*100).UTC()
}
