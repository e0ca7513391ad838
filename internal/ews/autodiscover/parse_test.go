// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// TestAllowRedirectSemantic pins the .NET Regex.IsMatch semantic Creatio's
// ExchangeAutodiscoverRedirectUrlRegex has: a match anywhere in the URL.
func TestAllowRedirectSemantic(t *testing.T) {
	for _, tc := range []struct {
		pattern, url string
		allowed      bool
	}{
		{".*", "https://anything.test/autodiscover/autodiscover.xml", true},
		{`contoso\.com`, "https://autodiscover.contoso.com/autodiscover/autodiscover.xml", true},
		// Unanchored, as in .NET: a pattern without ^ also allows this.
		{`contoso\.com`, "https://evil.test/autodiscover/autodiscover.xml?contoso.com", true},
		{`^https://autodiscover\.contoso\.com/`, "https://autodiscover.contoso.com/autodiscover/autodiscover.xml", true},
		{`^https://autodiscover\.contoso\.com/`, "https://autodiscover.contoso.com.evil.test/autodiscover/autodiscover.xml", false},
		{`^https://[^/]*\.contoso\.com(:\d+)?/`, "https://mail.contoso.com:444/x", true},
		// Case-sensitive unless asked, as .NET's default.
		{`CONTOSO`, "https://contoso.com/", false},
		{`(?i)CONTOSO`, "https://contoso.com/", true},
		// https is required whatever the pattern.
		{".*", "http://contoso.com/autodiscover/autodiscover.xml", false},
	} {
		d := &discoverer{o: Options{AllowRedirect: regexp.MustCompile(tc.pattern)}, domains: []string{"example.test"}}
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.allowed(u) == nil; got != tc.allowed {
			t.Errorf("pattern %q, %s: allowed %v, want %v", tc.pattern, tc.url, got, tc.allowed)
		}
	}
}

func TestDefaultRedirectPolicy(t *testing.T) {
	d := &discoverer{domains: []string{"example.test", "other.test"}}
	for host, allowed := range map[string]bool{
		"example.test":               true,
		"mail.example.test":          true,
		"MAIL.Example.Test":          true,
		"mail.example.test:8443":     true,
		"a.b.other.test":             true,
		"autodiscover-s.outlook.com": true,
		"outlook.office365.com":      true,
		"notexample.test":            false,
		"example.test.evil.test":     false,
		"evil.test":                  false,
		"outlook.com":                false,
	} {
		u := &url.URL{Scheme: "https", Host: host, Path: "/autodiscover/autodiscover.xml"}
		if got := d.allowed(u) == nil; got != allowed {
			t.Errorf("%s: allowed %v, want %v", host, got, allowed)
		}
	}
}

func TestCompileAllowRedirect(t *testing.T) {
	for _, p := range []string{"", "  "} {
		if re, err := CompileAllowRedirect(p); re != nil || err != nil {
			t.Errorf("%q: %v %v, want nil nil", p, re, err)
		}
	}
	if re, err := CompileAllowRedirect(".*"); err != nil || re.String() != ".*" {
		t.Errorf(".*: %v %v", re, err)
	}
	_, err := CompileAllowRedirect(`^(?!https://evil).*`) // .NET look-ahead: not RE2
	if mail.ClassOf(err) != mail.ClassConfig || !strings.Contains(err.Error(), "ExchangeAutodiscoverRedirectUrlRegex") {
		t.Errorf("look-ahead: %v", err)
	}
}

func TestTargets(t *testing.T) {
	for in, want := range map[string][2]string{
		"https://h.test":                                   {"https://h.test/autodiscover/autodiscover.svc", "https://h.test/autodiscover/autodiscover.xml"},
		"https://h.test/base/":                             {"https://h.test/base/autodiscover/autodiscover.svc", "https://h.test/base/autodiscover/autodiscover.xml"},
		"https://h.test/autodiscover/autodiscover.svc":     {"https://h.test/autodiscover/autodiscover.svc", "https://h.test/autodiscover/autodiscover.xml"},
		"https://h.test/Autodiscover/Autodiscover.xml?x=1": {"https://h.test/Autodiscover/Autodiscover.svc", "https://h.test/Autodiscover/Autodiscover.xml"},
		"https://h.test:444/a/autodiscover.xml":            {"https://h.test:444/a/autodiscover.svc", "https://h.test:444/a/autodiscover.xml"},
	} {
		u, _ := url.Parse(in)
		cs := targets(u, false)
		if len(cs) != 2 || cs[0].kind != kindSOAP || cs[1].kind != kindPOX || cs[0].u.String() != want[0] || cs[1].u.String() != want[1] {
			t.Errorf("%s: %v %v", in, cs[0].u, cs[1].u)
		}
	}
}

