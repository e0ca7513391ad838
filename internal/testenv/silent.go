// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"net"
	"sync"
	"testing"
)

// SilentListener accepts TCP connections on a loopback port and never says
// or reads anything: a peer that hangs (a mail server that never greets, a
// callback that never answers). It returns host:port; everything is closed
// when the test ends.
func SilentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
