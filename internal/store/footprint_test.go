// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// maxBytesPerMailbox is the Redis footprint budget of issue #4.
const maxBytesPerMailbox = 2048

// footprintMailbox is a typical IMAP mailbox as Creatio registers it.
func footprintMailbox(i int) *mail.Mailbox {
	return &mail.Mailbox{
		ID:   mail.MailboxID(fmt.Sprintf("%08x-2222-4bbb-8ccc-333333dddddd", i)),
		Kind: mail.ServerIMAP, ServerType: "844f0837-eaa0-4f40-b965-71f5db9eae6e",
		Host: "imap.example-company.com", Port: 993, UseSSL: true, Secure: mail.SecureSSL,
		UserName: fmt.Sprintf("firstname.lastname%04d@example-company.com", i), Password: "Correct-Horse-42!",
		FolderIDs: []string{"INBOX", "Sent Items", "Archive/2025/Customers"},
		Endpoint:  "https://mycompany.creatio.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",
		User:      "Supervisor", Workspace: "Default", TimeZone: "W. Europe Standard Time",
		SenderAddress: fmt.Sprintf("firstname.lastname%04d@example-company.com", i),
		Context:       "{UserRequested:true,HasError:false}",
		Features:      map[string]bool{"MarkEmailsAsSynchronized": true, "UseBinaryData": false},
		Extra:         map[string]string{"ServiceUrl": "imap.example-company.com", "UseFullEmail": "true"},
	}
}

// TestRedisFootprint measures Redis memory per mailbox (record, 3 folder
// cursors, status, set member) over 1000 mailboxes and fails above 2 KB.
// MEMORY USAGE counts each key with its value; the used_memory delta also
// counts the keyspace's hash table buckets.
func TestRedisFootprint(t *testing.T) {
	const n = 1000
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	c := newClient(t, &redis.Options{Addr: r.Addr})
	ctx := context.Background()
	s := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	before := usedMemory(t, c)

	now := time.Now()
	for i := range n {
		m := footprintMailbox(i)
		if err := s.PutMailbox(ctx, m); err != nil {
			t.Fatal(err)
		}
		for j, f := range m.FolderIDs {
			cur := mail.Cursor{Data: fmt.Sprintf("%d:%d:%d", 1764316800+j, 123456+i, now.Unix()), Fence: 12345}
			if err := s.PutCursor(ctx, m.ID, f, cur); err != nil {
				t.Fatal(err)
			}
		}
		st := mail.Status{State: "exists", Node: "emaillistener-2", Since: now, LastEventAt: now, Delivered: 1234, Folders: m.FolderIDs}
		if err := s.PutStatus(ctx, m.ID, st); err != nil {
			t.Fatal(err)
		}
	}
	delta := usedMemory(t, c) - before

	perKind := map[string]int64{}
	var total int64
	iter := c.Scan(ctx, 0, "el:*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		// SAMPLES 0: count every member of the ids set, not an estimate.
		u, err := c.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		kind, _, _ := strings.Cut(strings.TrimPrefix(key, "el:"), ":")
		perKind[kind] += u
		total += u
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	m := footprintMailbox(0)
	sealed := c.StrLen(ctx, "el:mb:{"+string(m.ID)+"}").Val()
	var kinds []string
	for k := range perKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s=%d", k, perKind[k]/n)
	}
	t.Logf("Redis memory per mailbox over %d mailboxes (3 cursors and a status each): MEMORY USAGE %d B (%s), used_memory delta %d B; sealed record value %d B",
		n, total/n, strings.TrimSpace(b.String()), delta/n, sealed)
	// The lease package adds two keys per mailbox (its layout as of writing: a
	// lease string "<node>|<fence>" with a TTL and a fence counter); counted
	// here so the budget covers everything a mailbox costs in Redis.
	var leaseTotal int64
	for i := range n {
		id := string(footprintMailbox(i).ID)
		c.Set(ctx, "el:lease:{"+id+"}", "emaillistener-2|12345", 30*time.Second)
		c.Set(ctx, "el:fence:{"+id+"}", 12345, 0)
		leaseTotal += c.MemoryUsage(ctx, "el:lease:{"+id+"}", 0).Val() + c.MemoryUsage(ctx, "el:fence:{"+id+"}", 0).Val()
	}
	withLease := total/n + leaseTotal/n
	t.Logf("with the lease package's lease and fence keys: %d B per mailbox (MEMORY USAGE)", withLease)

	// Informational: an OAuth mailbox carries its access token (Microsoft's JWTs
	// are 1.5-2.5 KB), which no encoding can shrink much.
	o := footprintMailbox(n)
	o.Password, o.UseOAuth, o.AccessToken = "", true, strings.Repeat("x", 1800)
	if err := s.PutMailbox(ctx, o); err != nil {
		t.Fatal(err)
	}
	ou := c.MemoryUsage(ctx, "el:mb:{"+string(o.ID)+"}", 0).Val()
	t.Logf("an OAuth mailbox with a 1800-byte access token: record key %d B, so about %d B per mailbox", ou, total/n-perKind["mb"]/n+ou)
	if total/n > maxBytesPerMailbox || delta/n > maxBytesPerMailbox || withLease > maxBytesPerMailbox {
		t.Fatalf("footprint %d B (MEMORY USAGE) / %d B (used_memory) / %d B with lease keys per mailbox, budget %d B",
			total/n, delta/n, withLease, maxBytesPerMailbox)
	}
}

func usedMemory(t *testing.T, c redis.UniversalClient) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}
