// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
)

// TestAllFoldersAndExclusions: with FolderIds empty every mail folder is watched
// (INBOX by IDLE, the others by STATUS polls) except Trash, Junk and Drafts.
func TestAllFoldersAndExclusions(t *testing.T) {
	e := newEnv(t, nil)
	for _, f := range []string{"Sent", "Trash", "Junk", "Drafts", "Projects/Проект"} {
		if err := e.dc.CreateFolder("alice@example.com", "alicepw", f); err != nil {
			t.Fatal(err)
		}
	}
	const id = "5e1f0000-0000-4000-8000-00000000f01d"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw"}))
	st := e.waitState(id, "exists", 10*time.Second)
	folders := strings.Join(anyStrings(st["Folders"]), ",")
	if folders != "INBOX,Projects,Projects/Проект,Sent" && folders != "INBOX,Sent,Projects,Projects/Проект" {
		// Order after INBOX follows the server's LIST order.
		if !strings.HasPrefix(folders, "INBOX,") || !strings.Contains(folders, "Sent") || !strings.Contains(folders, "Projects/Проект") ||
			strings.Contains(folders, "Trash") || strings.Contains(folders, "Junk") || strings.Contains(folders, "Drafts") {
			t.Fatalf("watched folders = %s", folders)
		}
	}
	for _, f := range []string{"Trash", "Junk", "Drafts"} {
		e.appendMail("alice@example.com", "alicepw", f, simpleMail("excluded-"+f, "x-"+f+"@example.com"))
	}
	e.appendMail("alice@example.com", "alicepw", "Sent", simpleMail("in-sent", "sent@example.com"))
	e.appendMail("alice@example.com", "alicepw", "Projects/Проект", simpleMail("in-project", "proj@example.com"))
	e.waitEmails("in-sent", 1, 10*time.Second)
	e.waitEmails("in-project", 1, 10*time.Second)
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("in-inbox", "inbox@example.com"))
	e.waitEmails("in-inbox", 1, 10*time.Second)
	// Give the poller two more rounds before checking exclusions.
	time.Sleep(1200 * time.Millisecond)
	if n := len(e.emails("excluded-")); n != 0 {
		t.Errorf("%d emails from Trash/Junk/Drafts delivered", n)
	}
}

// TestChosenFolderAndUIDValidity: FolderIds limits the subscription to the given
// folders; when a folder's UIDVALIDITY changes, what arrived after the last
// delivered message is delivered and what was delivered is not: a folder
// deleted and re-created with the same message appended again (a new arrival
// to the server) gets it again; a folder whose index is rebuilt (same files,
// same arrival dates) gets nothing twice. The folder is the IDLE one, so the
// change is found by the periodic re-EXAMINE (IdleMax).
func TestChosenFolderAndUIDValidity(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.IMAPIdleMax = time.Second })
	if err := e.dc.CreateFolder("alice@example.com", "alicepw", "Clients"); err != nil {
		t.Fatal(err)
	}
	const id = "5e1f0000-0000-4000-8000-0000000c11e7"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw", Folders: []string{"Clients"}}))
	st := e.waitState(id, "exists", 10*time.Second)
	if f := anyStrings(st["Folders"]); len(f) != 1 || f[0] != "Clients" {
		t.Fatalf("folders = %v", f)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("not-watched", "nw@example.com"))
	e.appendMail("alice@example.com", "alicepw", "Clients", simpleMail("client-1", "c1@example.com"))
	e.waitEmails("client-1", 1, 10*time.Second)
	if n := len(e.emails("not-watched")); n != 0 {
		t.Errorf("INBOX mail delivered for a Clients-only subscription")
	}

	// Re-create the folder: new UIDVALIDITY, and the same message is there again.
	c, err := e.dc.Client("alice@example.com", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Clients").Wait(); err != nil {
		t.Fatal(err)
	}
	_ = c.Logout().Wait()
	_ = c.Close()
	e.appendMail("alice@example.com", "alicepw", "Clients", simpleMail("client-1", "c1@example.com"))
	e.appendMail("alice@example.com", "alicepw", "Clients", simpleMail("client-2", "c2@example.com"))
	e.waitEmails("client-2", 1, 15*time.Second)
	// client-1 appended again is a new arrival (delivered again, Creatio
	// deduplicates by MessageId) unless it lands in the second of the first
	// delivery, where its Message-ID marks it as delivered.
	time.Sleep(500 * time.Millisecond)
	n1 := len(e.emails("client-1"))
	if n1 != 1 && n1 != 2 {
		t.Errorf("client-1 delivered %d times", n1)
	}
	e.waitState(id, "exists", 10*time.Second)

	// The folder's index is lost (dovecot-uidlist and the index files): a
	// new UIDVALIDITY for the same messages.
	box := filepath.Join(e.dc.Dir, "mail", "alice@example.com", "Maildir", ".Clients")
	files, _ := filepath.Glob(filepath.Join(box, "dovecot*"))
	if len(files) == 0 {
		t.Fatalf("no index files in %s", box)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.dc.Restart(); err != nil {
		t.Fatal(err)
	}
	e.appendMail("alice@example.com", "alicepw", "Clients", simpleMail("client-3", "c3@example.com"))
	e.waitEmails("client-3", 1, 15*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if m1, n2 := len(e.emails("client-1")), len(e.emails("client-2")); m1 != n1 || n2 != 1 {
		t.Errorf("after the index rebuild client-1 was delivered %d times (want %d), client-2 %d (want 1)", m1, n1, n2)
	}
	e.once("client-3")
}

func anyStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
