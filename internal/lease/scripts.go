// SPDX-License-Identifier: Apache-2.0

package lease

import (
	"context"
	_ "embed"
	"errors"

	"github.com/redis/go-redis/v9"
)

// The scripts; each file's header lists its KEYS, ARGV and return values.
var (
	//go:embed scripts/obtain.lua
	obtainLua string
	//go:embed scripts/renew.lua
	renewLua string
	//go:embed scripts/release.lua
	releaseLua string

	obtainScript  = redis.NewScript(obtainLua)
	renewScript   = redis.NewScript(renewLua)
	releaseScript = redis.NewScript(releaseLua)
)

// Client is the part of go-redis the lease manager uses: scripts, and pipelines
// for the batched renewal. *redis.Client, *redis.ClusterClient, *redis.Ring
// and every redis.UniversalClient satisfy it.
type Client interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

var _ Client = redis.UniversalClient(nil)

// isNoScript reports whether err is Redis' "script not cached" reply (after a
// restart, failover or SCRIPT FLUSH). Matched by prefix, never by full text.
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// evalBatch runs script once per args entry in one pipeline (one round trip),
// by EVALSHA. If the server lost its script cache, the script is loaded and the
// rejected calls are sent again: one extra round trip, once per Redis restart.
// It returns one reply per call; a transport failure fails every call.
func evalBatch(ctx context.Context, c Client, s *redis.Script, keys [][]string, args [][]any) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(keys))
	pipe := c.Pipeline()
	for i := range keys {
		cmds[i] = s.EvalSha(ctx, pipe, keys[i], args[i]...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var retry []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return cmds
	}
	if err := s.Load(ctx, c).Err(); err != nil {
		return cmds
	}
	pipe = c.Pipeline()
	for _, i := range retry {
		cmds[i] = s.EvalSha(ctx, pipe, keys[i], args[i]...)
	}
	_, _ = pipe.Exec(ctx)
	return cmds
}
