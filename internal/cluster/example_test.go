// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"fmt"

	"github.com/emaillistener/emaillistener/internal/cluster"
	"github.com/emaillistener/emaillistener/internal/mail"
)

func ExampleOwner() {
	nodes := []cluster.Node{{ID: "emaillistener-0"}, {ID: "emaillistener-1"}, {ID: "emaillistener-2"}}
	id := mail.MailboxID("51a9b830-6a45-443a-8640-f9015ec7f256")
	fmt.Println(cluster.Owner(id, nodes))

	// A draining node gets nothing; the others keep what they had.
	nodes[1].Leaving = true
	fmt.Println(cluster.Owner(id, nodes))
	// Output:
	// emaillistener-1
	// emaillistener-2
}

func ExampleAssign() {
	ids := []mail.MailboxID{"a", "b", "c", "d", "e", "f"}
	nodes := []cluster.Node{{ID: "n1", Capacity: 2}, {ID: "n2", Capacity: 2}}
	got := cluster.Assign(ids, nodes, 0)
	perNode := map[string]int{}
	for _, n := range got {
		perNode[n]++
	}
	fmt.Println(len(got), "of", len(ids), "assigned:", perNode)
	// Output: 4 of 6 assigned: map[n1:2 n2:2]
}
