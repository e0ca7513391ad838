// SPDX-License-Identifier: Apache-2.0

package source

import (
	"slices"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestWatched(t *testing.T) {
	imap := []mail.Folder{
		{Name: "Archive", Selectable: true}, {Name: "INBOX", Selectable: true},
		{Name: "Trash", Selectable: true}, {Name: "[Gmail]", Selectable: false},
	}
	// Exchange: opaque ids; the inbox is known by its flag, not its name.
	ews := []mail.Folder{
		{Name: "AAMkAD1=", Display: "Sent Items", Selectable: true},
		{Name: "AAMkAD2=", Display: "Inbox", Selectable: true, Inbox: true},
		{Name: "AAMkAD3=", Display: "Projects", Parent: "AAMkAD2=", Selectable: true},
	}
	noTrash := func(f mail.Folder) bool { return f.Name != "Trash" }
	never := func(mail.Folder) bool { return false }
	for _, c := range []struct {
		name        string
		list        []mail.Folder
		configured  []string
		byDefault   func(mail.Folder) bool
		out, missed []string
	}{
		{"imap all", imap, nil, nil, []string{"INBOX", "Archive", "Trash"}, nil},
		{"imap default filter", imap, nil, noTrash, []string{"INBOX", "Archive"}, nil},
		{"imap configured, inbox any case, first", imap, []string{"Trash", "inbox", "Gone", "[Gmail]"}, nil,
			[]string{"INBOX", "Trash"}, []string{"Gone", "[Gmail]"}},
		{"exchange default is the inbox only", ews, nil, never, []string{"AAMkAD2="}, nil},
		{"exchange configured ids", ews, []string{"AAMkAD3=", "AAMkAD2="}, never, []string{"AAMkAD2=", "AAMkAD3="}, nil},
		{"exchange inbox by name", ews, []string{"Inbox", "AAMkAD1="}, never, []string{"AAMkAD2=", "AAMkAD1="}, nil},
		{"duplicates once", ews, []string{"AAMkAD2=", "inbox"}, never, []string{"AAMkAD2="}, nil},
	} {
		out, missed := Watched(c.list, c.configured, c.byDefault)
		if !slices.Equal(out, c.out) || !slices.Equal(missed, c.missed) {
			t.Errorf("%s: Watched = %q, missing %q; want %q, missing %q", c.name, out, missed, c.out, c.missed)
		}
	}
}
