// SPDX-License-Identifier: Apache-2.0

// Package netguard restricts the addresses the service connects to: an
// optional allow-list of networks for the callbacks (Creatio) and one for the
// mail servers, for deployments that must stop the API from being used to
// reach other hosts (server-side request forgery). The check runs in the
// dialer's Control hook, on the address actually connected to after name
// resolution, so a host name that resolves to a forbidden address (or is
// re-pointed between checks, DNS rebinding) is refused too.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// ErrForbidden is wrapped by every refusal.
var ErrForbidden = errors.New("netguard: address not in the allowed networks")

// Allow is a set of allowed networks. A nil *Allow allows everything.
type Allow struct {
	name     string // the setting, for messages
	prefixes []netip.Prefix
}

// Parse reads a comma- or space-separated list of CIDR prefixes or single
// addresses ("10.0.0.0/8, 192.168.1.5, fd00::/8"). An empty list returns nil:
// no restriction. name is the setting's name, used in messages.
func Parse(name, list string) (*Allow, error) {
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, nil
	}
	a := &Allow{name: name}
	for _, f := range fields {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			addr, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is neither a network (10.0.0.0/8) nor an address", name, f)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		a.prefixes = append(a.prefixes, p.Masked())
	}
	return a, nil
}

// Allowed reports whether ip is in one of the networks.
func (a *Allow) Allowed(ip netip.Addr) bool {
	if a == nil {
		return true
	}
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check refuses a host:port whose host is not an allowed IP address.
func (a *Allow) Check(address string) error {
	if a == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w (%s): cannot read %q", ErrForbidden, a.name, address)
	}
	if !a.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is not in %s", ErrForbidden, ap.Addr(), a.name)
	}
	return nil
}

// Control is a net.Dialer Control hook applying Check; nil for a nil *Allow,
// so that an unrestricted dialer has no hook at all.
func (a *Allow) Control() func(network, address string, c syscall.RawConn) error {
	if a == nil {
		return nil
	}
	return func(_, address string, _ syscall.RawConn) error { return a.Check(address) }
}
