// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// sentNames are the usual full names of the Sent folder, most common first, for
// servers that do not mark it with the \Sent attribute (RFC 6154): Dovecot and
// Courier defaults, Outlook/Exchange, Apple Mail, Gmail, and the Russian name
// Russian mail clients create.
var sentNames = []string{
	"Sent", "Sent Items", "Sent Messages", "Sent Mail",
	"INBOX.Sent", "INBOX/Sent", "INBOX.Sent Items", "INBOX.Sent Messages",
	"[Gmail]/Sent Mail", "[Google Mail]/Sent Mail",
	"Отправленные", "INBOX.Отправленные", "INBOX/Отправленные",
}

// sentLeaves are last path segments that also mark a Sent folder below another
// one (e.g. "Mail/Sent" on a server with a personal namespace prefix).
var sentLeaves = []string{"sent", "sent items", "sent messages", "sent mail", "отправленные"}

// AppendSent stores raw, a message just sent, in the mailbox's Sent folder with
// the \Seen flag and returns the folder's name. The folder is the one with the
// \Sent special-use attribute (LIST RETURN (SPECIAL-USE) when the server
// supports it), else the first existing one of the usual names (sentNames). When
// there is none, it fails with a config-class error rather than create a
// folder the user's mail client would not use anyway.
//
// Servers that file sent mail themselves (Gmail, Microsoft 365) would get a
// second copy; the caller decides whether to call AppendSent.
func (c *Conn) AppendSent(ctx context.Context, raw []byte) (folder string, err error) {
	folders, err := c.Folders(ctx)
	if err != nil {
		return "", err
	}
	folder = sentFolder(folders)
	if folder == "" {
		return "", mail.Errorf(mail.ClassConfig, "append sent", "no Sent folder: none is marked \\Sent and none has a usual name (%s)", strings.Join(sentNames[:4], ", "))
	}
	err = c.run(ctx, "append "+folder, commandLimits(commandBudget), func() error {
		cmd := c.c.Append(folder, int64(len(raw)), &imap.AppendOptions{
			Flags: []imap.Flag{imap.FlagSeen},
			Time:  time.Now(),
		})
		if _, err := cmd.Write(raw); err != nil {
			_ = cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
	if err != nil {
		return "", err
	}
	return folder, nil
}

// sentFolder picks the Sent folder from a LIST result, "" if there is none.
func sentFolder(folders []Folder) string {
	usable := slices.DeleteFunc(slices.Clone(folders), func(f Folder) bool { return !f.Selectable })
	for _, f := range usable {
		if slices.ContainsFunc(f.Attrs, func(a string) bool { return strings.EqualFold(a, `\Sent`) }) {
			return f.Name
		}
	}
	for _, name := range sentNames {
		for _, f := range usable {
			if strings.EqualFold(f.Name, name) {
				return f.Name
			}
		}
	}
	for _, leaf := range sentLeaves {
		for _, f := range usable {
			if strings.EqualFold(leafName(f), leaf) {
				return f.Name
			}
		}
	}
	return ""
}

func leafName(f Folder) string {
	if f.Delim == 0 {
		return f.Name
	}
	if i := strings.LastIndex(f.Name, string(f.Delim)); i >= 0 {
		return f.Name[i+len(string(f.Delim)):]
	}
	return f.Name
}
