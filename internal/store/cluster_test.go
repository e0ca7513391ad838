// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/redisconf"
	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// startClusterNode starts a one-node Redis Cluster owning all 16384 slots. One
// node is enough to prove the key layout: Redis Cluster refuses multi-key
// commands and scripts whose keys hash to different slots (CROSSSLOT) on any
// number of nodes.
func startClusterNode(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal(testenv.ErrNoRedis) // fail, never skip, like testenv.NewRedisT
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := fmt.Sprintf("bind 127.0.0.1\nport %s\nprotected-mode no\ndir %s\nsave \"\"\nappendonly no\n"+
		"cluster-enabled yes\ncluster-config-file nodes.conf\nlogfile %s\n", port, dir, filepath.Join(dir, "redis.log"))
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", filepath.Join(dir, "redis.conf"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("cluster node not answering:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatal("cluster state not ok")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr
}

func TestRedisClusterContract(t *testing.T) {
	addr := startClusterNode(t)
	o, err := redisconf.Options(redisconf.Config{URL: "redis://" + addr + "?cluster=true"})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want a cluster client", rdb)
	}
	runContract(t, rdb, newBox(t), false)

	// The keys of one mailbox share a slot (so DEL and scripts may touch them
	// together); different mailboxes spread over slots.
	ctx := context.Background()
	k := func(kind, id string) string { return "el:" + kind + ":{" + id + "}" }
	slot := func(key string) int64 { return rdb.ClusterKeySlot(ctx, key).Val() }
	for _, id := range []string{"1111aaaa-2222-4bbb-8ccc-333333dddddd", "a}b", "a{b", "x"} {
		s := slot(k("mb", id))
		if slot(k("cur", id)) != s || slot(k("st", id)) != s || slot("el:lease:{"+id+"}") != s {
			t.Errorf("keys of mailbox %q are in different slots", id)
		}
	}
	if slot(k("mb", "a")) == slot(k("mb", "b")) && slot(k("mb", "c")) == slot(k("mb", "d")) {
		t.Error("mailboxes do not spread over slots")
	}
	// And the store works for such ids.
	s := newRedisStore(t, rdb, &store.RedisOptions{Box: newBox(t), Prefix: "odd:"})
	for _, id := range []mail.MailboxID{"a}b", "a{b"} {
		if err := s.PutCursor(ctx, id, "INBOX", mail.Cursor{Data: "1:1:0"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMailbox(ctx, &mail.Mailbox{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMailbox(ctx, id); err != nil {
			t.Fatalf("DeleteMailbox(%q): %v", id, err)
		}
	}
}

// startSentinel starts a redis-server in Sentinel mode watching master (quorum
// 1) and returns its address once it knows the master.
func startSentinel(t *testing.T, master *testenv.Redis) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(addr)
	mhost, mport, _ := net.SplitHostPort(master.Addr)
	dir := t.TempDir()
	// Sentinel rewrites its configuration file, so it lives in the temp dir.
	conf := fmt.Sprintf("bind 127.0.0.1\nport %s\nprotected-mode no\ndir %s\nlogfile %s\n"+
		"sentinel monitor elmaster %s %s 1\nsentinel down-after-milliseconds elmaster 5000\n",
		port, dir, filepath.Join(dir, "sentinel.log"), mhost, mport)
	if err := os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", filepath.Join(dir, "sentinel.conf"), "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := sc.GetMasterAddrByName(context.Background(), "elmaster").Result()
		if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == master.Addr {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("sentinel does not know the master (%v, %v):\n%s", got, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The store runs through Sentinel: the URL names the Sentinel and the master
// set (master_name), go-redis' universal client asks the Sentinel for the
// master and the contract suite passes against it.
func TestRedisSentinelContract(t *testing.T) {
	master := testenv.NewRedisT(t, testenv.RedisOptions{})
	sentinel := startSentinel(t, master)
	o, err := redisconf.Options(redisconf.Config{URL: "redis://" + sentinel + "?master_name=elmaster"})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	if _, ok := rdb.(*redis.Client); !ok || o.MasterName != "elmaster" {
		t.Fatalf("client is %T with master %q, want a failover client for elmaster", rdb, o.MasterName)
	}
	runContract(t, rdb, newBox(t), false)
	// The data went to the master Sentinel named.
	direct := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer direct.Close()
	if n, err := direct.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Fatalf("master holds %d keys (%v), want the contract suite's data", n, err)
	}
}