func TestSplitAddress(t *testing.T) {
	for in, want := range map[string]string{
		" Alice@Example.TEST ":               "example.test",
		"a.b+c@sub.example.test.":            "sub.example.test",
		`"odd@local"@example.test`:           "",
		"alice@":                             "",
		"alice@ex ample.test":                "",
		"alice@[127.0.0.1]":                  "",
		"alice@host:80":                      "",
		"alice@host/x":                       "",
		"alice@.example.test":                "",
		strings.Repeat("a", 320) + "@x.test": "",
	} {
		_, got, err := splitAddress(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
}

func TestDecide(t *testing.T) {
	a := func(c mail.ErrorClass, w int) Attempt { return Attempt{Class: c, weight: w, Err: errors.New("x")} }
	for _, tc := range []struct {
		name     string
		attempts []Attempt
		want     mail.ErrorClass
	}{
		{"nothing tried", nil, mail.ClassConfig},
		{"only absent", []Attempt{a(mail.ClassConfig, weightAbsent), a(mail.ClassConfig, weightAbsent)}, mail.ClassConfig},
		{"guess certificate ignored", []Attempt{a(mail.ClassCertificate, weightGuess), a(mail.ClassConfig, weightAbsent)}, mail.ClassConfig},
		{"certificate", []Attempt{a(mail.ClassConnect, weightFact), a(mail.ClassCertificate, weightFact)}, mail.ClassCertificate},
		{"refused redirect over garbage", []Attempt{a(mail.ClassProtocol, weightFact), a(mail.ClassConfig, weightFact)}, mail.ClassConfig},
		{"garbage over 404", []Attempt{a(mail.ClassProtocol, weightFact), a(mail.ClassConfig, weightAbsent)}, mail.ClassProtocol},
		{"network down", []Attempt{a(mail.ClassConnect, weightGuess), a(mail.ClassConnect, weightFact), a(mail.ClassTimeout, weightFact)}, mail.ClassTimeout},
		{"401 anywhere", []Attempt{a(mail.ClassCertificate, weightFact), a(mail.ClassAuth, weightGuess)}, mail.ClassAuth},
		{"decisive first", []Attempt{a(mail.ClassAuth, weightFact), {Class: mail.ClassConfig, decisive: true, Err: errors.New("x")}}, mail.ClassConfig},
	} {
		if got, _ := decide(tc.attempts); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestErrorMessageBounded(t *testing.T) {
	e := &Error{Address: "a@x.test", Reason: "no EWS endpoint found"}
	for range 40 {
		e.Attempts = append(e.Attempts, Attempt{Where: "https://h.test/x", Address: "a@x.test", Err: errors.New(strings.Repeat("z", 5000))})
	}
	msg := e.Error()
	if len(msg) > maxShownAttempts*400+200 || !strings.HasSuffix(msg, "; and 28 more") {
		t.Errorf("message of %d bytes ends %q", len(msg), msg[len(msg)-40:])
	}
	if len(e.Unwrap()) != 40 {
		t.Error("Unwrap lost attempts")
	}
	var dnsErr *net.DNSError
	if errors.As(e, &dnsErr) {
		t.Error("As found what is not there")
	}
}

func TestParseSOAP(t *testing.T) {
	ok := soapOK("https://mail.example.test/EWS/Exchange.asmx", "G-1", "Alice")
	for _, tc := range []struct {
		name, doc string
		check     func(*testing.T, answer)
	}{
		{"success", ok, func(t *testing.T, a answer) {
			if a.res == nil || a.res.EWSURL != "https://mail.example.test/EWS/Exchange.asmx" || a.res.GroupingInformation != "G-1" || a.res.DisplayName != "Alice" {
				t.Errorf("%+v", a)
			}
		}},
		// Microsoft's documentation samples use https:// namespaces and the
		// soap: prefix; real servers do not, but the names are what count.
		{"documentation namespaces", strings.NewReplacer("http://schemas", "https://schemas",
			"<s:", "<soap:", "</s:", "</soap:", "xmlns:s=", "xmlns:soap=", " s:", " soap:").Replace(ok), func(t *testing.T, a answer) {
			if a.res == nil {
				t.Errorf("%+v", a)
			}
		}},
		{"internal URL only", soapUserResponse("NoError", "", "", setting{"InternalEwsUrl", "https://int.example.test/EWS/Exchange.asmx"}), func(t *testing.T, a answer) {
			if a.res == nil || a.res.EWSURL != "https://int.example.test/EWS/Exchange.asmx" {
				t.Errorf("%+v", a)
			}
		}},
		{"http external, https internal", soapUserResponse("NoError", "", "",
			setting{"ExternalEwsUrl", "http://mail.example.test/EWS/Exchange.asmx"}, setting{"InternalEwsUrl", "https://int.example.test/EWS/Exchange.asmx"}), func(t *testing.T, a answer) {
			if a.res == nil || a.res.EWSURL != "https://int.example.test/EWS/Exchange.asmx" {
				t.Errorf("%+v", a)
			}
		}},
		{"EWS URL with user information", soapUserResponse("NoError", "", "", setting{"ExternalEwsUrl", "http://u:pw@mail.example.test/EWS"}), func(t *testing.T, a answer) {
			if a.err == nil || strings.Contains(a.err.Error(), "pw") {
				t.Errorf("%+v", a)
			}
		}},
		{"redirect address", soapUserResponse("RedirectAddress", "", "bob@other.test"), func(t *testing.T, a answer) {
			if a.address != "bob@other.test" {
				t.Errorf("%+v", a)
			}
		}},
		{"redirect url", soapUserResponse("RedirectUrl", "", "https://x.test/autodiscover/autodiscover.svc"), func(t *testing.T, a answer) {
			if a.location == nil || a.location.Host != "x.test" {
				t.Errorf("%+v", a)
			}
		}},
		{"relative redirect url", soapUserResponse("RedirectUrl", "", "/autodiscover/autodiscover.svc"), func(t *testing.T, a answer) {
			if mail.ClassOf(a.err) != mail.ClassProtocol {
				t.Errorf("%+v", a)
			}
		}},
		{"invalid user", soapUserResponse("InvalidUser", "Invalid user.", ""), func(t *testing.T, a answer) {
			if !a.decisive || mail.ClassOf(a.err) != mail.ClassConfig {
				t.Errorf("%+v", a)
			}
		}},
		{"request-level error", strings.Replace(ok, "<ErrorCode>NoError</ErrorCode>\n        <ErrorMessage/>", "<ErrorCode>InvalidRequest</ErrorCode><ErrorMessage>Bad.</ErrorMessage>", 1), func(t *testing.T, a answer) {
			if a.err == nil || !strings.Contains(a.err.Error(), "InvalidRequest: Bad.") {
				t.Errorf("%+v", a)
			}
		}},
		{"SOAP 1.2 fault", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value></e:Code><e:Reason><e:Text xml:lang="en">Bad request.</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>`, func(t *testing.T, a answer) {
			if a.err == nil || !strings.Contains(a.err.Error(), "SOAP fault: Bad request.") {
				t.Errorf("%+v", a)
			}
		}},
		{"not SOAP", `<html><body>hi</body></html>`, func(t *testing.T, a answer) {
			if mail.ClassOf(a.err) != mail.ClassProtocol {
				t.Errorf("%+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse("https://ad.example.test/autodiscover/autodiscover.svc")
			tc.check(t, soapAnswer("alice@example.test", u, []byte(tc.doc)))
		})
	}
}

func TestParsePOX(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		check     func(*testing.T, answer)
	}{
		{"EXPR first", poxOK("https://int.example.test/EWS/Exchange.asmx", "https://ext.example.test/EWS/Exchange.asmx", "Alice"), func(t *testing.T, a answer) {
			if a.res == nil || a.res.EWSURL != "https://ext.example.test/EWS/Exchange.asmx" || a.res.DisplayName != "Alice" {
				t.Errorf("%+v", a)
			}
		}},
		{"EXCH only, Type as attribute", poxAccount(`<Action>settings</Action><Protocol Type="EXCH"><EwsUrl>https://int.example.test/EWS/Exchange.asmx</EwsUrl></Protocol>`), func(t *testing.T, a answer) {
			if a.res == nil || a.res.EWSURL != "https://int.example.test/EWS/Exchange.asmx" {
				t.Errorf("%+v", a)
			}
		}},
		{"WEB only", poxAccount(`<Action>settings</Action><Protocol><Type>WEB</Type></Protocol>`), func(t *testing.T, a answer) {
			if a.err == nil || !strings.Contains(a.err.Error(), "no EXPR, EXCH or EXHTTP protocol") {
				t.Errorf("%+v", a)
			}
		}},
		{"redirect url", poxAccount(`<Action>redirectUrl</Action><RedirectUrl>https://x.test/autodiscover/autodiscover.xml</RedirectUrl>`), func(t *testing.T, a answer) {
			if a.location == nil || a.location.Host != "x.test" {
				t.Errorf("%+v", a)
			}
		}},
		{"redirect address", poxAccount(`<Action>redirectAddr</Action><RedirectAddr>bob@other.test</RedirectAddr>`), func(t *testing.T, a answer) {
			if a.address != "bob@other.test" {
				t.Errorf("%+v", a)
			}
		}},
		{"error 500", poxErrorDoc("500", "The email address can't be found."), func(t *testing.T, a answer) {
			if !a.decisive {
				t.Errorf("%+v", a)
			}
		}},
		{"error 600", poxErrorDoc("600", "Invalid Request"), func(t *testing.T, a answer) {
			if a.decisive || a.err == nil || !strings.Contains(a.err.Error(), "autodiscover error 600: Invalid Request") {
				t.Errorf("%+v", a)
			}
		}},
		{"error in Account", poxAccount(`<Error><ErrorCode>603</ErrorCode><Message>Server error.</Message></Error>`), func(t *testing.T, a answer) {
			if a.err == nil || !strings.Contains(a.err.Error(), "603") {
				t.Errorf("%+v", a)
			}
		}},
		{"wrong root", `<Other><Response/></Other>`, func(t *testing.T, a answer) {
			if mail.ClassOf(a.err) != mail.ClassProtocol {
				t.Errorf("%+v", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse("https://ad.example.test/autodiscover/autodiscover.xml")
			tc.check(t, poxAnswer("alice@example.test", u, []byte(tc.doc)))
		})
	}
}

// checkAnswer is the property every parsed answer keeps: exactly one
// outcome, and an EWS URL only when it is https.
func checkAnswer(t *testing.T, a answer) {
	n := 0
	for _, set := range []bool{a.res != nil, a.location != nil, a.address != "", a.err != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d outcomes in %+v", n, a)
	}
	if a.res != nil && !strings.HasPrefix(a.res.EWSURL, "https://") {
		t.Fatalf("EWS URL %q", a.res.EWSURL)
	}
	if a.err != nil && mail.ClassOf(a.err) == mail.ClassInternal {
		t.Fatalf("unclassified %v", a.err)
	}
}

func FuzzSOAPAnswer(f *testing.F) {
	f.Add(soapOK("https://mail.example.test/EWS/Exchange.asmx", "G", "Alice"))
	f.Add(soapUserResponse("RedirectAddress", "", "bob@other.test"))
	f.Add(soapUserResponse("RedirectUrl", "", "https://x.test/autodiscover/autodiscover.svc"))
	f.Add(soapUserResponse("InvalidUser", "Invalid user.", ""))
	f.Add(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultstring>x</faultstring></s:Fault></s:Body></s:Envelope>`)
	u, _ := url.Parse("https://ad.example.test/autodiscover/autodiscover.svc")
	f.Fuzz(func(t *testing.T, doc string) {
		checkAnswer(t, soapAnswer("alice@example.test", u, []byte(doc)))
	})
}

func FuzzPOXAnswer(f *testing.F) {
	f.Add(poxOK("https://a.test/EWS/Exchange.asmx", "https://b.test/EWS/Exchange.asmx", "Alice"))
	f.Add(poxAccount(`<Action>redirectUrl</Action><RedirectUrl>https://x.test/autodiscover/autodiscover.xml</RedirectUrl>`))
	f.Add(poxAccount(`<Action>redirectAddr</Action><RedirectAddr>bob@other.test</RedirectAddr>`))
	f.Add(poxErrorDoc("500", "The email address can't be found."))
	u, _ := url.Parse("https://ad.example.test/autodiscover/autodiscover.xml")
	f.Fuzz(func(t *testing.T, doc string) {
		checkAnswer(t, poxAnswer("alice@example.test", u, []byte(doc)))
	})
}
