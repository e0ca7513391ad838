// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DeliverFile writes raw as a new message straight into the Maildir of user's folder,
// creating the folder if needed, and returns the file's path. It needs no running server,
// which is the point: mail that "arrives while the server is down" for reconnect tests.
// A running Dovecot notices the file like any local delivery (new/ is watched with
// inotify); a stopped one picks it up on the next SELECT after Restart.
//
// folder is an IMAP name with "/" as separator ("" or "INBOX" is the inbox). Only
// printable ASCII without '.' and '&' is accepted, because Maildir++ uses '.' as its
// on-disk separator and '&' starts modified UTF-7 (RFC 3501 §5.1.3).
func (d *Dovecot) DeliverFile(user, folder string, raw []byte) (string, error) {
	if err := validUserName(user); err != nil {
		return "", err
	}
	rel, err := maildirFolder(folder)
	if err != nil {
		return "", err
	}
	home := filepath.Join(mailRoot(d.Dir), user)
	dirs := []string{home, filepath.Join(home, "Maildir")}
	box := filepath.Join(home, "Maildir", rel)
	if rel != "" {
		dirs = append(dirs, box)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		dirs = append(dirs, filepath.Join(box, sub))
	}
	for _, dir := range dirs {
		if err := d.mkdirOwned(dir); err != nil {
			return "", err
		}
	}
	if rel != "" {
		// Maildir++ marks subfolders with an empty "maildirfolder" file.
		if err := d.writeOwned(filepath.Join(box, "maildirfolder"), nil); err != nil {
			return "", err
		}
	}
	// Maildir delivery (maildir(5)): write into tmp/, then rename into new/ so a reader
	// never sees a partial file. ",S=<size>" lets Dovecot skip a stat; the sequence
	// number keeps names unique within the nanosecond-resolution timestamp.
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.testenv,S=%d", now.Unix(), now.Nanosecond()/1000,
		os.Getpid(), d.deliverSeq.Add(1), len(raw))
	tmp := filepath.Join(box, "tmp", name)
	if err := d.writeOwned(tmp, raw); err != nil {
		return "", err
	}
	dst := filepath.Join(box, "new", name)
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("testenv: deliver: %w", err)
	}
	return dst, nil
}

// maildirFolder maps an IMAP folder name to its Maildir++ directory below ~/Maildir.
func maildirFolder(folder string) (string, error) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return "", nil
	}
	parts := strings.Split(folder, "/")
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, ".&") {
			return "", fmt.Errorf("testenv: folder %q not supported by DeliverFile (empty part, '.' or '&')", folder)
		}
		for _, r := range p {
			if r < 0x20 || r > 0x7e {
				return "", fmt.Errorf("testenv: folder %q not supported by DeliverFile (non-ASCII)", folder)
			}
		}
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX" // Dovecot stores children of the inbox under the canonical name
	}
	return "." + strings.Join(parts, "."), nil
}

// mkdirOwned creates dir (one level) owned by the mail user. As root, files we create
// would otherwise be root's and Dovecot, running as the dovecot user, could not move
// them from new/ to cur/ or write dovecot-uidlist.
func (d *Dovecot) mkdirOwned(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testenv: deliver: %w", err)
	}
	return d.chownMail(dir)
}

func (d *Dovecot) writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("testenv: deliver: %w", err)
	}
	return d.chownMail(path)
}

func (d *Dovecot) chownMail(path string) error {
	if !d.owner.root {
		return nil
	}
	if err := os.Chown(path, d.owner.uid, d.owner.gid); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}
