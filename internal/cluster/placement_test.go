// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// guids returns n mailbox ids shaped like Creatio's (lower-case GUIDs),
// deterministic for a seed.
func guids(n int, seed uint64) []mail.MailboxID {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ids := make([]mail.MailboxID, n)
	for i := range ids {
		a, b := r.Uint64(), r.Uint64()
		ids[i] = mail.MailboxID(fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(a), uint16(a>>32), uint16(a>>48)&0xfff, uint16(b)&0xfff, b>>16&0xffffffffffff))
	}
	return ids
}

func nodes(ids ...string) []cluster.Node {
	out := make([]cluster.Node, len(ids))
	for i, id := range ids {
		out[i] = cluster.Node{ID: id}
	}
	return out
}

func owners(ids []mail.MailboxID, ns []cluster.Node) map[mail.MailboxID]string {
	out := make(map[mail.MailboxID]string, len(ids))
	for _, id := range ids {
		out[id] = cluster.Owner(id, ns)
	}
	return out
}

func counts(m map[mail.MailboxID]string) map[string]int {
	c := map[string]int{}
	for _, n := range m {
		c[n]++
	}
	return c
}

// The hash is part of the protocol: nodes of different versions (a rolling
// upgrade) must agree. These answers must never change.
func TestOwnerKnownAnswers(t *testing.T) {
	t.Parallel()
	ns := nodes("emaillistener-0", "emaillistener-1", "emaillistener-2")
	for id, want := range map[mail.MailboxID]string{
		"51a9b830-6a45-443a-8640-f9015ec7f256": "emaillistener-1",
		"25fa3c01-d597-4818-8df6-586adcdc3782": "emaillistener-2",
		"42a58bca-5b78-469f-8222-f1dd71634b57": "emaillistener-2",
		"af1b2eea-6375-4312-8555-5df4c7c157a1": "emaillistener-1",
		"c8d041d6-ed8c-4edc-8bc6-e005678937fe": "emaillistener-2",
		"8aa05e70-8911-468d-8422-c8820b71859d": "emaillistener-0",
		"9e9488d5-e594-4e65-819a-97be8454f401": "emaillistener-2",
		"175c1e50-0b38-43a3-83c0-933b5cc99dea": "emaillistener-1",
	} {
		if got := cluster.Owner(id, ns); got != want {
			t.Errorf("Owner(%s) = %s, want %s", id, got, want)
		}
	}
}

func TestOwnerDeterministic(t *testing.T) {
	t.Parallel()
	ids := guids(2000, 1)
	ns := nodes("n1", "n2", "n3", "n4", "n5")
	want := owners(ids, ns)
	r := rand.New(rand.NewPCG(2, 2))
	for range 5 {
		shuffled := slices.Clone(ns)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := owners(ids, shuffled); !maps.Equal(got, want) {
			t.Fatal("owner depends on the order of the node list")
		}
	}
	if cluster.Owner("x", nil) != "" {
		t.Fatal("Owner with no nodes")
	}
	if got := cluster.Owner("x", nodes("solo")); got != "solo" {
		t.Fatalf("Owner with one node = %q", got)
	}
}

// 10,000 mailboxes over 3 equal nodes: each within ±5% of a third.
func TestOwnerBalance(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		ids := guids(10000, seed)
		c := counts(owners(ids, nodes("emaillistener-0", "emaillistener-1", "emaillistener-2")))
		for n, k := range c {
			if dev := math.Abs(float64(k)-10000.0/3) / (10000.0 / 3); dev > 0.05 {
				t.Errorf("seed %d: %s owns %d (%.1f%% off)", seed, n, k, 100*dev)
			}
		}
		t.Logf("seed %d: %v", seed, c)
	}
	// Sequential, similar-looking ids balance as well.
	ids := make([]mail.MailboxID, 10000)
	for i := range ids {
		ids[i] = mail.MailboxID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
	}
	for n, k := range counts(owners(ids, nodes("a", "b", "c"))) {
		if dev := math.Abs(float64(k)-10000.0/3) / (10000.0 / 3); dev > 0.05 {
			t.Errorf("sequential ids: %s owns %d (%.1f%% off)", n, k, 100*dev)
		}
	}
}

