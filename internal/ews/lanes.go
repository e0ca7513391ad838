// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// maxLanes bounds the connections one Client holds for NTLM: a stream keeps
// one for its whole life, ordinary calls share the others.
const maxLanes = 4

// lanes give every NTLM exchange a connection of its own. NTLM authenticates
// a TCP connection through a three-message handshake, and net/http's pool
// hands any idle connection to the next request: with requests in parallel
// (a stream and the calls of a catch-up) the handshake's last message can
// leave on another connection than its first, and the server refuses it. A
// lane is a clone of the transport limited to one connection, held by one
// request from its first byte until its response body is closed; its
// connection stays authenticated for the requests that take the lane later.
type lanes struct {
	tmpl *http.Transport
	free chan *http.Transport // capacity maxLanes

	mu   sync.Mutex
	made []*http.Transport
}

func newLanes(t *http.Transport) *lanes {
	return &lanes{tmpl: t, free: make(chan *http.Transport, maxLanes)}
}

// acquire takes a free lane, makes one while fewer than maxLanes exist, or
// waits for one.
func (l *lanes) acquire(ctx context.Context) (*http.Transport, error) {
	select {
	case t := <-l.free:
		return t, nil
	default:
	}
	l.mu.Lock()
	if len(l.made) < maxLanes {
		t := l.lane()
		l.made = append(l.made, t)
		l.mu.Unlock()
		return t, nil
	}
	l.mu.Unlock()
	select {
	case t := <-l.free:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *lanes) release(t *http.Transport) { l.free <- t }

// streamKey marks a request whose response is a notification stream: it
// holds its connection for up to half an hour, so it gets a lane of its own,
// outside the pool (a client streaming for many groups would otherwise use up
// every lane).
type streamKey struct{}

// dedicated returns a lane for one stream, and the function that ends it.
func (l *lanes) dedicated() (*http.Transport, func()) {
	t := l.lane()
	return t, t.CloseIdleConnections
}

// lane clones the template for one connection. The TLS configuration is
// shared, not copied (net/http copies it per connection anyway): a copy per
// lane costs 1.4 KiB, for thousands of mailboxes.
func (l *lanes) lane() *http.Transport {
	t := l.tmpl.Clone()
	t.TLSClientConfig = l.tmpl.TLSClientConfig
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = 1, 1
	return t
}

// closeIdle closes the idle connection of every lane.
func (l *lanes) closeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.made {
		t.CloseIdleConnections()
	}
}

// laneBody gives the lane back when the response body is closed.
type laneBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *laneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
