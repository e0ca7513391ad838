// SPDX-License-Identifier: Apache-2.0

package cluster

import "time"

// DefaultCapacity is a node's maximum number of mailbox subscriptions, and its
// placement weight, unless configured.
const DefaultCapacity = 10000

// Node is a live cluster member as it announces itself in its heartbeat. The
// JSON form is what is stored under el:node:<id>; fields are only added.
type Node struct {
	ID   string `json:"id"`
	Addr string `json:"addr,omitempty"` // where peers and operators reach it (informational)
	// Started is when the process joined.
	Started time.Time `json:"started"`
	// Capacity is the most mailboxes the node serves, and its placement weight
	// (a node with twice the capacity gets twice the share). <= 0 counts as
	// DefaultCapacity.
	Capacity int `json:"capacity"`
	// Owned is how many mailboxes the node served at its last heartbeat.
	Owned int `json:"owned"`
	// Leaving is set from Membership.Leave until the node is gone: it hands its
	// mailboxes over, so placement skips it.
	Leaving bool `json:"leaving,omitempty"`
	// Updated is the node's clock at its last heartbeat.
	Updated time.Time `json:"updated"`
}

// capacity returns Capacity, or DefaultCapacity when unset.
func (n Node) capacity() int {
	if n.Capacity <= 0 {
		return DefaultCapacity
	}
	return n.Capacity
}
