// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/obs"
)

var (
	errBeatTimeout = errors.New("cluster: heartbeat timed out")
	errNotRunning  = errors.New("cluster: not running")
)

// run is the loop goroutine; a panic is counted and the loop restarted (its
// state is only a cache and a timer).
func (m *Membership) run(ctx context.Context) {
	defer close(m.loopDone)
	defer m.timer.Stop()
	for m.runSafe(ctx) {
	}
}

func (m *Membership) runSafe(ctx context.Context) (panicked bool) {
	defer m.opts.Panics.Recover(m.log, "cluster", &panicked)
	m.loop(ctx)
	return false
}

func (m *Membership) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.timer.C():
			m.timer.Reset(m.opts.Beat) // first: beats start every Beat, however long one takes
			_ = m.heartbeat(ctx)
			m.refresh(ctx)
		case <-m.kick:
			m.refresh(ctx)
		case f := <-m.actions:
			f()
		}
	}
}

// do runs f on the loop goroutine and waits for it.
func (m *Membership) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case m.actions <- func() { defer close(done); f() }:
		<-done
		return nil
	case <-m.loopDone:
		return errNotRunning
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// heartbeat writes this node's key with the TTL and its registry entry, and
// announces the node when it (re)joins or its Leaving flag changes; loop
// goroutine (or Start, before the loop runs).
func (m *Membership) heartbeat(ctx context.Context) error {
	now := m.opts.Clock.Now()
	n := m.self
	n.Owned = int(m.owned.Load())
	n.Leaving = m.leaving.Load()
	n.Updated = now
	data, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("cluster: heartbeat: %w", err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.opts.Beat, errBeatTimeout)
	defer cancel()
	announce := !m.joined || n.Leaving != m.self.Leaving || m.reannounce
	pipe := m.client.Pipeline()
	set := pipe.SetArgs(ctx, m.keys.node(n.ID), data, redis.SetArgs{TTL: m.opts.TTL, Get: true})
	pipe.ZAdd(ctx, m.keys.registry(), redis.Z{Score: float64(now.UnixMilli()), Member: n.ID})
	if announce {
		pipe.Publish(ctx, m.keys.events(), EventNodes)
	}
	cmds, _ := pipe.Exec(ctx) // errors are read per command: SET GET replies redis.Nil for a new key
	for _, cmd := range cmds {
		if err = cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			break
		}
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("cluster: heartbeat: %w", err)
		m.met.beatFailures.Inc()
		m.beat.Store(&beatState{at: m.beat.Load().at, err: err})
		m.noteError("heartbeat", err)
		return err
	}
	if m.joined && errors.Is(set.Err(), redis.Nil) {
		m.suspectDataLoss(now, "heartbeat key vanished before its TTL")
		if !announce { // tell the peers now: they refresh and re-beat too
			announce = m.client.Publish(ctx, m.keys.events(), EventNodes).Err() == nil
		}
	}
	m.beat.Store(&beatState{at: now})
	m.noteError("heartbeat", nil)
	if announce {
		m.joined, m.reannounce = true, false
		m.self.Leaving = n.Leaving
		m.log.Info("cluster heartbeat announced", "leaving", n.Leaving, "capacity", n.Capacity)
	}
	return nil
}

// suspectDataLoss notes that our heartbeat key was gone although we had
// joined: Redis restarted empty or failed over to a replica without it, or
// Redis (or our link to it) was down for longer than the TTL. Then the peers'
// keys are likely gone too until their next beat, so for two beats the view
// takes no removals (live peers re-beat within one); loop goroutine.
func (m *Membership) suspectDataLoss(now time.Time, why string) {
	if now.Before(m.recoverUntil) {
		return
	}
	m.recoverUntil = now.Add(2 * m.opts.Beat)
	m.reannounce = true
	m.log.Warn("cluster: Redis appears to have lost its data; keeping the member view for two beats", "why", why)
}

// refresh re-reads the member list into the view and kicks Changes when the
// member set differs; loop goroutine. While Redis recovers from data loss,
// members missing from Redis stay in the view (see suspectDataLoss).
func (m *Membership) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeoutCause(ctx, m.opts.Beat, errBeatTimeout)
	defer cancel()
	nodes, err := m.Members(ctx)
	now := m.opts.Clock.Now()
	if err == nil && m.joined && !hasNode(nodes, m.opts.NodeID) {
		m.suspectDataLoss(now, "own heartbeat key missing")
		if m.heartbeat(ctx) == nil {
			nodes, err = m.Members(ctx)
		}
	}
	m.noteError("refresh", err)
	if err != nil {
		return
	}
	if now.Before(m.recoverUntil) {
		for _, old := range m.View() {
			if !hasNode(nodes, old.ID) {
				nodes = append(nodes, old)
			}
		}
		slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	}
	m.view.Store(&nodes)
	m.met.members.Set(float64(len(nodes)))
	sig := signature(nodes)
	if sig == m.sig {
		return
	}
	m.log.Info("cluster members changed", "members", sig)
	m.sig = sig
	m.met.changes.Inc()
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

func hasNode(nodes []Node, id string) bool {
	return slices.ContainsFunc(nodes, func(n Node) bool { return n.ID == id })
}

// signature describes what placement depends on: ids, capacities, leaving.
func signature(nodes []Node) string {
	var b strings.Builder
	for i, n := range nodes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.ID)
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(n.capacity()))
		if n.Leaving {
			b.WriteString("/leaving")
		}
	}
	return b.String()
}

// noteError logs an operation's Redis trouble when it differs from the last,
// and its recovery once; loop goroutine.
func (m *Membership) noteError(op string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == m.lastErr[op] {
		return
	}
	m.lastErr[op] = msg
	if err == nil {
		m.log.Info("cluster membership recovered", "op", op)
		return
	}
	if obs.Expected(err) { // shutting down
		m.log.Debug("cluster membership: interrupted", "op", op, "err", err)
		return
	}
	m.log.Warn("cluster membership: Redis trouble; retrying every beat", "op", op, "err", err, "beat", m.opts.Beat.String(), "last_beat", m.beat.Load().at.Format(time.RFC3339Nano))
}
