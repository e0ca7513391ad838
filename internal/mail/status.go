// SPDX-License-Identifier: Apache-2.0

package mail

import "time"

// Subscription states. Only StateExists tells the client (Creatio) the
// subscription is healthy; any other value makes its failover job recreate
// it.
const (
	StateExists     = "exists"     // connected and watching, or catching up
	StateConnecting = "connecting" // first connection or reconnect in progress, no error yet
	StateError      = "error"      // the last attempt failed; see ErrorClass and LastError; retrying
	StateClosed     = "closed"     // no subscription with this id is served
)

// States lists the states of a running subscription, for metric labels.
var States = []string{StateExists, StateConnecting, StateError}

// Status is the state of one subscription. The node running it keeps it, and
// in a cluster publishes it to the store on every state change so that any
// node can answer the client's subscriptionsstate call; it is informational
// and never drives a decision about mail.
type Status struct {
	// State is one of the State* constants.
	State string
	// ErrorClass is, in state "error", the ErrorClass of the last failure.
	ErrorClass string
	// LastError is, in state "error", the last failure in words; never contains
	// credentials. Stores keep at most its first 512 bytes.
	LastError string
	// Node is the id (EL_NODE_ID) of the node running the subscription; set
	// when published.
	Node string
	// Since is when State was entered.
	Since time.Time
	// RetryAt is, in state "error", when the next connection attempt is due.
	RetryAt time.Time
	// LastEventAt is when the last email was delivered; zero if none yet.
	LastEventAt time.Time
	// Delivered counts the emails delivered since the subscription started on Node.
	Delivered uint64
	// Folders lists the folders being watched.
	Folders []string
	// Kind is the mailbox's protocol: it picks the exception class names the
	// client is shown for ErrorClass.
	Kind ServerKind
	// Transport is how the mailbox is reached when its kind leaves a choice
	// (an Exchange mailbox: "ews", "graph" or "imap"); empty until a session
	// opened.
	Transport string
	// Push is how new mail is noticed when the session can tell: "idle" (the
	// server pushes), "poll" (an IMAP server that accepts IDLE but was found
	// never to push, checked every few seconds instead).
	Push string
	// Stale marks a published status whose node no longer serves the
	// mailbox (it crashed, handed it over, or restarted and cannot open it):
	// State and Node are then only what was last known. Never stored.
	Stale bool
}
