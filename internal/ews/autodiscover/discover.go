// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Implementation notes.
//
//   - One discoverer per Discover call, used by that goroutine only.
//   - hops counts every redirect followed (URL and address); passing
//     MaxRedirects ends the discovery at once (a chain that long is a loop or
//     an attack, and the other candidates would only extend it).
//   - tried holds kind+URL+address of every request sent: a redirect back to
//     one of them is a loop; a derived candidate already asked is skipped.
//   - attempts is appended in the order candidates were tried, for the final
//     error; it never holds a password or token (URLs are shown without
//     query or user information).

// kind is the autodiscover flavour a URL is asked in.
type kind string

const (
	kindSOAP kind = "soap"
	kindPOX  kind = "pox"
)

// candidate is one autodiscover URL to ask.
type candidate struct {
	u    *url.URL
	kind kind
	// speculative marks candidates derived by guessing (the bare domain):
	// their certificate or connection failures are common and tell little, so
	// they do not decide the class of the final error.
	speculative bool
	// redirected marks a redirect target: being already tried is a loop.
	redirected bool
}

// targets returns the SOAP and POX candidates for an autodiscover URL: a
// .svc URL and its .xml sibling, an .xml URL and its .svc sibling, or a base
// URL's /autodiscover/autodiscover.svc and .xml. SOAP comes first: it is the
// richer protocol (GroupingInformation) and Microsoft's recommendation.
func targets(u *url.URL, speculative bool) []candidate {
	base := *u
	base.RawQuery, base.Fragment, base.RawFragment = "", "", ""
	p := base.Path
	lp := strings.ToLower(p)
	var svc, xml string
	switch {
	case strings.HasSuffix(lp, "/autodiscover.svc"):
		svc, xml = p, p[:len(p)-len(".svc")]+".xml"
	case strings.HasSuffix(lp, "/autodiscover.xml"):
		svc, xml = p[:len(p)-len(".xml")]+".svc", p
	default:
		p = strings.TrimSuffix(p, "/")
		svc, xml = p+"/autodiscover/autodiscover.svc", p+"/autodiscover/autodiscover.xml"
	}
	s, x := base, base
	s.Path, s.RawPath = svc, ""
	x.Path, x.RawPath = xml, ""
	return []candidate{{u: &s, kind: kindSOAP, speculative: speculative}, {u: &x, kind: kindPOX, speculative: speculative}}
}

// kindFor is the flavour to ask at a redirect target: by its file name,
// else the flavour that was redirected.
func kindFor(u *url.URL, prev kind) kind {
	lp := strings.ToLower(u.Path)
	switch {
	case strings.HasSuffix(lp, ".svc"):
		return kindSOAP
	case strings.HasSuffix(lp, ".xml"):
		return kindPOX
	}
	return prev
}

// Discover finds the EWS URL of the mailbox at email. It blocks for up to
// Options.Timeout and returns a *Result, or an error that is a *mail.Error
// (mail.ClassConfig for an unusable address or options) holding an *Error
// that lists every candidate tried; a cancelled ctx returns its error.
func Discover(ctx context.Context, email string, o Options) (*Result, error) {
	if o.HTTP == nil {
		return nil, mail.Errorf(mail.ClassInternal, "autodiscover", "Options.HTTP is required")
	}
	o.setDefaults()
	addr, domain, err := splitAddress(email)
	if err != nil {
		return nil, err
	}
	eps, err := parseEndpoints(o.Endpoints)
	if err != nil {
		return nil, err
	}
	d := &discoverer{
		o:        o,
		client:   noRedirects(o.HTTP),
		probe:    noRedirects(o.ProbeHTTP),
		eps:      eps,
		orig:     addr,
		domains:  []string{domain},
		tried:    map[string]bool{},
		addrSeen: map[string]bool{strings.ToLower(addr): true},
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout,
		fmt.Errorf("not finished within %s", o.Timeout))
	defer cancel()
	return d.run(ctx)
}

// noRedirects returns a copy of c that hands 3xx answers back instead of
// following them, or nil for nil.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		return nil
	}
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

type discoverer struct {
	o        Options
	client   *http.Client // authenticated, no automatic redirects
	probe    *http.Client // unauthenticated, no automatic redirects; may be nil
	eps      []candidate  // Options.Endpoints, parsed
	orig     string       // the address asked for
	domains  []string     // domains of the addresses in the chain (default redirect scope)
	hops     int
	tried    map[string]bool
	addrSeen map[string]bool
	attempts []Attempt
}

