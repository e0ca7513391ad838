// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// failoverOptions configures the failover scenario.
type failoverOptions struct {
	commonOptions
	Nodes   int           // service processes sharing one Redis
	Mail    int           // emails appended to the killed node's mailboxes right after the kill
	Settle  time.Duration // wait after all exist before the kill
	Timeout time.Duration // budget from the kill until the survivors serve everything
}

// runFailover measures a node crash in a cluster: Nodes service processes share
// one Redis and N mailboxes; the node holding the most is killed with SIGKILL,
// Mail emails go to its mailboxes at once, and the scenario reports how long
// until every one of its mailboxes is "exists" on a survivor, and whether every
// email arrived.
func runFailover(ctx context.Context, o failoverOptions) (res *Result, err error) {
	p := o.params()
	p["nodes"], p["mail"] = o.Nodes, o.Mail
	res = newResult("failover", p)
	defer res.finish()

	rdir, err := os.MkdirTemp(o.WorkDir, "elbench-redis-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(rdir)
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: rdir, Logf: o.Logf})
	if err != nil {
		return res, err
	}
	defer r.Stop()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cluster := []string{"EL_REDIS_URL=redis://" + r.Addr, "EL_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key)}

	so := o.stackOptions
	so.Env = append(append(cluster, "EL_NODE_ID=n1"), so.Env...)
	s, err := startStack(ctx, so)
	if err != nil {
		return res, err
	}
	defer s.closeInto(res)
	nodes := map[string]*service{"n1": s.svc}
	for i := 2; i <= o.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		svc, err := s.startPeer(ctx, name, append(cluster, "EL_NODE_ID="+name))
		if err != nil {
			return res, err
		}
		nodes[name] = svc
	}
	o.Logf("%d nodes up, Redis %s", o.Nodes, r.Addr)
	var rss0 int64
	for _, svc := range nodes {
		b, err := rssBytes(svc.Pid())
		if err != nil {
			return res, err
		}
		rss0 += b
	}
	if err := registerAll(ctx, s, o.commonOptions, res); err != nil {
		return res, err
	}
	if !res.OK {
		return res, nil
	}
	if _, err := s.settle(ctx, o.Settle, o.N, 20*time.Second); err != nil {
		return res, err
	}

	var rss1 int64
	for _, svc := range nodes {
		b, err := rssBytes(svc.Pid())
		if err != nil {
			return res, err
		}
		rss1 += b
	}
	res.Metrics.Add("cluster_rss_per_mailbox_kib", float64(rss1-rss0)/1024/float64(o.N), "KiB",
		"(sum of the nodes' VmRSS after all exist - before registering) / N: memory per mailbox in cluster mode")
	st, err := s.api.states(ctx, o.N)
	if err != nil {
		return res, err
	}
	perNode := map[string]int{}
	for _, v := range st {
		perNode[v.Node]++
	}
	res.Notes["mailboxes_per_node"] = perNode
	victim := ""
	for name := range nodes {
		if victim == "" || perNode[name] > perNode[victim] {
			victim = name
		}
	}
	var mine []int // the victim's mailboxes
	for i := range o.N {
		if st[mailboxID(i)].Node == victim {
			mine = append(mine, i)
		}
	}
	survivor := "n1"
	if victim == "n1" {
		survivor = "n2"
	}
	via := newAPI(nodes[survivor].base, 4)
	defer via.close()

	// The appenders log in before the kill: their logins must not compete
	// with the survivors' for Dovecot during the failover.
	pl, err := openPoolFor(ctx, s.dc, mine[:min(o.Mail, len(mine))])
	if err != nil {
		return res, err
	}
	defer pl.close()
	o.Logf("killing %s (holds %d of %d mailboxes) with SIGKILL", victim, len(mine), o.N)
	killed := time.Now()
	_ = nodes[victim].cmd.Process.Signal(syscall.SIGKILL)
	<-nodes[victim].done
	seqs := appendDuring(ctx, pl)
	sent := len(seqs)
	res.Metrics.Add("mail_sent", float64(sent), "", "emails appended to the killed node's mailboxes right after the kill")

	// Poll until every mailbox of the victim is exists on a survivor.
	var took time.Duration
	moved := 0
	for {
		st, err := via.states(ctx, o.N)
		if err == nil {
			moved = 0
			for _, i := range mine {
				if v := st[mailboxID(i)]; v.State == "exists" && v.Node != victim && v.Node != "" {
					moved++
				}
			}
			if moved == len(mine) {
				took = time.Since(killed)
				break
			}
		}
		if time.Since(killed) > o.Timeout {
			res.fail("%d of %d mailboxes of %s exist on a survivor %v after the kill", moved, len(mine), victim, o.Timeout)
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	o.Logf("failover: %d mailboxes exist on survivors %v after the kill", moved, took.Round(time.Millisecond))

	arrived := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		arrived = 0
		for _, seq := range seqs {
			if _, ok := s.arrivals.first(seq); ok {
				arrived++
			}
		}
		if arrived == sent || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	dups := 0
	for _, seq := range seqs {
		if n := len(s.arrivals.all(seq)); n > 1 {
			dups += n - 1
		}
	}
	m := &res.Metrics
	m.Add("nodes", float64(o.Nodes), "", "")
	m.Add("victim_mailboxes", float64(len(mine)), "", "mailboxes the killed node held")
	m.Add("moved", float64(moved), "", "of them exists on a survivor at the end")
	if took > 0 {
		m.Add("failover_s", took.Seconds(), "s", "SIGKILL until all of the killed node's mailboxes exist on survivors")
	}
	m.Add("mail_lost", float64(sent-arrived), "", "emails sent after the kill that never arrived (must be 0)")
	m.Add("mail_duplicates", float64(dups), "", "extra deliveries of those emails")
	if arrived < sent {
		res.fail("%d of %d emails sent after the kill never arrived", sent-arrived, sent)
	}
	return res, nil
}

// appendDuring appends one small email through each connection of pl (8 at
// a time); message seq k goes to pl.conns[k]'s mailbox. It returns the seqs
// appended.
func appendDuring(ctx context.Context, pl *pool) []int {
	msgs := newMessages(2048, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok []int
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for k := range next {
				c := pl.conns[k]
				if _, _, err := c.append(msgs.build(k, c.mailbox)); err == nil {
					mu.Lock()
					ok = append(ok, k)
					mu.Unlock()
				}
			}
		})
	}
	for k := range pl.conns {
		select {
		case next <- k:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return ok
}
