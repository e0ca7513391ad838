// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// LeaseKey is the key of id's lease: a string "<node>|<fence>" that expires
// after the lease TTL. The {id} hash tag puts it in the same Redis Cluster slot
// as FenceKey and as the store's per-mailbox keys, so scripts may touch them
// together. Exported for the store's fenced writes and for operators.
func LeaseKey(prefix string, id mail.MailboxID) string {
	return prefix + "lease:{" + string(id) + "}"
}

// FenceKey is the key of id's fence counter: the last fencing token issued
// (an integer without TTL). It must outlive the lease, so it is never deleted.
func FenceKey(prefix string, id mail.MailboxID) string {
	return prefix + "fence:{" + string(id) + "}"
}

// value is the lease key's content for node and fence.
func value(node string, fence uint64) string {
	return node + "|" + strconv.FormatUint(fence, 10)
}

// ParseValue splits a lease key's value into the holder's node id and fence.
func ParseValue(v string) (node string, fence uint64, ok bool) {
	i := strings.LastIndexByte(v, '|')
	if i < 0 {
		return "", 0, false
	}
	f, err := strconv.ParseUint(v[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return v[:i], f, true
}
