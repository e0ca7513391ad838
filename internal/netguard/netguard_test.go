// SPDX-License-Identifier: Apache-2.0

package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestParseAndAllowed(t *testing.T) {
	a, err := Parse("EL_MAIL_NETWORKS", "10.0.0.0/8, 192.168.1.5 fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "192.168.1.5": true, "192.168.1.6": false, "127.0.0.1": false,
		"fd00::1": true, "::1": false, "::ffff:10.0.0.1": true,
	} {
		if got := a.Allowed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", ip, got, want)
		}
	}
	if a, err := Parse("X", " , "); a != nil || err != nil {
		t.Errorf("empty list: %v %v, want nil, nil", a, err)
	}
	if _, err := Parse("X", "10.0.0.0/33"); err == nil {
		t.Error("bad prefix accepted")
	}
	var none *Allow
	if !none.Allowed(netip.MustParseAddr("8.8.8.8")) || none.Control() != nil || none.Check("x") != nil {
		t.Error("a nil *Allow must allow everything and install no hook")
	}
}

// The hook sees the resolved address: a name resolving to a forbidden
// address is refused before any byte is sent.
func TestControlRefusesResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	deny, _ := Parse("EL_CALLBACK_NETWORKS", "10.0.0.0/8")
	d := net.Dialer{Timeout: time.Second, Control: deny.Control()}
	if _, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial localhost with 10/8 allowed: %v, want ErrForbidden", err)
	}
	allow, _ := Parse("EL_CALLBACK_NETWORKS", "127.0.0.0/8")
	d.Control = allow.Control()
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial 127.0.0.1 with 127/8 allowed: %v", err)
	}
	c.Close()
}