// A joining node takes ~1/(n+1) of the mailboxes, only for itself; no
// mailbox moves between the old nodes.
func TestOwnerChurnOnJoin(t *testing.T) {
	t.Parallel()
	ids := guids(10000, 4)
	for _, n := range []int{1, 2, 3, 5, 9} {
		var names []string
		for i := range n {
			names = append(names, fmt.Sprintf("node-%d", i))
		}
		before := owners(ids, nodes(names...))
		after := owners(ids, nodes(append(names, "newcomer")...))
		moved := 0
		for id, o := range after {
			if o != before[id] {
				moved++
				if o != "newcomer" {
					t.Fatalf("%s moved from %s to %s, not to the newcomer", id, before[id], o)
				}
			}
		}
		want := 1 / float64(n+1)
		if got := float64(moved) / float64(len(ids)); math.Abs(got-want) > 0.05*want+0.01 {
			t.Errorf("%d -> %d nodes: %.3f moved, want ~%.3f", n, n+1, got, want)
		}
		t.Logf("%d -> %d nodes: %.1f%% of mailboxes moved (ideal %.1f%%)", n, n+1, 100*float64(moved)/float64(len(ids)), 100*want)
	}
}

// A leaving node's mailboxes spread over the others; nothing else moves.
func TestOwnerChurnOnLeave(t *testing.T) {
	t.Parallel()
	ids := guids(10000, 5)
	all := nodes("n0", "n1", "n2", "n3")
	before := owners(ids, all)
	after := owners(ids, all[1:])
	got := map[string]int{}
	for id, o := range after {
		if before[id] != "n0" && o != before[id] {
			t.Fatalf("%s moved from %s to %s although its owner stayed", id, before[id], o)
		}
		if before[id] == "n0" {
			got[o]++
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if got[n] < counts(before)["n0"]/3*85/100 {
			t.Errorf("the leaver's mailboxes spread unevenly: %v", got)
		}
	}
	// Leaving (draining) is the same as gone for placement.
	draining := slices.Clone(all)
	draining[0].Leaving = true
	if !maps.Equal(owners(ids, draining), after) {
		t.Fatal("a Leaving node still gets mailboxes")
	}
	if cluster.Owner("x", []cluster.Node{{ID: "a", Leaving: true}}) != "" {
		t.Fatal("only leaving nodes: want no owner")
	}
}

// Capacities weight the shares.
func TestOwnerWeights(t *testing.T) {
	t.Parallel()
	ids := guids(10000, 6)
	ns := []cluster.Node{{ID: "small", Capacity: 1000}, {ID: "medium", Capacity: 2000}, {ID: "large", Capacity: 3000}}
	c := counts(owners(ids, ns))
	for _, n := range ns {
		want := 10000 * float64(n.Capacity) / 6000
		if dev := math.Abs(float64(c[n.ID])-want) / want; dev > 0.05 {
			t.Errorf("%s owns %d, want ~%.0f (%.1f%% off)", n.ID, c[n.ID], want, 100*dev)
		}
	}
	t.Logf("capacities 1:2:3 -> %v", c)
	// Unset capacity counts as the default.
	a := owners(ids, []cluster.Node{{ID: "x"}, {ID: "y", Capacity: cluster.DefaultCapacity}})
	b := owners(ids, []cluster.Node{{ID: "x", Capacity: cluster.DefaultCapacity}, {ID: "y"}})
	if !maps.Equal(a, b) {
		t.Fatal("Capacity 0 is not DefaultCapacity")
	}
}

func TestAssignMatchesOwnerBelowCapacity(t *testing.T) {
	t.Parallel()
	ids := guids(3000, 7)
	ns := nodes("a", "b", "c")
	got := cluster.Assign(ids, ns, 0)
	if !maps.Equal(got, owners(ids, ns)) {
		t.Fatal("Assign differs from Owner although no node is full")
	}
}

// A full node's overflow goes to each mailbox's next-ranked node; a full
// cluster leaves mailboxes unassigned; the result does not depend on input order.
func TestAssignOverflow(t *testing.T) {
	t.Parallel()
	ids := guids(1000, 8)
	// a weighs twice as much (it would get ~500) but maxPerNode caps it at 400.
	ns := []cluster.Node{{ID: "a", Capacity: 2000}, {ID: "b", Capacity: 1000}, {ID: "c", Capacity: 1000}}
	pref := owners(ids, ns)
	if counts(pref)["a"] <= 400 {
		t.Fatalf("test setup: a prefers only %d", counts(pref)["a"])
	}
	got := cluster.Assign(ids, ns, 400)
	c := counts(got)
	if c["a"] != 400 || c["b"] > 400 || c["c"] > 400 || len(got) != len(ids) {
		t.Fatalf("counts %v, assigned %d", c, len(got))
	}
	moved := 0
	for id, o := range got {
		if o == pref[id] {
			continue
		}
		moved++
		if pref[id] != "a" {
			t.Fatalf("%s moved off %s, which was not full", id, pref[id])
		}
		if want := cluster.Owner(id, ns[1:]); o != want { // its next-ranked node
			t.Fatalf("%s overflowed to %s, want %s", id, o, want)
		}
	}
	if moved != counts(pref)["a"]-400 {
		t.Fatalf("%d overflowed, want %d", moved, counts(pref)["a"]-400)
	}

	// The cluster holds 3*300: the rest waits, unassigned.
	got = cluster.Assign(ids, ns, 300)
	c = counts(got)
	if c["a"] != 300 || c["b"] != 300 || c["c"] != 300 || len(got) != 900 {
		t.Fatalf("with maxPerNode 300: %v (%d assigned)", c, len(got))
	}

	// Per-node Capacity limits too.
	small := []cluster.Node{{ID: "a", Capacity: 200}, {ID: "b", Capacity: 200}, {ID: "c", Capacity: 200}}
	if c := counts(cluster.Assign(ids, small, 0)); c["a"] != 200 || c["b"] != 200 || c["c"] != 200 {
		t.Fatalf("capacity 200 each: %v", c)
	}

	// Order independence (every node must compute the same assignment).
	r := rand.New(rand.NewPCG(9, 9))
	ids2, ns2 := slices.Clone(ids), slices.Clone(ns)
	r.Shuffle(len(ids2), func(i, j int) { ids2[i], ids2[j] = ids2[j], ids2[i] })
	r.Shuffle(len(ns2), func(i, j int) { ns2[i], ns2[j] = ns2[j], ns2[i] })
	if !maps.Equal(cluster.Assign(ids2, ns2, 300), got) {
		t.Fatal("Assign depends on input order")
	}
	if len(cluster.Assign(ids, nil, 0)) != 0 {
		t.Fatal("Assign without nodes")
	}
}

// With capacity limits, a joining node still causes bounded churn.
func TestAssignChurnOnJoinWithLimits(t *testing.T) {
	t.Parallel()
	ids := guids(3000, 10)
	ns := []cluster.Node{{ID: "a", Capacity: 1100}, {ID: "b", Capacity: 1100}, {ID: "c", Capacity: 1100}}
	before := cluster.Assign(ids, ns, 0)
	after := cluster.Assign(ids, append(ns, cluster.Node{ID: "d", Capacity: 1100}), 0)
	moved, toNew := 0, 0
	for id, o := range after {
		if before[id] != o {
			moved++
			if o == "d" {
				toNew++
			}
		}
	}
	if len(after) != len(ids) || moved > len(ids)*30/100 {
		t.Fatalf("moved %d of %d (%d to the newcomer)", moved, len(ids), toNew)
	}
	t.Logf("3 -> 4 nodes near capacity: %d of %d moved, %d of them to the newcomer", moved, len(ids), toNew)
}

func BenchmarkAssign(b *testing.B) {
	ids := guids(10000, 11)
	var ns []cluster.Node
	for i := range 10 {
		ns = append(ns, cluster.Node{ID: fmt.Sprintf("emaillistener-%d", i), Capacity: 1200})
	}
	for b.Loop() {
		cluster.Assign(ids, ns, 0)
	}
}

func BenchmarkOwner(b *testing.B) {
	ids := guids(1024, 12)
	ns := nodes("emaillistener-0", "emaillistener-1", "emaillistener-2", "emaillistener-3", "emaillistener-4")
	i := 0
	for b.Loop() {
		cluster.Owner(ids[i%len(ids)], ns)
		i++
	}
}
