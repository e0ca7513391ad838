// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// world is a set of fake hosts for one test. Every name resolves (through
// the client's dialer, never DNS) to one of three loopback servers that
// serve all names and dispatch on the Host header: plain http, https with a
// certificate the client trusts, and https with one it does not. A name
// that is not registered gives "no such host"; a registered name without a
// handler for a scheme refuses the connection. Nothing leaves 127.0.0.1.
type world struct {
	t        *testing.T
	mu       sync.Mutex
	hosts    map[string]*fakeHost
	srv      map[string][]*net.SRV // domain → SRV records
	requests []request

	tlsSrv, badSrv, plainSrv *httptest.Server
	pool                     *x509.CertPool
}

type fakeHost struct {
	https   http.Handler // any port but 80
	http    http.Handler // port 80
	badCert bool         // https served with an untrusted certificate
}

// request is what a fake host received.
type request struct {
	Scheme, Host, Method, Path string
	Header                     http.Header
	Body                       []byte
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, hosts: map[string]*fakeHost{}, srv: map[string][]*net.SRV{}}
	cert, pool := testCert(t, "example.test", "*.example.test", "other.test", "*.other.test", "evil.test", "*.evil.test", "hoster.test", "*.hoster.test", "autodiscover-s.outlook.com")
	w.pool = pool
	quiet := log.New(io.Discard, "", 0) // refused handshakes are expected
	w.tlsSrv = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	w.tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	w.tlsSrv.Config.ErrorLog = quiet
	w.tlsSrv.StartTLS()
	w.badSrv = httptest.NewUnstartedServer(http.HandlerFunc(w.serve))
	w.badSrv.Config.ErrorLog = quiet
	w.badSrv.StartTLS() // httptest's own certificate: not in pool
	w.plainSrv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(func() {
		w.tlsSrv.Close()
		w.badSrv.Close()
		w.plainSrv.Close()
	})
	return w
}

// host registers name (created on first use) and returns it for setting
// handlers.
func (w *world) host(name string) *fakeHost {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hosts[name]
	if h == nil {
		h = &fakeHost{}
		w.hosts[name] = h
	}
	return h
}

func (w *world) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	name := r.Host
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if scheme == "http" && r.Header.Get("Authorization") != "" {
		w.t.Errorf("credentials sent over plain http to %s%s", r.Host, r.URL.Path)
	}
	w.mu.Lock()
	w.requests = append(w.requests, request{Scheme: scheme, Host: r.Host, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	fh := w.hosts[name]
	w.mu.Unlock()
	var h http.Handler
	if fh != nil {
		h = fh.https
		if scheme == "http" {
			h = fh.http
		}
	}
	if h == nil {
		http.NotFound(rw, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.ServeHTTP(rw, r)
}

// dial maps host:port to a loopback server.
func (w *world) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	name, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	h := w.hosts[name]
	w.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: network, Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	var target string
	switch {
	case h == nil:
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	case port == "80" && h.http != nil:
		target = w.plainSrv.Listener.Addr().String()
	case port != "80" && h.https != nil && h.badCert:
		target = w.badSrv.Listener.Addr().String()
	case port != "80" && h.https != nil:
		target = w.tlsSrv.Listener.Addr().String()
	default:
		return nil, refused
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// LookupSRV implements SRVResolver from w.srv.
func (w *world) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if service != "autodiscover" || proto != "tcp" {
		w.t.Errorf("SRV lookup of service %q proto %q", service, proto)
	}
	recs, ok := w.srv[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: "_" + service + "._" + proto + "." + name, IsNotFound: true}
	}
	return "_" + service + "._" + proto + "." + name + ".", recs, nil
}

// options returns Options with an authenticating client (Basic alice),
// an unauthenticated probe client and the world's resolver.
func (w *world) options() Options {
	tr := &http.Transport{DialContext: w.dial, TLSClientConfig: &tls.Config{RootCAs: w.pool}}
	w.t.Cleanup(tr.CloseIdleConnections)
	return Options{
		HTTP:      &http.Client{Transport: basicAuth{tr}},
		ProbeHTTP: &http.Client{Transport: tr},
		Resolver:  w,
	}
}

// basicAuth adds credentials to every request, like the caller's client.
type basicAuth struct{ next http.RoundTripper }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth("alice", "s3cret")
	return b.next.RoundTrip(r)
}

// reqs returns the requests received so far.
func (w *world) reqs() []request {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]request(nil), w.requests...)
}

