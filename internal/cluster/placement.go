// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"cmp"
	"math"
	"slices"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Placement is weighted rendezvous (highest-random-weight) hashing: for each
// mailbox every node draws a pseudo-random h in (0,1) from a hash of (node,
// mailbox), scores -w/ln(h) with w its capacity, and the highest score wins.
// -ln(h) is exponentially distributed, so a node wins with probability
// w / sum(w) (weights respected), and since a mailbox's scores do not depend on
// the other nodes:
//
//   - a joining node takes only the mailboxes it now wins, ~w/sum(w) of all,
//     from every other node in proportion, and no mailbox moves between old nodes;
//   - a leaving node's mailboxes spread over the rest; no other mailbox moves.
//
// Every node computes the same answer from the same member list: no
// coordination beyond agreeing on the members.

// Owner returns the id of the node that should serve mailbox id: the
// highest-scoring node that is not Leaving, or "" if there is none. It ignores
// capacity limits; see Assign.
func Owner(id mail.MailboxID, nodes []Node) string {
	ih := hashString(string(id))
	best, bestScore := "", 0.0
	for _, n := range nodes {
		if n.Leaving {
			continue
		}
		s := score(ih, mix64(hashString(n.ID)), float64(n.capacity()))
		if best == "" || s > bestScore || (s == bestScore && n.ID < best) {
			best, bestScore = n.ID, s
		}
	}
	return best
}

// Assign places ids on the nodes that are not Leaving, each node taking at
// most its capacity (min(Capacity, maxPerNode) when maxPerNode > 0). A
// mailbox goes to its Owner unless that node is full; then to its next-ranked
// node with room. Ids are placed in a fixed pseudo-random order (by hash, not
// by input order), so all nodes compute the same result from the same inputs
// whatever their order, and overflow does not favour some ids. Ids that fit
// nowhere (the cluster is full) are absent from the result. While no node is
// full, Assign agrees with Owner for every id.
func Assign(ids []mail.MailboxID, nodes []Node, maxPerNode int) map[mail.MailboxID]string {
	live := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		if !n.Leaving {
			live = append(live, n)
		}
	}
	slices.SortFunc(live, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	live = slices.CompactFunc(live, func(a, b Node) bool { return a.ID == b.ID })
	out := make(map[mail.MailboxID]string, len(ids))
	if len(live) == 0 {
		return out
	}
	nh := make([]uint64, len(live))
	room := make([]int, len(live))
	for i, n := range live {
		nh[i] = mix64(hashString(n.ID))
		room[i] = n.capacity()
		if maxPerNode > 0 {
			room[i] = min(room[i], maxPerNode)
		}
	}

	type item struct {
		id mail.MailboxID
		h  uint64
	}
	order := make([]item, 0, len(ids))
	for _, id := range ids {
		order = append(order, item{id, hashString(string(id))})
	}
	slices.SortFunc(order, func(a, b item) int {
		return cmp.Or(cmp.Compare(mix64(a.h), mix64(b.h)), cmp.Compare(a.id, b.id))
	})
	order = slices.CompactFunc(order, func(a, b item) bool { return a.id == b.id })

	scores := make([]float64, len(live))
	rank := make([]int, len(live))
	for _, it := range order {
		best := -1
		for i, n := range live {
			scores[i] = score(it.h, nh[i], float64(n.capacity()))
			if best < 0 || scores[i] > scores[best] {
				best = i
			}
		}
		if room[best] == 0 {
			best = nextWithRoom(scores, room, rank)
			if best < 0 {
				continue // the cluster is full
			}
		}
		room[best]--
		out[it.id] = live[best].ID
	}
	return out
}

// nextWithRoom returns the highest-scoring node index with room, or -1.
func nextWithRoom(scores []float64, room, rank []int) int {
	for i := range rank {
		rank[i] = i
	}
	slices.SortStableFunc(rank, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	for _, i := range rank {
		if room[i] > 0 {
			return i
		}
	}
	return -1
}

// score is the weighted rendezvous score of a node (hash nodeHash, weight w)
// for a mailbox (hash idHash).
func score(idHash, nodeHash uint64, w float64) float64 {
	h := mix64(idHash ^ nodeHash)
	u := (float64(h>>11) + 0.5) / (1 << 53) // uniform in (0,1), never 0 or 1
	return -w / math.Log(u)
}

// hashString is 64-bit FNV-1a: stable across processes, versions and
// platforms (unlike hash/maphash, which is seeded per process).
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is MurmurHash3's fmix64 finalizer: a bijection with full avalanche,
// which FNV alone lacks.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