// outcome ends the search for one address: a result, an address to restart
// with, or a terminal error (context, redirect budget). All zero: keep going.
type outcome struct {
	res  *Result
	next string
	err  error
}

func (o outcome) done() bool { return o.res != nil || o.next != "" || o.err != nil }

func (d *discoverer) run(ctx context.Context) (*Result, error) {
	addr := d.orig
	for {
		out := d.address(ctx, addr)
		switch {
		case out.err != nil:
			return nil, out.err
		case out.res != nil:
			return out.res, nil
		case out.next == "":
			return nil, d.failure(ctx)
		}
		addr = out.next
	}
}

// address runs the three steps for one address.
func (d *discoverer) address(ctx context.Context, addr string) outcome {
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if len(d.eps) > 0 {
		return d.try(ctx, addr, d.eps)
	}
	root := &url.URL{Scheme: "https", Host: domain}
	ad := &url.URL{Scheme: "https", Host: "autodiscover." + domain}
	if out := d.try(ctx, addr, append(targets(root, true), targets(ad, false)...)); out.done() {
		return out
	}
	if d.probe != nil {
		target, out := d.probeRedirect(ctx, addr, domain)
		if !out.done() && target != nil {
			out = d.tryRedirect(ctx, probeWhere(domain), addr, target)
		}
		if out.done() {
			return out
		}
	}
	where := "SRV _autodiscover._tcp." + domain
	srvTargets, out := d.srv(ctx, where, addr, domain)
	if out.done() {
		return out
	}
	for _, t := range srvTargets {
		if out := d.tryRedirect(ctx, where, addr, t); out.done() {
			return out
		}
	}
	return outcome{}
}

// tryRedirect checks a probe or SRV target (recorded at where when
// refused) and tries it like a candidate: SOAP at .svc, then POX at .xml.
// Only target itself is checked: its sibling has the same scheme, host and
// port, so it is the same trust decision.
func (d *discoverer) tryRedirect(ctx context.Context, where, addr string, target *url.URL) outcome {
	if err := d.checkRedirect(target); err != nil {
		if errors.Is(err, errTooManyRedirects) {
			return outcome{err: d.tooMany()}
		}
		d.recordAt(where, addr, mail.ClassConfig, false, false, fmt.Errorf("redirect to %s refused: %w", show(target), err))
		return outcome{}
	}
	cs := targets(target, false)
	for i := range cs {
		cs[i].redirected = true
	}
	return d.try(ctx, addr, cs)
}

// try asks the candidates in order until one ends the search. A host that
// failed below HTTP (DNS, connect, TLS) is not asked again in this list.
func (d *discoverer) try(ctx context.Context, addr string, cs []candidate) outcome {
	dead := map[string]bool{}
	for _, c := range cs {
		if dead[c.u.Host] {
			continue
		}
		out, unreachable := d.follow(ctx, addr, c)
		if out.done() {
			return out
		}
		if unreachable != "" {
			dead[unreachable] = true
		}
	}
	return outcome{}
}

// follow asks c and follows its URL redirects. It returns the host (and
// port) that could not be reached at all, if that ended it.
func (d *discoverer) follow(ctx context.Context, addr string, c candidate) (outcome, string) {
	for {
		key := string(c.kind) + " " + c.u.String() + " " + strings.ToLower(addr)
		if d.tried[key] {
			if c.redirected {
				d.record(addr, c, mail.ClassConfig, false, errf("redirect loop: this URL was already asked for %s", addr))
			}
			return outcome{}, ""
		}
		d.tried[key] = true
		a := d.ask(ctx, addr, c)
		switch {
		case a.res != nil: // even if the deadline passed meanwhile
			return outcome{res: a.res}, ""
		case ctx.Err() != nil:
			d.cutShort(ctx, addr, c)
			return outcome{err: d.interrupted(ctx)}, ""
		case a.location != nil:
			if err := d.checkRedirect(a.location); err != nil {
				return d.refused(addr, c, a.location, err), ""
			}
			c = candidate{u: a.location, kind: kindFor(a.location, c.kind), redirected: true}
		case a.address != "":
			return d.addressRedirect(addr, c, a.address), ""
		default:
			d.record(addr, c, mail.ClassOf(a.err), a.decisive, unwrapClass(a.err))
			if a.unreachable {
				return outcome{}, c.u.Host
			}
			return outcome{}, ""
		}
	}
}

