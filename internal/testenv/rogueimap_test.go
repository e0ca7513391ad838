// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestRogueIMAPHonest: without behaviours the rogue is a working IMAP server
// for go-imap, and it counts what it got.
func TestRogueIMAPHonest(t *testing.T) {
	r := NewRogueIMAPT(t)
	c, err := imapclient.DialInsecure(r.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("u", "secret-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 2, Stop: 0}}, &imap.FetchOptions{
		UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	want := RogueMessages()
	if err != nil || len(msgs) != 2 || !bytes.Equal(msgs[1].FindBodySection(section), want[2].Raw) ||
		msgs[0].RFC822Size != int64(len(want[1].Raw)) {
		t.Fatalf("fetch 2:* = %d messages, %v", len(msgs), err)
	}
	search, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil || len(search.AllUIDs()) != 3 {
		t.Fatalf("search = %v, %v", search, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	if r.Connections() != 1 || r.CommandCount("UID FETCH 2:*") != 1 || r.CommandCount("secret-pw") != 0 {
		t.Errorf("%d connections, commands %q", r.Connections(), r.Commands())
	}
}

// TestRogueIMAPClose: Close ends endless responses at once, even to a client
// that stopped reading.
func TestRogueIMAPClose(t *testing.T) {
	r, err := StartRogueIMAP(RogueListEndless)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("a LOGIN u p\r\nb LIST \"\" \"*\"\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server fills the socket buffers and blocks
	t0 := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}
