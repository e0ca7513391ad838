// SPDX-License-Identifier: Apache-2.0

package mail

import "time"

// History load states.
const (
	HistoryQueued  = "queued" // waiting for a slot, also after stepping aside while the client was down
	HistoryRunning = "running"
	HistoryDone    = "done"
	HistoryFailed  = "failed"
)

// HistoryProgress is the visible state of a mailbox's last history load
// (the client's synchronize call).
type HistoryProgress struct {
	State     string // one of the History* constants
	Filter    string // the query in words
	Folder    string // being loaded
	Found     int    // matching messages found so far
	Delivered int
	Skipped   int // unparseable, expunged or refused for good
	Started   time.Time
	Finished  time.Time
	Error     string
}
