// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const (
	svc    = "/autodiscover/autodiscover.svc"
	xmlEnd = "/autodiscover/autodiscover.xml"
	ews    = "https://mail.example.test/EWS/Exchange.asmx"
)

// failure asserts err is a *mail.Error of class want holding an *Error, and
// returns the message.
func failure(t *testing.T, err error, want mail.ErrorClass) string {
	t.Helper()
	if err == nil {
		t.Fatal("Discover succeeded, want an error")
	}
	if got := mail.ClassOf(err); got != want {
		t.Fatalf("class %s, want %s: %v", got, want, err)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("%v (%T) holds no *Error", err, err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error reveals the password: %v", err)
	}
	return err.Error()
}

func contains(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message lacks %q:\n%s", p, msg)
		}
	}
}

func discover(t *testing.T, w *world, o Options) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Discover(ctx, "alice@example.test", o)
}

func TestSOAPSuccess(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
		svc: xmlReply(200, soapOK(ews, "EXAMPLE-1", "Alice Example")),
	})
	res, err := discover(t, w, w.options())
	if err != nil {
		t.Fatal(err)
	}
	want := Result{EWSURL: ews, GroupingInformation: "EXAMPLE-1", DisplayName: "Alice Example",
		Address: "alice@example.test", Via: "https://autodiscover.example.test" + svc, Protocol: "soap"}
	if *res != want {
		t.Fatalf("result\n%+v, want\n%+v", *res, want)
	}

	reqs := w.reqs() // example.test does not resolve: one request
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	if r.Scheme != "https" || r.Method != http.MethodPost || r.Path != svc {
		t.Errorf("request %s %s://%s%s", r.Method, r.Scheme, r.Host, r.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
		t.Errorf("no credentials on the https request")
	}
	if got := r.Header.Get("X-AnchorMailbox"); got != "alice@example.test" {
		t.Errorf("X-AnchorMailbox %q", got)
	}
	check := func(path []string, want ...string) {
		t.Helper()
		if got := xmlTexts(r.Body, path...); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q\n%s", path[len(path)-1], got, want, r.Body)
		}
	}
	check(soapVersionPath, "Exchange2013")
	check(soapActionPath, "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings")
	check(soapToPath, "https://autodiscover.example.test"+svc)
	check(soapMailboxPath, "alice@example.test")
	settings := xmlTexts(r.Body, soapSettingPath...)
	for _, s := range []string{"ExternalEwsUrl", "InternalEwsUrl", "GroupingInformation", "UserDisplayName"} {
		if !slices.Contains(settings, s) {
			t.Errorf("setting %s not requested: %q", s, settings)
		}
	}
}

func TestSOAPThenPOX(t *testing.T) {
	w := newWorld(t)
	// The bare domain is a web site answering everything with a page.
	w.host("example.test").https = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		rw.Write([]byte("<!DOCTYPE html><html><body>Welcome</body></html>"))
	})
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
		svc:    statusOnly(http.StatusNotFound),
		xmlEnd: xmlReply(200, poxOK("https://mbx01.example.test/EWS/Exchange.asmx", ews, "Alice Example")),
	})
	res, err := discover(t, w, w.options())
	if err != nil {
		t.Fatal(err)
	}
	want := Result{EWSURL: ews, DisplayName: "Alice Example", Address: "alice@example.test",
		Via: "https://autodiscover.example.test" + xmlEnd, Protocol: "pox"}
	if *res != want {
		t.Fatalf("result\n%+v, want\n%+v (EXPR before EXCH)", *res, want)
	}
	var pox *request
	for _, r := range w.reqs() {
		if r.Host == "autodiscover.example.test" && r.Path == xmlEnd {
			pox = &r
		}
	}
	if pox == nil {
		t.Fatal("no POX request")
	}
	if got := xmlTexts(pox.Body, poxAddressPath...); !slices.Equal(got, []string{"alice@example.test"}) {
		t.Errorf("EMailAddress %q\n%s", got, pox.Body)
	}
	if got := xmlTexts(pox.Body, poxSchemaPath...); !slices.Equal(got, []string{wantPOXOut}) {
		t.Errorf("AcceptableResponseSchema %q", got)
	}
}

