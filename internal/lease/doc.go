// SPDX-License-Identifier: Apache-2.0

// Package lease gives one node of a cluster exclusive ownership of a mailbox,
// proven by a monotonic fencing token, with leases kept in Redis.
//
// The workflow of a holder:
//
//  1. Manager.Obtain(ctx, id) runs obtain.lua: if the lease is free, expired or
//     held by this node id, the mailbox's fence counter advances and the lease
//     key is set to "<node>|<fence>" with the TTL; otherwise ErrHeld says who
//     holds it and for how long.
//  2. The holder opens the mailbox and stamps Lease.Fence on every state write;
//     the store rejects a fence lower than the one stored, so a paused or
//     partitioned former holder can never move a cursor backwards.
//  3. The Manager renews all held leases together, every RenewEvery, in one
//     pipeline of renew.lua calls (one round trip per round for any number of
//     leases). renew.lua extends the key only if it still holds our exact
//     "<node>|<fence>".
//  4. When renewal is rejected, or no renewal succeeded before the local
//     deadline, Lease.Done is closed and Lease.Err says why; the holder stops.
//     To serve the mailbox again it obtains a new lease (with a higher fence).
//  5. Lease.Release, or Manager.Stop for all leases, closes Done and deletes
//     the key (release.lua, owner-checked), so a peer obtains at once.
//
// Keys (prefix default "el:"; the {id} hash tag keeps a mailbox's keys in one
// Redis Cluster slot):
//
//	el:lease:{<id>}  string "<node>|<fence>", PX TTL   who holds the mailbox
//	el:fence:{<id>}  integer, no TTL                   last fence issued
//
// Implementation notes:
//
//   - Fences are max(previous + 1, Redis server time in ms), so they stay
//     increasing when Redis loses the counter (restart without persistence,
//     failover to a lagging replica). They are large numbers (~1.7e12), not
//     small sequence numbers; only their order matters.
//   - Local deadline = send time of the last confirmed renewal (or obtain) +
//     TTL - Skew. Redis expires the key no earlier than that send time + TTL,
//     so Done closes at least Skew before another node can obtain the lease.
//   - While Redis is unreachable, renewals fail and leases are kept until their
//     local deadline, then lost (ReasonExpired). A node cut off from Redis for
//     longer than TTL - Skew thus stops all its mailboxes; the peers, which may
//     obtain after the Redis-side expiry, never overlap with it.
//   - With Options.HoldWhileUnreachable (what the service uses) the leases are
//     kept past the deadline instead, unconfirmed, and renewal restores them
//     when Redis answers again unless the fence counter shows another node
//     obtained them meanwhile. A Redis outage then stops nothing; a node cut
//     off alone may overlap with a peer until it reaches Redis again, and the
//     fenced cursor writes settle which one's progress counts.
//   - When Redis comes back empty (restart without persistence), renewals find
//     the keys missing: by default the leases are lost (ReasonMissing) and the
//     holders obtain them again (with higher fences, thanks to the time
//     floor). With Options.RestoreMissing renewal re-creates the key instead,
//     if the fence counter shows that nobody obtained the lease in between, and
//     the subscriptions continue undisturbed.
//   - One goroutine (the loop) owns the set of held leases; Obtain and Release
//     reach it through a channel of closures. A Lease's end is an atomic
//     first-wins transition, so Release, loss and Stop never race.
//   - Redis Cluster: each script touches keys of one hash tag; go-redis splits
//     the renewal pipeline per node, so a round costs one round trip per
//     master.
package lease
