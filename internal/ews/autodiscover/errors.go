// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// maxShownAttempts bounds the attempts an error message lists.
const maxShownAttempts = 12

// Attempt is one candidate that gave no EWS URL, and why.
type Attempt struct {
	// Where is the URL asked (without query or user information), or
	// "SRV _autodiscover._tcp.<domain>", or the probe URL marked
	// "(redirect probe)".
	Where string
	// Address is the e-mail address asked for.
	Address string
	// Class classifies Err.
	Class mail.ErrorClass
	// Err says what went wrong, in a sentence without the URL.
	Err error

	// weight says how much the failure tells about the mailbox's setup:
	// weightGuess for guessed candidates (the bare domain, the probe, the SRV
	// lookup), whose failure is normal for most domains; weightAbsent for
	// "nothing there" (no such host, HTTP 404); weightFact for the rest.
	weight int
	// decisive: the autodiscover service itself answered that it cannot
	// serve this address (InvalidUser, POX 500/501/602).
	decisive bool
}

// Attempt weights.
const (
	weightGuess = iota
	weightAbsent
	weightFact
)

// Error is a discovery that found no EWS URL: the reason and every candidate
// tried, in order. Discover returns it inside a *mail.Error carrying its
// class. The message names URLs, addresses and server texts, never
// credentials.
type Error struct {
	Address  string // the address asked for
	Reason   string // "no EWS endpoint found", "the credentials were rejected", …
	Attempts []Attempt
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for %s", e.Reason, e.Address)
	if len(e.Attempts) == 0 {
		return b.String()
	}
	b.WriteString(": ")
	for i, a := range e.Attempts {
		if i == maxShownAttempts {
			fmt.Fprintf(&b, "; and %d more", len(e.Attempts)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(a.Where)
		if !strings.EqualFold(a.Address, e.Address) {
			b.WriteString(" (as " + a.Address + ")")
		}
		b.WriteString(": " + mail.Excerpt(a.Err.Error(), 300))
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As the attempts' causes (an
// x509.UnknownAuthorityError, a *net.DNSError, …).
func (e *Error) Unwrap() []error {
	out := make([]error, 0, len(e.Attempts))
	for _, a := range e.Attempts {
		out = append(out, a.Err)
	}
	return out
}

// record appends a failed candidate.
func (d *discoverer) record(addr string, c candidate, class mail.ErrorClass, decisive bool, err error) {
	d.recordAt(show(c.u), addr, class, c.speculative, decisive, err)
}

func (d *discoverer) recordAt(where, addr string, class mail.ErrorClass, speculative, decisive bool, err error) {
	w := weightFact
	switch {
	case speculative:
		w = weightGuess
	case absent(err):
		w = weightAbsent
	}
	d.attempts = append(d.attempts, Attempt{Where: where, Address: addr, Class: class, Err: err, weight: w, decisive: decisive})
}

// absent reports a failure that only says "no service here": no such host,
// or an HTTP client error other than 401.
func absent(err error) bool {
	var dnsErr *net.DNSError
	var se *statusError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound ||
		errors.As(err, &se) && se.code >= 400 && se.code < 500 && se.code != 401
}

// fail is a *mail.Error of class c over the attempts so far.
func (d *discoverer) fail(c mail.ErrorClass, reason string) error {
	return &mail.Error{Class: c, Op: "autodiscover", Err: &Error{Address: d.orig, Reason: reason, Attempts: d.attempts}}
}

// failure is the error when every candidate failed.
func (d *discoverer) failure(ctx context.Context) error {
	if ctx.Err() != nil {
		return d.interrupted(ctx)
	}
	c, reason := decide(d.attempts)
	return d.fail(c, reason)
}

// decide picks the class and headline of a discovery that found nothing:
//
//  1. a decisive answer (the service does not know the mailbox) wins: asking
//     elsewhere cannot change it;
//  2. else any 401: the credentials were rejected, the rest is noise;
//  3. else the most telling class among the failures that say something
//     (weightFact: not a guess, not "no such host" or 404):
//     certificate > TLS > config > protocol > timeout > connect, so a broken
//     certificate is reported as such, a refused redirect as a setup
//     problem, and only an all-network failure as a connection problem;
//  4. else (nothing there, or only guesses failed) config: autodiscover is
//     not set up for the domain.
func decide(attempts []Attempt) (mail.ErrorClass, string) {
	for _, a := range attempts {
		if a.decisive {
			return a.Class, "the Exchange server does not know the mailbox"
		}
	}
	for _, a := range attempts {
		if a.Class == mail.ClassAuth {
			return mail.ClassAuth, "the credentials were rejected"
		}
	}
	rank := map[mail.ErrorClass]int{
		mail.ClassConnect: 1, mail.ClassTimeout: 2, mail.ClassProtocol: 3,
		mail.ClassConfig: 4, mail.ClassTLS: 5, mail.ClassCertificate: 6,
	}
	best := mail.ClassConfig
	bestRank := 0
	for _, a := range attempts {
		if a.weight == weightFact && rank[a.Class] > bestRank {
			best, bestRank = a.Class, rank[a.Class]
		}
	}
	return best, "no EWS endpoint found"
}

// show renders u for messages and Result.Via: scheme, host and path, never
// user information, query or fragment (which may carry tokens).
func show(u *url.URL) string {
	if u == nil {
		return ""
	}
	return mail.Excerpt(u.Scheme+"://"+u.Host+u.EscapedPath(), 200)
}

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// unwrapClass returns the cause inside a *mail.Error (whose class the
// attempt keeps separately), so messages do not repeat its Op.
func unwrapClass(err error) error {
	var me *mail.Error
	if errors.As(err, &me) && me.Err != nil {
		return me.Err
	}
	return err
}