func TestRedirectAddress(t *testing.T) {
	for _, tc := range []struct{ name, reply string }{
		{"soap", soapUserResponse("RedirectAddress", "Redirection address.", "bob@other.test")},
		{"pox", poxAccount("<Action>redirectAddr</Action><RedirectAddr>bob@other.test</RedirectAddr>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ad := map[string]http.Handler{svc: xmlReply(200, tc.reply)}
			if tc.name == "pox" {
				ad = map[string]http.Handler{xmlEnd: xmlReply(200, tc.reply)}
			}
			w.host("autodiscover.example.test").https = paths(ad)
			w.host("autodiscover.other.test").https = paths(map[string]http.Handler{
				svc: byMailbox(map[string]http.Handler{"bob@other.test": xmlReply(200, soapOK("https://mail.other.test/EWS/Exchange.asmx", "OTHER-7", "Bob"))}),
			})
			res, err := discover(t, w, w.options())
			if err != nil {
				t.Fatal(err)
			}
			if res.Address != "bob@other.test" || res.EWSURL != "https://mail.other.test/EWS/Exchange.asmx" || res.GroupingInformation != "OTHER-7" {
				t.Fatalf("result %+v", *res)
			}
		})
	}
}

func TestRedirectAddressLoop(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
		svc: xmlReply(200, soapUserResponse("RedirectAddress", "Redirection address.", "bob@other.test")),
	})
	w.host("autodiscover.other.test").https = paths(map[string]http.Handler{
		svc: xmlReply(200, soapUserResponse("RedirectAddress", "Redirection address.", "Alice@Example.test")),
	})
	_, err := discover(t, w, w.options())
	msg := failure(t, err, mail.ClassConfig)
	contains(t, msg, "(as bob@other.test): redirect loop: redirected to address Alice@Example.test, already tried")
}

func TestRedirectURLAllowed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern string // "" = default policy
		first   http.Handler
		target  string // host answering
		path    string
	}{
		{"soap RedirectUrl in domain, default policy", "",
			xmlReply(200, soapUserResponse("RedirectUrl", "Redirection URL.", "https://mail.example.test"+svc)), "mail.example.test", svc},
		{"http 302 in domain, default policy", "",
			redirectTo("https://mail.example.test" + svc), "mail.example.test", svc},
		{"relative 302", "",
			redirectTo("/ad/autodiscover.svc"), "autodiscover.example.test", "/ad/autodiscover.svc"},
		{"pattern matches a substring (.NET IsMatch)", `hoster\.test/autodiscover`,
			xmlReply(200, soapUserResponse("RedirectUrl", "Redirection URL.", "https://mail.hoster.test"+svc)), "mail.hoster.test", svc},
		{"Creatio's default .*", ".*",
			redirectTo("https://mail.hoster.test" + svc), "mail.hoster.test", svc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			first := map[string]http.Handler{svc: tc.first}
			if tc.target == "autodiscover.example.test" {
				first[tc.path] = xmlReply(200, soapOK(ews, "G", "Alice"))
			} else {
				w.host(tc.target).https = paths(map[string]http.Handler{tc.path: xmlReply(200, soapOK(ews, "G", "Alice"))})
			}
			w.host("autodiscover.example.test").https = paths(first)
			o := w.options()
			if tc.pattern != "" {
				o.AllowRedirect = regexp.MustCompile(tc.pattern)
			}
			res, err := discover(t, w, o)
			if err != nil {
				t.Fatal(err)
			}
			if want := "https://" + tc.target + tc.path; res.Via != want {
				t.Fatalf("answered by %s, want %s", res.Via, want)
			}
		})
	}
}

func TestPOXRedirectURL(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
		xmlEnd: xmlReply(200, poxAccount("<Action>redirectUrl</Action><RedirectUrl>https://mail.example.test/autodiscover/autodiscover.xml</RedirectUrl>")),
	})
	w.host("mail.example.test").https = paths(map[string]http.Handler{xmlEnd: xmlReply(200, poxOK(ews, ews, "Alice"))})
	res, err := discover(t, w, w.options())
	if err != nil {
		t.Fatal(err)
	}
	if res.Via != "https://mail.example.test"+xmlEnd || res.Protocol != "pox" {
		t.Fatalf("result %+v", *res)
	}
}