// asked reports whether host was contacted at all.
func (w *world) asked(host string) bool {
	for _, r := range w.reqs() {
		if r.Host == host || strings.HasPrefix(r.Host, host+":") {
			return true
		}
	}
	return false
}

// testCert returns a self-signed CA certificate for names and a pool
// trusting it.
func testCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Handlers.

// xmlReply answers with status and body as text/xml.
func xmlReply(status int, body string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
		rw.WriteHeader(status)
		io.WriteString(rw, body)
	})
}

// redirectTo answers 302 to location.
func redirectTo(location string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Location", location)
		rw.WriteHeader(http.StatusFound)
	})
}

func statusOnly(code int) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(code)
	})
}

// paths routes by path; anything else is 404.
func paths(m map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if h, ok := m[r.URL.Path]; ok {
			h.ServeHTTP(rw, r)
			return
		}
		http.NotFound(rw, r)
	})
}

// byMailbox answers a SOAP or POX request by the address asked for.
func byMailbox(m map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		addr := mailboxOf(body)
		h, ok := m[addr]
		if !ok {
			http.Error(rw, "unexpected mailbox "+addr, http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(rw, r)
	})
}

// mailboxOf returns the address of a SOAP (Mailbox) or POX (EMailAddress)
// request.
func mailboxOf(body []byte) string {
	if v := xmlTexts(body, soapMailboxPath...); len(v) > 0 {
		return v[0]
	}
	if v := xmlTexts(body, poxAddressPath...); len(v) > 0 {
		return v[0]
	}
	return ""
}

// The namespaces, spelt out here rather than taken from the package, so a
// typo there fails the request-shape checks.
const (
	wantSOAP   = "http://schemas.xmlsoap.org/soap/envelope/"
	wantAD     = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
	wantWSA    = "http://www.w3.org/2005/08/addressing"
	wantPOXReq = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	wantPOXOut = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

var (
	soapMailboxPath = []string{wantSOAP + " Envelope", wantSOAP + " Body", wantAD + " GetUserSettingsRequestMessage",
		wantAD + " Request", wantAD + " Users", wantAD + " User", wantAD + " Mailbox"}
	soapSettingPath = []string{wantSOAP + " Envelope", wantSOAP + " Body", wantAD + " GetUserSettingsRequestMessage",
		wantAD + " Request", wantAD + " RequestedSettings", wantAD + " Setting"}
	soapVersionPath = []string{wantSOAP + " Envelope", wantSOAP + " Header", wantAD + " RequestedServerVersion"}
	soapActionPath  = []string{wantSOAP + " Envelope", wantSOAP + " Header", wantWSA + " Action"}
	soapToPath      = []string{wantSOAP + " Envelope", wantSOAP + " Header", wantWSA + " To"}
	poxAddressPath  = []string{wantPOXReq + " Autodiscover", wantPOXReq + " Request", wantPOXReq + " EMailAddress"}
	poxSchemaPath   = []string{wantPOXReq + " Autodiscover", wantPOXReq + " Request", wantPOXReq + " AcceptableResponseSchema"}
)

// xmlTexts returns the text of every element at the path of "namespace
// local" names from the root: a strict, namespace-exact check of a request's
// shape.
func xmlTexts(data []byte, path ...string) []string {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []string
	var texts []string
	var cur *strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return texts
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tk.Name.Space+" "+tk.Name.Local)
			if equalPath(stack, path) {
				cur = &strings.Builder{}
			}
		case xml.CharData:
			if cur != nil {
				cur.Write(tk)
			}
		case xml.EndElement:
			if cur != nil && equalPath(stack, path) {
				texts = append(texts, cur.String())
				cur = nil
			}
			stack = stack[:len(stack)-1]
		}
	}
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fixtures: our own renderings of the answers real servers give, with the
// real namespaces.

