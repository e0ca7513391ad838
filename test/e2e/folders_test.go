package e2e

import (
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
// folders; when a folder's UIDVALIDITY changes (deleted and re-created), recent
// mail is re-delivered conservatively instead of being skipped. The folder is
// the IDLE one, so the change is found by the periodic re-EXAMINE (IdleMax).
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
	e.waitEmails("client-1", 2, 5*time.Second) // re-delivered: Creatio deduplicates by MessageId
	e.waitState(id, "exists", 10*time.Second)
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