// refused records a redirect from c that may not be followed, or ends the
// discovery when the redirect budget is spent.
func (d *discoverer) refused(addr string, c candidate, target *url.URL, err error) outcome {
	if errors.Is(err, errTooManyRedirects) {
		return outcome{err: d.tooMany()}
	}
	d.record(addr, c, mail.ClassConfig, false, fmt.Errorf("redirect to %s refused: %w", show(target), err))
	return outcome{}
}

// addressRedirect restarts the discovery with next, unless it was tried.
func (d *discoverer) addressRedirect(addr string, c candidate, next string) outcome {
	n, domain, err := splitAddress(next)
	if err != nil {
		d.record(addr, c, mail.ClassProtocol, false, errf("redirected to an unusable address %q", mail.Excerpt(next, 100)))
		return outcome{}
	}
	if d.addrSeen[strings.ToLower(n)] {
		d.record(addr, c, mail.ClassConfig, false, errf("redirect loop: redirected to address %s, already tried", n))
		return outcome{}
	}
	d.hops++
	if d.hops > d.o.MaxRedirects {
		return outcome{err: d.tooMany()}
	}
	d.addrSeen[strings.ToLower(n)] = true
	d.domains = append(d.domains, domain)
	return outcome{next: n}
}

// probeRedirect sends the unauthenticated plain-http GET and returns its
// redirect target, not yet checked, if any.
func (d *discoverer) probeRedirect(ctx context.Context, addr, domain string) (*url.URL, outcome) {
	u := &url.URL{Scheme: "http", Host: "autodiscover." + domain, Path: "/autodiscover/autodiscover.xml"}
	loc, err := d.get(ctx, u)
	if ctx.Err() != nil {
		return nil, outcome{err: d.interrupted(ctx)}
	}
	if err != nil {
		d.recordAt(probeWhere(domain), addr, mail.ClassOf(err), true, false, unwrapClass(err))
		return nil, outcome{}
	}
	return loc, outcome{}
}

// probeWhere names the probe in messages.
func probeWhere(domain string) string {
	return "http://autodiscover." + domain + "/autodiscover/autodiscover.xml (redirect probe)"
}

// srv looks up _autodiscover._tcp.<domain> and returns the targets'
// https://<host>[:port]/autodiscover/autodiscover.xml URLs, not yet
// checked, in the resolver's order (priority, then weight).
func (d *discoverer) srv(ctx context.Context, where, addr, domain string) ([]*url.URL, outcome) {
	rctx, cancel := context.WithTimeout(ctx, d.o.RequestTimeout)
	_, recs, err := d.o.Resolver.LookupSRV(rctx, "autodiscover", "tcp", domain)
	cancel()
	if ctx.Err() != nil {
		return nil, outcome{err: d.interrupted(ctx)}
	}
	var dnsErr *net.DNSError
	switch {
	case err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		d.recordAt(where, addr, mail.ClassConfig, true, false, &relabeled{"no record", err})
		return nil, outcome{}
	case err != nil:
		d.recordAt(where, addr, mail.ClassConnect, true, false, fmt.Errorf("lookup failed: %w", err))
		return nil, outcome{}
	}
	var out []*url.URL
	for _, r := range recs {
		host := strings.TrimSuffix(strings.ToLower(r.Target), ".")
		if host == "" || !validHostname(host) {
			continue // "." means: no such service here
		}
		u := &url.URL{Scheme: "https", Host: host, Path: "/autodiscover/autodiscover.xml"}
		if r.Port != 443 {
			u.Host = net.JoinHostPort(host, strconv.Itoa(int(r.Port)))
		}
		out = append(out, u)
		if len(out) == maxSRVTargets {
			break
		}
	}
	if len(out) == 0 {
		d.recordAt(where, addr, mail.ClassConfig, true, false, errors.New("no usable record"))
	}
	return out, outcome{}
}

// cutShort records c as the request the deadline interrupted, so the
// timeout error says where it was waiting.
func (d *discoverer) cutShort(ctx context.Context, addr string, c candidate) {
	if !errors.Is(ctx.Err(), context.Canceled) {
		d.record(addr, c, mail.ClassTimeout, false, errors.New("no answer before the deadline"))
	}
}

// interrupted is the error for a ctx that ended: its own error when
// cancelled, a timeout listing what was tried when a deadline passed.
func (d *discoverer) interrupted(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("autodiscover: %w", ctx.Err())
	}
	cause := context.Cause(ctx)
	if cause == context.DeadlineExceeded {
		return d.fail(mail.ClassTimeout, "not finished before the caller's deadline")
	}
	return d.fail(mail.ClassTimeout, cause.Error())
}
