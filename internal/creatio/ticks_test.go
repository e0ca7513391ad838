// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"testing"
	"time"
)

func TestTicks(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"zero time", time.Time{}, 0},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"year 1 plus one tick", time.Date(1, 1, 1, 0, 0, 0, 100, time.UTC), 1},
		{"before year 1", time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), 0},
		{"1900", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 599266080000000000},
		{"one tick before epoch", time.Date(1969, 12, 31, 23, 59, 59, 999999900, time.UTC), EpochTicks - 1},
		{"sub-tick before epoch truncates", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), EpochTicks - 1},
		{"epoch", time.Unix(0, 0), EpochTicks},
		{"sub-tick after epoch truncates", time.Unix(0, 150), EpochTicks + 1},
		{"2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 639028224000000000},
		{"2026 in another zone is UTC", time.Date(2026, 1, 1, 3, 0, 0, 0, time.FixedZone("MSK", 3*3600)), 639028224000000000},
		{"max", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), MaxTicks},
		{"after max clamps", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), MaxTicks},
		{"far future clamps", time.Date(292277026596, 1, 1, 0, 0, 0, 0, time.UTC), MaxTicks},
	}
	for _, tt := range tests {
		if got := Ticks(tt.t); got != tt.want {
			t.Errorf("%s: Ticks(%v) = %d, want %d", tt.name, tt.t, got, tt.want)
		}
	}
}

func TestFromTicks(t *testing.T) {
	tests := []struct {
		ticks int64
		want  time.Time
	}{
		{0, time.Time{}},
		{-5, time.Time{}},
		{1, time.Date(1, 1, 1, 0, 0, 0, 100, time.UTC)},
		{599266080000000000, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)},
		{EpochTicks - 1, time.Date(1969, 12, 31, 23, 59, 59, 999999900, time.UTC)},
		{EpochTicks, time.Unix(0, 0).UTC()},
		{639028224000000000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{MaxTicks, time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)},
		{MaxTicks + 1, time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)},
	}
	for _, tt := range tests {
		got := FromTicks(tt.ticks)
		if !got.Equal(tt.want) || got.Location() != time.UTC && !got.IsZero() {
			t.Errorf("FromTicks(%d) = %v, want %v", tt.ticks, got, tt.want)
		}
		if tt.ticks > 0 && tt.ticks <= MaxTicks && Ticks(got) != tt.ticks {
			t.Errorf("Ticks(FromTicks(%d)) = %d", tt.ticks, Ticks(got))
		}
	}
}
