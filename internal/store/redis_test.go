// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/secret"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/store/storetest"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

func newBox(t testing.TB) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	b, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newClient(t testing.TB, o *redis.Options) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping %s: %v", o.Addr, err)
	}
	return c
}

func newRedisStore(t testing.TB, c redis.UniversalClient, o *store.RedisOptions) *store.Redis {
	t.Helper()
	s, err := store.NewRedis(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var prefixSeq atomic.Int64

// runContract runs the store contract on c, each subtest under its own prefix.
func runContract(t *testing.T, c redis.UniversalClient, box *secret.Box, plaintext bool) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return newRedisStore(t, c, &store.RedisOptions{Prefix: fmt.Sprintf("t%d:", prefixSeq.Add(1)), Box: box, AllowPlaintext: plaintext})
	}, store.ErrNotFound)
}

func TestRedisContract(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		r := testenv.NewRedisT(t, testenv.RedisOptions{})
		runContract(t, newClient(t, &redis.Options{Addr: r.Addr}), newBox(t), false)
	})
	t.Run("plaintext records", func(t *testing.T) {
		r := testenv.NewRedisT(t, testenv.RedisOptions{})
		runContract(t, newClient(t, &redis.Options{Addr: r.Addr}), nil, true)
	})
	t.Run("requirepass and ACL user", func(t *testing.T) {
		r := testenv.NewRedisT(t, testenv.RedisOptions{Password: "default-pw", User: "el", UserPassword: "el-pw"})
		t.Run("default user", func(t *testing.T) {
			runContract(t, newClient(t, &redis.Options{Addr: r.Addr, Password: "default-pw", DB: 3}), newBox(t), false)
		})
		t.Run("ACL user", func(t *testing.T) {
			runContract(t, newClient(t, &redis.Options{Addr: r.Addr, Username: "el", Password: "el-pw"}), newBox(t), false)
		})
		c := redis.NewClient(&redis.Options{Addr: r.Addr, Username: "el", Password: "wrong", MaxRetries: -1})
		defer c.Close()
		if err := c.Ping(context.Background()).Err(); err == nil {
			t.Fatal("wrong password accepted")
		}
	})
	t.Run("TLS", func(t *testing.T) {
		r := testenv.NewRedisT(t, testenv.RedisOptions{TLS: true, User: "el", UserPassword: "el-pw"})
		runContract(t, newClient(t, &redis.Options{Addr: r.TLSAddr, TLSConfig: r.TLSConfig(), Username: "el", Password: "el-pw"}), newBox(t), false)
	})
}

func TestRedisRecordHidesCredentials(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	c := newClient(t, &redis.Options{Addr: r.Addr})
	ctx := context.Background()
	m := storetest.FullMailbox("1111aaaa-2222-4bbb-8ccc-333333dddddd")
	m.Password, m.AccessToken = "Pa55-w0rd-in-the-clear", "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.access-token-in-the-clear"
	m.Client, m.WebhookURL, m.WebhookSecret = mail.ClientNative, "https://hooks.example.com/in-the-clear", "webhook-secret-in-the-clear"
	secrets := []string{m.Password, m.AccessToken, m.UserName, m.Host, m.Endpoint, m.Context, m.WebhookURL, m.WebhookSecret}

	s := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	if err := s.PutMailbox(ctx, m); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Get(ctx, "el:mb:{"+string(m.ID)+"}").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secrets {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the stored record contains %q in clear text", v)
		}
	}
	if raw[0] != 1 {
		t.Errorf("record starts with %d, want the secret.Box version 1", raw[0])
	}
	if got, err := s.Mailbox(ctx, m.ID); err != nil || got.Password != m.Password || got.AccessToken != m.AccessToken {
		t.Fatalf("read back: %v", err)
	}

	// The check above can see clear text: a plaintext store shows it.
	p := newRedisStore(t, c, &store.RedisOptions{Prefix: "plain:", AllowPlaintext: true})
	if err := p.PutMailbox(ctx, m); err != nil {
		t.Fatal(err)
	}
	raw, _ = c.Get(ctx, "plain:mb:{"+string(m.ID)+"}").Bytes()
	if !bytes.Contains(raw, []byte(m.Password)) || raw[0] != 0 {
		t.Fatal("plaintext record does not look like one; the test above proves nothing")
	}
}

