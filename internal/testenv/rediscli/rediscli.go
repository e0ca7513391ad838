// SPDX-License-Identifier: Apache-2.0

// Package rediscli gives tests a go-redis client for a testenv Redis. It is
// separate from testenv, which speaks RESP itself so that the harness does not
// depend on a client library.
package rediscli

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// New returns a client for r that gives up quickly while the server is down
// (outage tests stop it: one quick dial, one retry), closed at cleanup.
func New(t testing.TB, r *testenv.Redis) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: r.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: 1,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts a private redis-server for the test (stopped at cleanup) and
// returns it with a New client.
func Start(t testing.TB) (*testenv.Redis, *redis.Client) {
	t.Helper()
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	return r, New(t, r)
}
