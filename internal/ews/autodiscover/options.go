// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Defaults for Options.
const (
	// DefaultMaxRedirects is the redirect budget of one Discover; Microsoft
	// tells clients to stop after 10 (POX RedirectUrl element remarks).
	DefaultMaxRedirects = 10
	// DefaultMaxResponseBytes bounds each response body. Real answers are a
	// few KiB (a full POX answer with every protocol is under 20 KiB).
	DefaultMaxResponseBytes = 1 << 20
	// DefaultTimeout bounds a whole Discover, every candidate included.
	DefaultTimeout = 2 * time.Minute
	// DefaultRequestTimeout bounds one request (connect, TLS, answer, body),
	// so one silent host cannot eat the whole budget.
	DefaultRequestTimeout = 30 * time.Second
	// maxSRVTargets bounds the SRV targets tried.
	maxSRVTargets = 4
)

// SRVResolver looks up DNS SRV records; *net.Resolver implements it.
type SRVResolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

var _ SRVResolver = (*net.Resolver)(nil)

// Options configures Discover. Only HTTP is required; the zero value of every
// other field is a documented default.
type Options struct {
	// HTTP sends the authenticated requests (Basic, NTLM or Bearer is the
	// client's business) and enforces TLS settings and the allowed networks
	// in its transport. Discover uses a copy whose CheckRedirect stops at the
	// first response: redirects are checked and followed here. Required.
	HTTP *http.Client
	// ProbeHTTP sends the one unauthenticated plain-http GET to
	// http://autodiscover.<domain>/autodiscover/autodiscover.xml. It must not
	// add credentials; give it the same dialer (allowed networks) as HTTP. Nil
	// skips the probe step.
	ProbeHTTP *http.Client
	// Endpoints, when set, replaces the candidates derived from the domain
	// (and the probe and SRV steps): https autodiscover URLs, either a base
	// ("https://mail.example.com", tried at /autodiscover/autodiscover.svc
	// and .xml) or the full .svc or .xml URL (the other one is tried too).
	// For operators whose autodiscover sits at a known address, and tests.
	Endpoints []string
	// AllowRedirect, when set, decides which redirect targets may be
	// followed: the absolute target URL must contain a match (.NET
	// Regex.IsMatch semantics: unanchored, so "contoso" allows
	// https://evil.example/?contoso; write ^https://[^/]*\.contoso\.com/ to
	// pin it). Compile Creatio's setting with CompileAllowRedirect. Nil: only
	// hosts within the domains of the addresses discovered (after
	// RedirectAddress, the new address's domain too) and Exchange Online's
	// autodiscover hosts. Targets must be https in every case.
	AllowRedirect *regexp.Regexp
	// MaxRedirects bounds redirects of every kind, address redirects
	// included (default DefaultMaxRedirects).
	MaxRedirects int
	// MaxResponseBytes bounds each response body (default
	// DefaultMaxResponseBytes); a longer answer fails that candidate.
	MaxResponseBytes int64
	// Timeout bounds the whole Discover (default DefaultTimeout).
	Timeout time.Duration
	// RequestTimeout bounds each request (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// Resolver looks up the SRV record (default net.DefaultResolver).
	Resolver SRVResolver
}

func (o *Options) setDefaults() {
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
}

// exchangeOnlineHosts are the autodiscover hosts of Exchange Online, allowed
// as redirect targets when Options.AllowRedirect is nil: the plain-http
// probe of a domain hosted there redirects to the first.
var exchangeOnlineHosts = []string{"autodiscover-s.outlook.com", "outlook.office365.com"}

// CompileAllowRedirect compiles the allowed-redirect pattern Creatio sends as
// AutodiscoverRedirectUrl (system setting ExchangeAutodiscoverRedirectUrlRegex,
// default ".*"). An empty pattern gives nil: the default policy of
// Options.AllowRedirect. The pattern is compiled as Go (RE2) syntax, which
// covers what such settings use (classes, groups, alternation, anchors,
// (?i)); .NET-only constructs (look-around, back-references) are refused
// with a mail.ClassConfig error.
func CompileAllowRedirect(pattern string) (*regexp.Regexp, error) {
	if strings.TrimSpace(pattern) == "" {
		return nil, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, mail.Errorf(mail.ClassConfig, "autodiscover",
			"the allowed redirect pattern (ExchangeAutodiscoverRedirectUrlRegex) %q is not a usable regular expression: %v",
			mail.Excerpt(pattern, 200), err)
	}
	return re, nil
}

// Result is what autodiscover found for a mailbox.
type Result struct {
	// EWSURL is the https EWS endpoint: ExternalEwsUrl, else InternalEwsUrl
	// (SOAP); the EXPR, else EXCH protocol's EwsUrl (POX).
	EWSURL string
	// GroupingInformation groups mailboxes that may share one streaming
	// connection (with EWSURL). SOAP only: empty when POX answered.
	GroupingInformation string
	// DisplayName is the mailbox owner's display name, when sent.
	DisplayName string
	// Address is the address the answer is for: the one asked for, or the
	// target of the last address redirect.
	Address string
	// Via is the autodiscover URL that answered (without query).
	Via string
	// Protocol is "soap" or "pox": which autodiscover flavour answered.
	Protocol string
}

// splitAddress checks an e-mail address and returns it trimmed, with its
// domain in lower case.
func splitAddress(email string) (addr, domain string, err error) {
	addr = strings.TrimSpace(email)
	at := strings.LastIndexByte(addr, '@')
	switch {
	case addr == "":
		return "", "", mail.Errorf(mail.ClassConfig, "autodiscover", "the mailbox's e-mail address is empty")
	case len(addr) > 320:
		return "", "", mail.Errorf(mail.ClassConfig, "autodiscover", "the e-mail address %q is longer than 320 characters", mail.Excerpt(addr, 100))
	case at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>\"\\"):
		return "", "", mail.Errorf(mail.ClassConfig, "autodiscover", "%q is not an e-mail address (name@domain)", mail.Excerpt(addr, 100))
	}
	domain = strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if !validHostname(domain) {
		return "", "", mail.Errorf(mail.ClassConfig, "autodiscover", "the domain of %q is not a valid host name", mail.Excerpt(addr, 100))
	}
	return addr, domain, nil
}

// validHostname accepts dot-separated labels that url.Parse keeps as the
// host (no port, user information, path or IP literal brackets).
func validHostname(h string) bool {
	if h == "" || len(h) > 253 || strings.Contains(h, "..") || strings.HasPrefix(h, ".") {
		return false
	}
	if strings.ContainsAny(h, "/\\:@?#[]% ") {
		return false
	}
	u, err := url.Parse("https://" + h + "/")
	return err == nil && u.Host == h
}

// parseEndpoints turns Options.Endpoints into candidates.
func parseEndpoints(eps []string) ([]candidate, error) {
	var out []candidate
	for _, s := range eps {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			return nil, mail.Errorf(mail.ClassConfig, "autodiscover", "configured endpoint %q is not an absolute https URL", mail.Excerpt(s, 200))
		case u.Scheme != "https":
			return nil, mail.Errorf(mail.ClassConfig, "autodiscover",
				"configured endpoint %s is plain http: credentials are only sent over https", show(u))
		case u.User != nil:
			return nil, mail.Errorf(mail.ClassConfig, "autodiscover",
				"configured endpoint %s carries user information: credentials belong to the mailbox, not the URL", show(u))
		}
		out = append(out, targets(u, false)...)
	}
	return out, nil
}
