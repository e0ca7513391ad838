// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/store/storetest"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// A node restarted with the wrong secret key opens nothing: it says so
// (Health) instead of silently serving no mailbox. With the right key, one
// bad record is skipped and every other mailbox is listed.
func TestRedisWrongKeyIsLoud(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	c := newClient(t, &redis.Options{Addr: r.Addr})
	ctx := context.Background()
	right := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	for i := range 5 {
		if err := right.PutMailbox(ctx, storetest.FullMailbox(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := right.Health(); err != nil {
		t.Fatalf("before any listing: %v", err)
	}
	wrong := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	mbs, err := wrong.Mailboxes(ctx)
	if err != nil || len(mbs) != 0 {
		t.Fatalf("wrong key: %d mailboxes, err %v", len(mbs), err)
	}
	if err := wrong.Health(); !errors.Is(err, store.ErrNoReadableRecord) {
		t.Fatalf("wrong key: Health() = %v, want ErrNoReadableRecord", err)
	}
	if wrong.Unreadable() != 5 {
		t.Fatalf("unreadable = %d, want 5", wrong.Unreadable())
	}
	// Creatio re-registers a mailbox (its failover job): sealed with this
	// node's key, it is readable and leaves the quarantine.
	if err := wrong.PutMailbox(ctx, storetest.FullMailbox("m0")); err != nil {
		t.Fatal(err)
	}
	if mbs, _ := wrong.Mailboxes(ctx); len(mbs) != 1 || wrong.Unreadable() != 4 || wrong.Health() != nil {
		t.Fatalf("after re-registration: %d mailboxes, %d unreadable, health %v", len(mbs), wrong.Unreadable(), wrong.Health())
	}
	// The right key now sees 4 of 5 (m0 is sealed with the other key), healthy.
	if mbs, err := right.Mailboxes(ctx); err != nil || len(mbs) != 4 || right.Health() != nil {
		t.Fatalf("right key: %d mailboxes, err %v, health %v", len(mbs), err, right.Health())
	}
}