func TestRedirectRefused(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, target, why string
	}{
		{"pattern does not match", `^https://mail\.example\.test/`, "https://evil.test" + svc,
			`redirect to https://evil.test/autodiscover/autodiscover.svc refused: it does not match the allowed autodiscover redirect pattern "^https://mail\\.example\\.test/"`},
		{"default policy: other domain", "", "https://evil.test" + svc,
			"redirect to https://evil.test/autodiscover/autodiscover.svc refused: evil.test is outside example.test"},
		{"default policy: look-alike domain", "", "https://example.test.evil.test" + svc,
			"example.test.evil.test is outside example.test"},
		{"plain http, even with .*", ".*", "http://mail.example.test" + svc,
			"redirect to http://mail.example.test/autodiscover/autodiscover.svc refused: not https"},
		{"user information", ".*", "https://user:pw@evil.test" + svc,
			"redirect to https://evil.test/autodiscover/autodiscover.svc refused: the URL carries user information"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
				svc: xmlReply(200, soapUserResponse("RedirectUrl", "Redirection URL.", tc.target)),
			})
			for _, h := range []string{"evil.test", "example.test.evil.test", "mail.example.test"} {
				w.host(h).https = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Errorf("refused target %s asked", h) })
				w.host(h).http = w.host(h).https
			}
			o := w.options()
			if tc.pattern != "" {
				o.AllowRedirect = regexp.MustCompile(tc.pattern)
			}
			_, err := discover(t, w, o)
			msg := failure(t, err, mail.ClassConfig)
			contains(t, msg, tc.why)
			if strings.Contains(msg, "pw@") {
				t.Errorf("message shows user information: %s", msg)
			}
		})
	}
}

func TestProbeRedirect(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, location, host string
	}{
		{"hosted elsewhere, Creatio's .*", ".*", "https://autodiscover.hoster.test/autodiscover/autodiscover.xml", "autodiscover.hoster.test"},
		{"Exchange Online, default policy", "", "https://autodiscover-s.outlook.com/Autodiscover/Autodiscover.xml", "autodiscover-s.outlook.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			// https://autodiscover.example.test refuses connections; its
			// plain-http side only redirects.
			w.host("autodiscover.example.test").http = paths(map[string]http.Handler{xmlEnd: redirectTo(tc.location)})
			w.host(tc.host).https = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if strings.EqualFold(r.URL.Path, svc) {
					xmlReply(200, soapOK(ews, "G", "Alice")).ServeHTTP(rw, r)
					return
				}
				http.NotFound(rw, r)
			})
			o := w.options()
			if tc.pattern != "" {
				o.AllowRedirect = regexp.MustCompile(tc.pattern)
			}
			res, err := discover(t, w, o)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(res.Via, "https://"+tc.host+svc) {
				t.Fatalf("answered by %s", res.Via)
			}
			var probes int
			for _, r := range w.reqs() {
				if r.Scheme != "http" {
					continue
				}
				probes++
				if r.Method != http.MethodGet || r.Host != "autodiscover.example.test" || r.Path != xmlEnd {
					t.Errorf("probe %s http://%s%s", r.Method, r.Host, r.Path)
				}
				if r.Header.Get("Authorization") != "" {
					t.Errorf("probe carries credentials")
				}
			}
			if probes != 1 {
				t.Errorf("%d plain-http requests, want 1", probes)
			}
		})
	}
}

func TestProbeRedirectRefusedByDefault(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").http = paths(map[string]http.Handler{xmlEnd: redirectTo("https://autodiscover.hoster.test" + xmlEnd)})
	w.host("autodiscover.hoster.test").https = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("refused target asked") })
	_, err := discover(t, w, w.options())
	msg := failure(t, err, mail.ClassConfig)
	contains(t, msg, "http://autodiscover.example.test/autodiscover/autodiscover.xml (redirect probe): redirect to https://autodiscover.hoster.test/autodiscover/autodiscover.xml refused: autodiscover.hoster.test is outside example.test")
}

func TestRedirectLoop(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{svc: redirectTo("https://mail.example.test" + svc)})
	w.host("mail.example.test").https = paths(map[string]http.Handler{svc: redirectTo("https://autodiscover.example.test" + svc)})
	_, err := discover(t, w, w.options())
	msg := failure(t, err, mail.ClassConfig)
	contains(t, msg, "https://autodiscover.example.test/autodiscover/autodiscover.svc: redirect loop: this URL was already asked for alice@example.test",
		"https://autodiscover.example.test/autodiscover/autodiscover.xml: HTTP 404 Not Found")
}

