// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

func TestRedisStartPasswordRestart(t *testing.T) {
	r := NewRedisT(t, RedisOptions{Password: "pw", User: "app", UserPassword: "apppw", TLS: true})
	if !r.ping() {
		t.Fatal("no PONG")
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if !r.ping() {
		t.Fatal("no PONG after restart")
	}
	c, err := tls.Dial("tcp", r.TLSAddr, r.TLSConfig())
	if err != nil {
		t.Fatalf("TLS: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("AUTH app apppw\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	got := string(buf[:n])
	if !strings.HasPrefix(got, "+OK") {
		t.Fatalf("ACL user over TLS: %q", got)
	}
	// Without the password the server refuses.
	pc, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, _ = pc.Write([]byte("PING\r\n"))
	n, _ = pc.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "-NOAUTH") {
		t.Fatalf("no password: %q", buf[:n])
	}
}
