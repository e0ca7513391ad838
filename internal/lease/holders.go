// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// holdersBatch bounds the GETs of one pipeline.
const holdersBatch = 1000

// Holders returns the node holding each of ids' leases right now, as Redis
// sees it; ids nobody holds are absent. Any node can ask: it is how a node
// tells a live subscription from a state record left by a node that is gone
// or no longer serves the mailbox.
func (m *Manager) Holders(ctx context.Context, ids []mail.MailboxID) (map[mail.MailboxID]string, error) {
	out := make(map[mail.MailboxID]string, len(ids))
	for chunk := range slices.Chunk(ids, holdersBatch) {
		p := m.client.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = p.Get(ctx, LeaseKey(m.opts.Prefix, id))
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("lease: read holders (%d): %w", len(ids), err)
		}
		for i, cmd := range cmds {
			v, err := cmd.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("lease: read holders: %w", err)
			}
			if node, _, ok := ParseValue(v); ok {
				out[chunk[i]] = node
			}
		}
	}
	return out, nil
}