func TestMaxRedirects(t *testing.T) {
	w := newWorld(t)
	n := 0
	w.host("autodiscover.example.test").https = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n++ // requests are sequential
		redirectTo("/hop/"+strings.Repeat("x", n)+"/autodiscover.svc").ServeHTTP(rw, r)
	})
	o := w.options()
	o.MaxRedirects = 3
	_, err := discover(t, w, o)
	msg := failure(t, err, mail.ClassConfig)
	contains(t, msg, "autodiscover: more than 3 redirects (a redirect loop?) for alice@example.test")
	if n != 4 { // the candidate, then three redirects followed
		t.Errorf("%d requests, want 4", n)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Run("every endpoint rejects", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Add("WWW-Authenticate", "Negotiate")
			rw.Header().Add("WWW-Authenticate", `Basic realm="autodiscover.example.test"`)
			rw.WriteHeader(http.StatusUnauthorized)
		})
		_, err := discover(t, w, w.options())
		msg := failure(t, err, mail.ClassAuth)
		contains(t, msg, "autodiscover: the credentials were rejected for alice@example.test: ",
			"https://autodiscover.example.test/autodiscover/autodiscover.svc: HTTP 401 Unauthorized: the credentials were rejected (the server offers Negotiate, Basic); "+
				"https://autodiscover.example.test/autodiscover/autodiscover.xml: HTTP 401 Unauthorized")
	})
	t.Run("a later endpoint accepts", func(t *testing.T) {
		w := newWorld(t)
		w.host("example.test").https = statusOnly(http.StatusUnauthorized)
		w.host("autodiscover.example.test").https = paths(map[string]http.Handler{svc: xmlReply(200, soapOK(ews, "G", "Alice"))})
		res, err := discover(t, w, w.options())
		if err != nil {
			t.Fatal(err)
		}
		if res.Via != "https://autodiscover.example.test"+svc {
			t.Fatalf("answered by %s", res.Via)
		}
	})
}

func TestNoEndpoint(t *testing.T) {
	t.Run("nothing resolves", func(t *testing.T) {
		w := newWorld(t)
		_, err := discover(t, w, w.options())
		msg := failure(t, err, mail.ClassConfig)
		want := "autodiscover: no EWS endpoint found for alice@example.test: " +
			"https://example.test/autodiscover/autodiscover.svc: no such host; " +
			"https://autodiscover.example.test/autodiscover/autodiscover.svc: no such host; " +
			"http://autodiscover.example.test/autodiscover/autodiscover.xml (redirect probe): no such host; " +
			"SRV _autodiscover._tcp.example.test: no record"
		if msg != want {
			t.Fatalf("message\n%s\nwant\n%s", msg, want)
		}
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) {
			t.Error("the *net.DNSError is not reachable with errors.As")
		}
	})
	t.Run("autodiscover host without the service", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = statusOnly(http.StatusNotFound)
		_, err := discover(t, w, w.options())
		msg := failure(t, err, mail.ClassConfig)
		contains(t, msg,
			"https://autodiscover.example.test/autodiscover/autodiscover.svc: HTTP 404 Not Found; "+
				"https://autodiscover.example.test/autodiscover/autodiscover.xml: HTTP 404 Not Found; "+
				"http://autodiscover.example.test/autodiscover/autodiscover.xml (redirect probe): dial tcp: connect: connection refused")
	})
	t.Run("network down", func(t *testing.T) {
		w := newWorld(t)
		w.host("example.test") // resolves, refuses
		w.host("autodiscover.example.test")
		o := w.options()
		o.ProbeHTTP = nil
		_, err := discover(t, w, o)
		failure(t, err, mail.ClassConnect)
	})
}

func TestOversizedResponse(t *testing.T) {
	big := soapOK(ews, strings.Repeat("G", 100<<10), "Alice")
	t.Run("every answer too large", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = xmlReply(200, big)
		o := w.options()
		o.MaxResponseBytes = 64 << 10
		_, err := discover(t, w, o)
		msg := failure(t, err, mail.ClassProtocol)
		contains(t, msg, "https://autodiscover.example.test/autodiscover/autodiscover.svc: response too large: larger than 65536 bytes")
	})
	t.Run("the next candidate still answers", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
			svc:    xmlReply(200, big),
			xmlEnd: xmlReply(200, poxOK(ews, ews, "Alice")),
		})
		o := w.options()
		o.MaxResponseBytes = 64 << 10
		res, err := discover(t, w, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Protocol != "pox" {
			t.Fatalf("result %+v", *res)
		}
	})
}