func TestRedisRefusesWithoutKey(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: NewRedis does no I/O
	defer c.Close()
	for _, o := range []*store.RedisOptions{nil, {}, {Prefix: "x:"}} {
		if _, err := store.NewRedis(c, o); !errors.Is(err, store.ErrNoKey) {
			t.Errorf("NewRedis(%+v) err = %v, want ErrNoKey", o, err)
		}
	}
	if _, err := store.NewRedis(c, &store.RedisOptions{AllowPlaintext: true}); err != nil {
		t.Errorf("AllowPlaintext: %v", err)
	}
	for _, p := range []string{"el{x}:", "a}", "{"} {
		if _, err := store.NewRedis(c, &store.RedisOptions{Prefix: p, Box: newBox(t)}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	if _, err := store.NewRedis(nil, &store.RedisOptions{Box: newBox(t)}); err == nil {
		t.Error("nil client accepted")
	}
}

func TestRedisKeysAndTampering(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	c := newClient(t, &redis.Options{Addr: r.Addr})
	ctx := context.Background()
	box := newBox(t)
	s := newRedisStore(t, c, &store.RedisOptions{Box: box})
	a, b := storetest.FullMailbox("a"), storetest.FullMailbox("b")
	for _, m := range []*mail.Mailbox{a, b} {
		if err := s.PutMailbox(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCursor(ctx, "a", "INBOX", mail.Cursor{Data: "7:42:1764316800", Fence: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStatus(ctx, "a", mail.Status{State: "exists"}); err != nil {
		t.Fatal(err)
	}

	// Key layout.
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"el:cur:{a}", "el:mailboxes", "el:mb:{a}", "el:mb:{b}", "el:st:{a}"}; !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	if v := c.HGet(ctx, "el:cur:{a}", "INBOX").Val(); v != "7:42:1764316800:3" {
		t.Fatalf("cursor encoding = %q", v)
	}

	// A record copied to another mailbox id does not open.
	raw := c.Get(ctx, "el:mb:{a}").Val()
	c.Set(ctx, "el:mb:{b}", raw, 0)
	if _, err := s.Mailbox(ctx, "b"); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("record moved from a to b: err = %v, want secret.ErrOpen", err)
	}
	// Listing skips (quarantines) it and returns the others.
	if mbs, err := s.Mailboxes(ctx); err != nil || len(mbs) != 1 || mbs[0].ID != "a" || s.Unreadable() != 1 {
		t.Fatalf("Mailboxes with a bad record: %d mailboxes, %d unreadable, err %v", len(mbs), s.Unreadable(), err)
	}
	var re *store.RecordError
	if _, err := s.Mailbox(ctx, "b"); !errors.As(err, &re) || re.ID != "b" {
		t.Fatalf("bad record: err = %#v, want *store.RecordError", err)
	}
	// Any altered byte is detected.
	alt := []byte(raw)
	alt[len(alt)/2] ^= 1
	c.Set(ctx, "el:mb:{a}", alt, 0)
	if _, err := s.Mailbox(ctx, "a"); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("altered record: err = %v", err)
	}
	// Another key cannot open it.
	c.Set(ctx, "el:mb:{a}", raw, 0)
	other := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	if _, err := other.Mailbox(ctx, "a"); !errors.Is(err, secret.ErrOpen) {
		t.Fatalf("wrong key: err = %v", err)
	}
	// A store without a key cannot read sealed records.
	plain := newRedisStore(t, c, &store.RedisOptions{AllowPlaintext: true})
	if _, err := plain.Mailbox(ctx, "a"); err == nil || !strings.Contains(err.Error(), "no secret key") {
		t.Fatalf("sealed record without key: err = %v", err)
	}
	// A plaintext record (written without a key) is refused by a store with a
	// key, unless plaintext is explicitly allowed (migration).
	if err := plain.PutMailbox(ctx, storetest.FullMailbox("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, "p"); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("plaintext record read by a keyed store: err = %v", err)
	}
	migrating := newRedisStore(t, c, &store.RedisOptions{Box: box, AllowPlaintext: true})
	if m, err := migrating.Mailbox(ctx, "p"); err != nil || m.Password != storetest.FullMailbox("p").Password {
		t.Fatalf("migration read: %v", err)
	}
	// Corrupt cursors are errors, not zero values.
	c.HSet(ctx, "el:cur:{a}", "Bad", "1:2:x")
	if _, _, err := s.Cursor(ctx, "a", "Bad"); err == nil {
		t.Fatal("corrupt cursor read without error")
	}
}

// The fenced write survives a lost script cache (Redis restart or failover):
// go-redis falls back from EVALSHA to EVAL.
func TestRedisScriptCacheLoss(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	c := newClient(t, &redis.Options{Addr: r.Addr})
	ctx := context.Background()
	s := newRedisStore(t, c, &store.RedisOptions{Box: newBox(t)})
	if err := s.PutCursor(ctx, "m", "INBOX", mail.Cursor{Data: "1:1:0", Fence: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCursor(ctx, "m", "INBOX", mail.Cursor{Data: "1:2:0", Fence: 1}); !errors.Is(err, store.ErrStaleFence) {
		t.Fatalf("after SCRIPT FLUSH: err = %v, want ErrStaleFence", err)
	}
	if err := s.PutCursor(ctx, "m", "INBOX", mail.Cursor{Data: "1:3:0", Fence: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = r.Stop()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
}

// MailboxIDs lists the registry without reading the records, in order.
func TestRedisMailboxIDs(t *testing.T) {
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	s := newRedisStore(t, newClient(t, &redis.Options{Addr: r.Addr}), &store.RedisOptions{Box: newBox(t)})
	ctx := context.Background()
	for _, id := range []mail.MailboxID{"c", "a", "b"} {
		if err := s.PutMailbox(ctx, &mail.Mailbox{ID: id, Host: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMailbox(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	ids, err := s.MailboxIDs(ctx)
	if err != nil || !slices.Equal(ids, []mail.MailboxID{"a", "c"}) {
		t.Fatalf("MailboxIDs = %v, %v; want [a c]", ids, err)
	}
}
