// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// TestCursorFromPreviousRelease: a mailbox whose Redis cursor was written by
// the release before opaque cursors ("uidvalidity:lastuid:lastdate:fence" in
// the mailbox's cursor hash) continues from exactly that cursor after the
// upgrade: the mail after it is delivered, the mail before it is not.
func TestCursorFromPreviousRelease(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	dc := testenv.NewT(t, testenv.DovecotOptions{AnyPassword: "pw", ExtraConf: "mail_fsync = never"})
	col := testenv.NewCollectorT(t)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	const id, user = "0ba5e000-0000-4000-8000-000000000001", "upgrade@example.com"
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	body := fmt.Sprintf(`[{Id:"%s",UserName:"%s",Password:"pw",ServiceUrl:"%s",Port:%s,SecureOption:0,`+
		`ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"%s",FolderIds:["INBOX"]}]`,
		id, user, host, port, imapServerType, col.Endpoint(), user)

	// Five messages on the server; the previous release acknowledged three.
	for i := 1; i <= 5; i++ {
		if _, err := dc.Append(user, "pw", "INBOX", simpleMail(fmt.Sprintf("upgrade-%d", i), fmt.Sprintf("upgrade-%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := dc.Client(user, "pw")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{UIDValidity: true}).Wait()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The registration, as that release left it in Redis (the record format
	// did not change), then its cursor, written the way that release wrote it.
	n := startNode(t, "node-1", r, dc, key)
	n.post(t, "/api/listeners/create", body)
	n.stop(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	legacy := fmt.Sprintf("%d:%d:%d:%d", st.UIDValidity, 3, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).Unix(), 7)
	if err := rdb.HSet(context.Background(), "el:cur:{"+id+"}", "INBOX", legacy).Err(); err != nil {
		t.Fatal(err)
	}
	before := len(col.Emails())

	m := startNode(t, "node-1", r, dc, key)
	m.waitAllExist(t, []string{id}, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = col.WaitFor(ctx, func([]testenv.Request) bool { return countSubject(col, "upgrade-") >= 2 })
	time.Sleep(500 * time.Millisecond) // anything re-delivered would arrive now
	var got []string
	for _, e := range col.Emails()[before:] {
		if s, _ := e.Data["Subject"].(string); strings.HasPrefix(s, "upgrade-") {
			got = append(got, s)
		}
	}
	if strings.Join(got, ",") != "upgrade-4,upgrade-5" {
		t.Fatalf("after the upgrade delivered %v, want exactly upgrade-4 and upgrade-5", got)
	}
	cur, err := rdb.HGet(context.Background(), "el:cur:{"+id+"}", "INBOX").Result()
	t.Logf("cursor after the upgrade: %q", cur)
	if err != nil || !strings.HasPrefix(cur, fmt.Sprintf("%d:5:", st.UIDValidity)) {
		t.Fatalf("cursor after the upgrade = %q, %v; want UID 5 under the same UIDVALIDITY", cur, err)
	}
}
