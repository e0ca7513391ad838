// SPDX-License-Identifier: Apache-2.0

package store

import (
	"fmt"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// keys builds every Redis key name the store uses; nothing else spells one.
//
//	<prefix>mailboxes        set of all registered mailbox ids (one key; fine on
//	                         Redis Cluster: SADD/SREM/SMEMBERS touch it alone)
//	<prefix>mb:{<id>}        string: the mailbox record, sealed (see redis.go)
//	<prefix>cur:{<id>}       hash: folder -> "<cursor data>:<fence>"
//	<prefix>st:{<id>}        string: the status record
//	<prefix>epoch            string: the data set's marker (see Redis.Epoch)
//
// The {<id>} hash tag puts all keys of one mailbox in one Redis Cluster slot,
// so a script or a multi-key DEL may touch them together. Other packages that
// keep per-mailbox keys a script must see with these (a lease) should use the
// same tag.
type keys struct{ prefix string }

// validPrefix rejects braces: a '{' in the prefix would move the hash tag off
// the mailbox id and scatter one mailbox's keys over several slots.
func validPrefix(p string) error {
	if strings.ContainsAny(p, "{}") {
		return fmt.Errorf("store: key prefix %q must not contain { or }", p)
	}
	return nil
}

func (k keys) mailboxes() string { return k.prefix + "mailboxes" }

func (k keys) epoch() string { return k.prefix + "epoch" }

func (k keys) mailbox(id mail.MailboxID) string { return k.prefix + "mb:{" + string(id) + "}" }

func (k keys) cursors(id mail.MailboxID) string { return k.prefix + "cur:{" + string(id) + "}" }

func (k keys) status(id mail.MailboxID) string { return k.prefix + "st:{" + string(id) + "}" }
