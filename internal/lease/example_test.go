// SPDX-License-Identifier: Apache-2.0

package lease_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/lease"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

func ExampleManager() {
	dir, _ := os.MkdirTemp("", "lease-example")
	defer os.RemoveAll(dir)
	srv, err := testenv.StartRedis(testenv.RedisOptions{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	ctx := context.Background()

	a, _ := lease.New(client, "node-a", lease.Options{TTL: 15 * time.Second})
	b, _ := lease.New(client, "node-b", lease.Options{TTL: 15 * time.Second})
	_ = a.Start(ctx)
	_ = b.Start(ctx)
	defer b.Stop(ctx)

	la, _ := a.Obtain(ctx, "9a7c1d6e-0000-4000-8000-000000000001")
	fmt.Println("node-a holds it; fence > 0:", la.Fence() > 0)

	_, err = b.Obtain(ctx, la.ID())
	var held *lease.HeldError
	if errors.As(err, &held) {
		fmt.Println("node-b must wait for", held.Holder)
	}

	// The holder stops work on la.Done(); a graceful node hands over with Stop
	// (or Release), and the peer obtains at once with a higher fence.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-la.Done()
		fmt.Println("node-a stops:", la.Err())
	}()
	_ = a.Stop(ctx)
	<-stopped
	lb, err := b.Obtain(ctx, la.ID())
	fmt.Println("node-b obtained:", err == nil, "higher fence:", err == nil && lb.Fence() > la.Fence())
	// Output:
	// node-a holds it; fence > 0: true
	// node-b must wait for node-a
	// node-a stops: lease: released
	// node-b obtained: true higher fence: true
}