func TestSRV(t *testing.T) {
	w := newWorld(t)
	w.srv["example.test"] = []*net.SRV{
		{Target: "mail.hoster.test.", Port: 443, Priority: 0, Weight: 10}, // refused by the default policy
		{Target: "mail.example.test.", Port: 8443, Priority: 1, Weight: 10},
	}
	w.host("mail.hoster.test").https = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("refused SRV target asked") })
	w.host("mail.example.test").https = paths(map[string]http.Handler{svc: xmlReply(200, soapOK(ews, "G", "Alice"))})
	res, err := discover(t, w, w.options())
	if err != nil {
		t.Fatal(err)
	}
	if res.Via != "https://mail.example.test:8443"+svc {
		t.Fatalf("answered by %s", res.Via)
	}

	t.Run("refused target", func(t *testing.T) {
		w := newWorld(t)
		w.srv["example.test"] = []*net.SRV{{Target: "mail.hoster.test.", Port: 443}}
		w.host("mail.hoster.test").https = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("refused SRV target asked") })
		_, err := discover(t, w, w.options())
		msg := failure(t, err, mail.ClassConfig)
		contains(t, msg, "SRV _autodiscover._tcp.example.test: redirect to https://mail.hoster.test/autodiscover/autodiscover.xml refused: mail.hoster.test is outside example.test")
	})
	t.Run("target allowed by pattern", func(t *testing.T) {
		w := newWorld(t)
		w.srv["example.test"] = []*net.SRV{{Target: "mail.hoster.test.", Port: 443}}
		w.host("mail.hoster.test").https = paths(map[string]http.Handler{svc: xmlReply(200, soapOK(ews, "G", "Alice"))})
		o := w.options()
		o.AllowRedirect = regexp.MustCompile(`^https://mail\.hoster\.test/`)
		res, err := discover(t, w, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Via != "https://mail.hoster.test"+svc {
			t.Fatalf("answered by %s", res.Via)
		}
	})
}

func TestUnknownMailbox(t *testing.T) {
	w := newWorld(t)
	w.host("autodiscover.example.test").https = paths(map[string]http.Handler{
		svc:    xmlReply(200, soapUserResponse("InvalidUser", "Invalid user: 'alice@example.test'", "")),
		xmlEnd: xmlReply(200, poxErrorDoc("500", "The email address can't be found.")),
	})
	_, err := discover(t, w, w.options())
	msg := failure(t, err, mail.ClassConfig)
	contains(t, msg, "autodiscover: the Exchange server does not know the mailbox for alice@example.test",
		"the server does not know alice@example.test (InvalidUser: Invalid user: 'alice@example.test')",
		"(error 500: The email address can't be found.)")
}

func TestCertificate(t *testing.T) {
	t.Run("autodiscover host", func(t *testing.T) {
		w := newWorld(t)
		h := w.host("autodiscover.example.test")
		h.https, h.badCert = statusOnly(200), true
		_, err := discover(t, w, w.options())
		msg := failure(t, err, mail.ClassCertificate)
		contains(t, msg, "https://autodiscover.example.test/autodiscover/autodiscover.svc: tls: failed to verify certificate")
		var ce *tls.CertificateVerificationError
		if !errors.As(err, &ce) {
			t.Error("the certificate error is not reachable with errors.As")
		}
	})
	t.Run("bare domain only", func(t *testing.T) {
		// A web site's certificate on the bare domain is common and says
		// nothing about autodiscover.
		w := newWorld(t)
		h := w.host("example.test")
		h.https, h.badCert = statusOnly(200), true
		_, err := discover(t, w, w.options())
		failure(t, err, mail.ClassConfig)
	})
}

