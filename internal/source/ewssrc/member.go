// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/source/wake"
)

// member is one mailbox's streaming subscription in a group. The group's
// goroutine reports to it (wake.Box.Notify, Fail); the mailbox's session
// waits on it.
type member struct {
	*wake.Box
	g       *group
	addr    string
	folders []string // the watched folder ids, as subscribed
	c       *ews.Client
	target  ews.Target // the mailbox's own target (own-connection groups)
}

func newMember(addr string, folders []string, c *ews.Client, t ews.Target) *member {
	b := wake.New(folders)
	return &member{Box: b, addr: addr, folders: b.Folders(), c: c, target: t}
}

// folderIDs are the folders to subscribe.
func (m *member) folderIDs() []ews.FolderID {
	ids := make([]ews.FolderID, len(m.folders))
	for i, f := range m.folders {
		ids[i] = ews.FolderID{ID: f}
	}
	return ids
}

// leave takes the member out of its group and drops its subscription.
func (m *member) leave() { m.g.remove(m) }