type setting struct{ name, value string }

// soapUserResponse is a GetUserSettings answer with one UserResponse.
func soapUserResponse(code, message, redirectTarget string, settings ...setting) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing">
  <s:Header>
    <a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action>
    <h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
      <h:MajorVersion>15</h:MajorVersion><h:MinorVersion>1</h:MinorVersion>
      <h:MajorBuildNumber>2507</h:MajorBuildNumber><h:MinorBuildNumber>6</h:MinorBuildNumber>
      <h:Version>Exchange2015</h:Version>
    </h:ServerVersionInfo>
  </s:Header>
  <s:Body>
    <GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover">
      <Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
        <ErrorCode>NoError</ErrorCode>
        <ErrorMessage/>
        <UserResponses>
          <UserResponse>
            <ErrorCode>`)
	b.WriteString(code)
	b.WriteString(`</ErrorCode>
            <ErrorMessage>`)
	b.WriteString(message)
	b.WriteString("</ErrorMessage>\n")
	if redirectTarget == "" {
		b.WriteString(`            <RedirectTarget i:nil="true"/>` + "\n")
	} else {
		b.WriteString(`            <RedirectTarget>` + redirectTarget + "</RedirectTarget>\n")
	}
	b.WriteString("            <UserSettingErrors/>\n            <UserSettings>\n")
	for _, s := range settings {
		fmt.Fprintf(&b, `              <UserSetting i:type="StringSetting"><Name>%s</Name><Value>%s</Value></UserSetting>`+"\n", s.name, s.value)
	}
	b.WriteString(`            </UserSettings>
          </UserResponse>
        </UserResponses>
      </Response>
    </GetUserSettingsResponseMessage>
  </s:Body>
</s:Envelope>`)
	return b.String()
}

// soapOK is a successful answer.
func soapOK(ews, grouping, name string) string {
	return soapUserResponse("NoError", "No error.", "",
		setting{"UserDisplayName", name},
		setting{"ExternalEwsUrl", ews},
		setting{"InternalEwsUrl", "https://internal.example.test/EWS/Exchange.asmx"},
		setting{"GroupingInformation", grouping})
}

// poxOK is an Outlook-provider answer with EXCH and EXPR protocols.
func poxOK(exch, expr, name string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User>
      <DisplayName>` + name + `</DisplayName>
      <AutoDiscoverSMTPAddress>alice@example.test</AutoDiscoverSMTPAddress>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <MicrosoftOnline>False</MicrosoftOnline>
      <Protocol>
        <Type>EXCH</Type>
        <Server>mbx01.example.test</Server>
        <ASUrl>` + exch + `</ASUrl>
        <EwsUrl>` + exch + `</EwsUrl>
      </Protocol>
      <Protocol>
        <Type>EXPR</Type>
        <Server>mail.example.test</Server>
        <EwsUrl>` + expr + `</EwsUrl>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>`
}

// poxAccount is an Outlook-provider answer with the given Account body.
func poxAccount(inner string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>` + inner + `</Account>
  </Response>
</Autodiscover>`
}

// poxErrorDoc is an error answer (Error under Response, in the 2006 namespace).
func poxErrorDoc(code, message string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response>
    <Error Time="10:41:02.1234567" Id="2471766553">
      <ErrorCode>` + code + `</ErrorCode>
      <Message>` + message + `</Message>
      <DebugData />
    </Error>
  </Response>
</Autodiscover>`
}
