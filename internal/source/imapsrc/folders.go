// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Folder is one LISTed folder.
type Folder = mail.Folder

// Folders lists every folder (LIST "" "*"), asking for special-use attributes
// when the server supports them.
func (c *Conn) Folders(ctx context.Context) ([]Folder, error) {
	var out []Folder
	err := c.run(ctx, "list folders", commandLimits(listBudget), func() error {
		var opts *imap.ListOptions
		if caps := c.c.Caps(); caps.Has(imap.CapSpecialUse) && caps.Has(imap.CapListExtended) {
			opts = &imap.ListOptions{ReturnSpecialUse: true}
		}
		list, err := c.c.List("", "*", opts).Collect()
		if err != nil {
			return err
		}
		for _, l := range list {
			f := Folder{Name: l.Mailbox, Delim: l.Delim, Selectable: true}
			for _, a := range l.Attrs {
				f.Attrs = append(f.Attrs, string(a))
				if a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent {
					f.Selectable = false
				}
			}
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// Attributes and names of folders that "all folders" leaves out: copies users
// would not want in a CRM (trash, spam, drafts) and virtual views that only
// duplicate other folders (Gmail's All Mail, Starred, Important).
var (
	skipAttrs = []string{`\Trash`, `\Junk`, `\Drafts`, `\All`, `\Flagged`, `\Important`}
	skipNames = []string{"trash", "deleted items", "deleted messages", "deleted", "junk", "junk e-mail",
		"junk email", "spam", "bulk mail", "drafts", "outbox", "sync issues", "conflicts",
		"local failures", "server failures"}
)

// WatchByDefault reports whether f is synced when the client asks for all folders.
func WatchByDefault(f Folder) bool {
	if !f.Selectable {
		return false
	}
	for _, a := range f.Attrs {
		if slices.ContainsFunc(skipAttrs, func(s string) bool { return strings.EqualFold(s, a) }) {
			return false
		}
	}
	leaf := f.Name
	if f.Delim != 0 {
		if i := strings.LastIndex(leaf, string(f.Delim)); i >= 0 {
			leaf = leaf[i+1:]
		}
	}
	// A folder inside Trash or Junk is as unwanted as the folder itself.
	for _, part := range strings.FieldsFunc(f.Name, func(r rune) bool { return f.Delim != 0 && r == f.Delim }) {
		if slices.Contains(skipNames, strings.ToLower(part)) {
			return false
		}
	}
	return !slices.Contains(skipNames, strings.ToLower(leaf))
}