func TestTimeouts(t *testing.T) {
	hang := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	t.Run("whole discovery", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = hang
		o := w.options()
		o.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, err := discover(t, w, o)
		msg := failure(t, err, mail.ClassTimeout)
		contains(t, msg, "autodiscover: not finished within 300ms for alice@example.test: https://example.test/autodiscover/autodiscover.svc: no such host; "+
			"https://autodiscover.example.test/autodiscover/autodiscover.svc: no answer before the deadline")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("one request", func(t *testing.T) {
		w := newWorld(t)
		w.host("autodiscover.example.test").https = hang
		o := w.options()
		o.RequestTimeout = 200 * time.Millisecond
		o.ProbeHTTP = nil
		_, err := discover(t, w, o)
		msg := failure(t, err, mail.ClassTimeout)
		contains(t, msg, "https://autodiscover.example.test/autodiscover/autodiscover.svc: no answer within 200ms")
		if strings.Contains(msg, "autodiscover.xml") {
			t.Errorf("a host that timed out was asked again: %s", msg)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		w := newWorld(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Discover(ctx, "alice@example.test", w.options())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%v, want context.Canceled", err)
		}
	})
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct{ endpoint, via string }{
		{"https://mail.example.test", "https://mail.example.test" + svc},
		{"https://mail.example.test/", "https://mail.example.test" + svc},
		{"https://mail.example.test/custom/Autodiscover.xml", "https://mail.example.test/custom/Autodiscover.svc"},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			w := newWorld(t)
			w.host("autodiscover.example.test").https = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("derived candidate asked") })
			w.host("mail.example.test").https = paths(map[string]http.Handler{
				svc:                        xmlReply(200, soapOK(ews, "G", "Alice")),
				"/custom/Autodiscover.svc": xmlReply(200, soapOK(ews, "G", "Alice")),
			})
			o := w.options()
			o.Endpoints = []string{tc.endpoint}
			res, err := discover(t, w, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Via != tc.via {
				t.Fatalf("answered by %s, want %s", res.Via, tc.via)
			}
		})
	}
	t.Run("plain http refused", func(t *testing.T) {
		w := newWorld(t)
		o := w.options()
		o.Endpoints = []string{"http://mail.example.test"}
		_, err := discover(t, w, o)
		if mail.ClassOf(err) != mail.ClassConfig || !strings.Contains(err.Error(), "plain http") {
			t.Fatalf("%v", err)
		}
		if len(w.reqs()) != 0 {
			t.Error("a request was sent")
		}
	})
}

func TestUnusableAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  int // 0: 200
		reply string
		want  string
		class mail.ErrorClass
	}{
		{"plain-http EWS URL", 0, soapUserResponse("NoError", "", "", setting{"ExternalEwsUrl", "http://mail.example.test/EWS/Exchange.asmx"}),
			`the answer's EWS URL "http://mail.example.test/EWS/Exchange.asmx" is not an https URL`, mail.ClassConfig},
		{"no EWS URL", 0, soapUserResponse("NoError", "", "", setting{"UserDisplayName", "Alice"}),
			"the answer has no EWS URL", mail.ClassConfig},
		{"server busy", 0, soapUserResponse("ServerBusy", "The server is too busy.", ""),
			"autodiscover error ServerBusy: The server is too busy.", mail.ClassProtocol},
		{"SOAP fault", 0, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>The message with Action '' cannot be processed.</faultstring></s:Fault></s:Body></s:Envelope>`,
			"SOAP fault: The message with Action '' cannot be processed.", mail.ClassProtocol},
		{"garbage", 0, "hello", "not a SOAP autodiscover answer", mail.ClassProtocol},
		{"HTTP 500 with a fault", 500, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring></s:Fault></s:Body></s:Envelope>`,
			"HTTP 500 Internal Server Error: SOAP fault: The server cannot service this request right now. Try again later.", mail.ClassProtocol},
		{"HTTP 503", 503, strings.Repeat("busy ", 100<<10), "HTTP 503 Service Unavailable", mail.ClassProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			code := cmp.Or(tc.code, 200)
			w.host("autodiscover.example.test").https = paths(map[string]http.Handler{svc: xmlReply(code, tc.reply)})
			o := w.options()
			o.ProbeHTTP = nil
			_, err := discover(t, w, o)
			msg := failure(t, err, tc.class)
			contains(t, msg, tc.want)
		})
	}
}

func TestBadInput(t *testing.T) {
	w := newWorld(t)
	for _, addr := range []string{"", "alice", "alice@", "@example.test", "alice@exa mple.test", "alice@example..test", "alice@host:443"} {
		_, err := Discover(context.Background(), addr, w.options())
		if mail.ClassOf(err) != mail.ClassConfig {
			t.Errorf("%q: %v, want a config error", addr, err)
		}
	}
	if _, err := Discover(context.Background(), "alice@example.test", Options{}); mail.ClassOf(err) != mail.ClassInternal {
		t.Errorf("without HTTP: %v", err)
	}
	if len(w.reqs()) != 0 {
		t.Error("a request was sent")
	}
}
