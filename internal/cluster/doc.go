// SPDX-License-Identifier: Apache-2.0

// Package cluster owns node membership and mailbox placement.
//
// A node's life in the cluster:
//
//  1. Membership.Start subscribes to the events channel, writes the first
//     heartbeat (el:node:<id>, JSON Node, with a TTL) and registry entry
//     (el:nodes), reads the member list, and publishes "nodes" so that peers
//     refresh at once.
//  2. Every Beat the node rewrites its heartbeat (with its current Owned count)
//     and re-reads the member list into View. "nodes" events and reconnects
//     trigger extra refreshes. Changes receives a kick whenever the member set
//     (ids, capacities, Leaving) changed; the consumer re-runs placement.
//  3. Placement is a pure function of the member list: Owner(id, View()) by
//     weighted rendezvous hashing, or Assign for capacity limits. Views of
//     different nodes agree within one refresh; in between, two nodes may both
//     think they own a mailbox, and the mailbox lease decides.
//  4. Shutdown: Leave marks the node Leaving (placement skips it, peers start
//     taking over) while it keeps beating and hands its mailboxes over; then
//     Stop deletes its key and registry entry and publishes "nodes".
//     A crashed node's key expires after the TTL; peers drop it at their next
//     refresh.
//
// The events channel (el:events) also carries registration changes (Event:
// "sub:<mode>:<id>" after create/recreate/update, "close:<id>" after close;
// event.go encodes and decodes them). It is Redis pub/sub: at most once, lost
// while disconnected. Subscribers get Resync when messages may have been lost
// and must then reconcile; reconciliation on a timer remains the backstop.
//
// Implementation notes:
//
//   - Liveness is the heartbeat key's existence (Redis' clock). Node clocks
//     only stamp Updated and registry scores, used to prune registry entries
//     whose key is gone for longer than a TTL.
//   - Redis data loss (restart without persistence, failover to a lagging
//     replica) deletes every heartbeat key at once. A node notices its own key
//     gone before its TTL, re-beats and announces at once, and for two beats
//     takes no removals into its view, so that peers (which re-beat within one
//     beat) are not mistaken for dead and their mailboxes do not move.
//   - The loop goroutine owns the view's bookkeeping; View is published through
//     an atomic pointer. The receiver goroutine owns the pub/sub connection.
package cluster
