// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// errTooManyRedirects: the redirect budget is spent.
var errTooManyRedirects = errors.New("autodiscover: too many redirects")

// checkRedirect decides whether the redirect target u may be followed and, if
// so, counts it against MaxRedirects. The refusal reasons are sentences
// for the final error.
func (d *discoverer) checkRedirect(u *url.URL) error {
	if err := d.allowed(u); err != nil {
		return err
	}
	d.hops++
	if d.hops > d.o.MaxRedirects {
		return errTooManyRedirects
	}
	return nil
}

// allowed applies the redirect policy (see Options.AllowRedirect).
func (d *discoverer) allowed(u *url.URL) error {
	switch {
	case u.Scheme != "https":
		return errors.New("not https (credentials are only sent over TLS)")
	case u.User != nil:
		return errors.New("the URL carries user information")
	case u.Hostname() == "":
		return errors.New("the URL has no host")
	}
	if re := d.o.AllowRedirect; re != nil {
		// .NET Regex.IsMatch, which Creatio applies to this setting, reports a
		// match anywhere in the input; regexp.MatchString does the same.
		if !re.MatchString(u.String()) {
			return fmt.Errorf("it does not match the allowed autodiscover redirect pattern %q", mail.Excerpt(re.String(), 200))
		}
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if slices.Contains(exchangeOnlineHosts, host) {
		return nil
	}
	for _, dom := range d.domains {
		if host == dom || strings.HasSuffix(host, "."+dom) {
			return nil
		}
	}
	return fmt.Errorf("%s is outside %s (an allowed autodiscover redirect pattern can permit it)",
		mail.Excerpt(host, 100), strings.Join(d.domains, ", "))
}

// tooMany is the terminal error for a spent redirect budget.
func (d *discoverer) tooMany() error {
	return d.fail(mail.ClassConfig, fmt.Sprintf("more than %d redirects (a redirect loop?)", d.o.MaxRedirects))
}
