package mail

import "time"

// Status is the last published state of one subscription, kept in the store so
// that any node can answer the client's subscriptionsstate call for a mailbox
// another node runs. The node running the subscription writes it on every state
// change; it is informational and never drives a decision about mail.
type Status struct {
	// State is the syncer's state: "exists" (connected and watching),
	// "connecting" (first attempt in progress) or "error" (retrying).
	State string
	// ErrorClass is, in state "error", the ErrorClass of the last failure.
	ErrorClass string
	// LastError is, in state "error", the last failure in words; never contains
	// credentials. Stores keep at most its first 512 bytes.
	LastError string
	// Node is the id (EL_NODE_ID) of the node running the subscription.
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
}
