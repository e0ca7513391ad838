// SPDX-License-Identifier: Apache-2.0

package cluster

// Key layout (prefix default "el:"):
//
//	el:node:<id>  string, JSON Node, PX TTL   a live node (heartbeat)
//	el:nodes      zset id -> last beat (unix ms)   index for listing; entries
//	                                               whose key expired are pruned
//	el:events     pub/sub channel               "nodes" on join/leave, and the
//	                                            messages of Publish
//	el:relay:<topic>  pub/sub channel           a Relay's messages
type keys struct{ prefix string }

func (k keys) node(id string) string     { return k.prefix + "node:" + id }
func (k keys) registry() string          { return k.prefix + "nodes" }
func (k keys) events() string            { return k.prefix + "events" }
func (k keys) relay(topic string) string { return k.prefix + "relay:" + topic }
