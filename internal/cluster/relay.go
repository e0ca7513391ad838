// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/obs"
	"github.com/emaillistener/emaillistener/internal/redisconf"
)

// RelayClient is the part of go-redis a Relay uses.
type RelayClient interface {
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Relay carries opaque messages of one topic to every node, the sender
// included, over a Redis pub/sub channel of their own (not the events
// channel: a burst of them must not cost placement a resync). Delivery is at
// most once; a node away from Redis misses what was sent meanwhile, so a
// topic carries only hints whose loss costs time, not data (Graph change
// notifications: the safety poll finds what a lost one announced).
type Relay struct {
	client  RelayClient
	channel string
	handle  func(msg []byte)
	log     *slog.Logger
	panics  *obs.Panics
	// published, failed and received count the topic's messages.
	published, failed, received prometheus.Counter

	mu   sync.Mutex
	ps   *redis.PubSub
	done chan struct{}
}

// RelayOptions configures NewRelay. Topic and Handle are required.
type RelayOptions struct {
	Prefix string // default redisconf.DefaultPrefix
	Topic  string
	// Handle gets every message, one at a time, on the relay's goroutine;
	// it must not block.
	Handle     func(msg []byte)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Panics     *obs.Panics
}

// NewRelay returns the relay of opts.Topic; it does no I/O.
func NewRelay(client RelayClient, opts RelayOptions) *Relay {
	if opts.Logger == nil {
		opts.Logger = obs.Discard()
	}
	if opts.Prefix == "" {
		opts.Prefix = redisconf.DefaultPrefix
	}
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emaillistener_cluster_relay_messages_total",
		Help: "Messages of a cluster relay topic (graph-notifications: Graph change notifications for another replica's subscriptions), by result: published, failed (Redis did not take it), received (by this node, its own included).",
	}, []string{"topic", "result"})
	if opts.Registerer != nil {
		// Relays of several topics share the one metric.
		var are prometheus.AlreadyRegisteredError
		if err := opts.Registerer.Register(messages); errors.As(err, &are) {
			messages = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &Relay{client: client, channel: keys{prefix: opts.Prefix}.relay(opts.Topic), handle: opts.Handle, log: opts.Logger,
		panics: opts.Panics, published: messages.WithLabelValues(opts.Topic, "published"),
		failed: messages.WithLabelValues(opts.Topic, "failed"), received: messages.WithLabelValues(opts.Topic, "received")}
}

// Start subscribes and starts receiving; Redis trouble is not an error
// (go-redis re-subscribes after reconnecting).
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ps != nil {
		return errors.New("cluster: relay started twice")
	}
	r.ps = r.client.Subscribe(ctx, r.channel)
	if _, err := r.ps.Receive(ctx); err != nil {
		r.log.Warn("cluster relay: subscribe failed; retrying in the background", "channel", r.channel, "err", err)
	}
	r.done = make(chan struct{})
	ch := r.ps.Channel()
	go func() {
		defer close(r.done)
		for msg := range ch {
			r.deliver([]byte(msg.Payload))
		}
	}()
	return nil
}

// deliver hands one message to handle; a panic there is recovered and
// counted, and the relay goes on.
func (r *Relay) deliver(msg []byte) {
	r.received.Inc()
	defer r.panics.Recover(r.log, "cluster relay", nil)
	r.handle(msg)
}

// Forward publishes msg to every node's relay of the topic.
func (r *Relay) Forward(ctx context.Context, msg []byte) error {
	if err := r.client.Publish(ctx, r.channel, msg).Err(); err != nil {
		r.failed.Inc()
		return fmt.Errorf("cluster: relay publish: %w", err)
	}
	r.published.Inc()
	return nil
}

// Stop unsubscribes and waits, within ctx, for the receiver to end.
func (r *Relay) Stop(ctx context.Context) error {
	r.mu.Lock()
	ps, done := r.ps, r.done
	r.mu.Unlock()
	if ps == nil {
		return nil
	}
	_ = ps.Close() // closes the channel the receiver ranges over
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: relay stop: %w", context.Cause(ctx))
	}
}
