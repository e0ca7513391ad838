package syncer

import "time"

// State values reported by subscriptionsstate. Only StateExists tells Creatio
// the subscription is healthy; any other value makes its failover job recreate
// the subscription.
const (
	StateExists     = "exists"     // connected and watching (IDLE), or catching up
	StateConnecting = "connecting" // first connection or reconnect in progress, no error yet
	StateError      = "error"      // the last attempt failed; see ErrorClass and LastError; retrying
	StateClosed     = "closed"     // no subscription with this id on this service
)

// States lists every state, for pre-initializing the gauge.
var States = []string{StateExists, StateConnecting, StateError}

// Status is a snapshot of one subscription.
type Status struct {
	State       string
	Since       time.Time // when State was entered
	ErrorClass  string    // set in StateError
	LastError   string    // set in StateError; never contains credentials
	RetryAt     time.Time // next reconnect attempt in StateError
	LastEventAt time.Time // last email delivered
	Delivered   uint64    // emails delivered since the subscription started
	Folders     []string  // folders being watched
}
