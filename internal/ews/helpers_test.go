// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Realistic-looking identifiers (made up, shaped like Exchange's).
const (
	testItemID  = "AAMkADk2MjE4ZGQ4LTJhNjEtNGM1Yi05YjU3LTBiZjQzZmU4YjE5MQBGAAAAAABqq3Gr0xnPQ4ZFNbSaB1SRBwCWc2pYJ3tTRYRb5mPzg7CIAAAAAAEMAACWc2pYJ3tTRYRb5mPzg7CIAAAbLqZ7AAA="
	testItemCK  = "CQAAABYAAACWc2pYJ3tTRYRb5mPzg7CIAAAbMnyf"
	testItemID2 = "AAMkADk2MjE4ZGQ4LTJhNjEtNGM1Yi05YjU3LTBiZjQzZmU4YjE5MQBGAAAAAABqq3Gr0xnPQ4ZFNbSaB1SRBwCWc2pYJ3tTRYRb5mPzg7CIAAAAAAEMAACWc2pYJ3tTRYRb5mPzg7CIAAAbLqZ8AAA="
	testFolder  = "AAMkADk2MjE4ZGQ4LTJhNjEtNGM1Yi05YjU3LTBiZjQzZmU4YjE5MQAuAAAAAABqq3Gr0xnPQ4ZFNbSaB1SRAQCWc2pYJ3tTRYRb5mPzg7CIAAAAAAEMAAA="
	testFolCK   = "AQAAABYAAACWc2pYJ3tTRYRb5mPzg7CIAAAbLrb2"
	testRoot    = "AAMkADk2MjE4ZGQ4LTJhNjEtNGM1Yi05YjU3LTBiZjQzZmU4YjE5MQAuAAAAAABqq3Gr0xnPQ4ZFNbSaB1SRAQCWc2pYJ3tTRYRb5mPzg7CIAAAAAAEIAAA="
	testSubID   = "JgBleGNoMDEuY29udG9zby5sb2NhbBAAAADhH3Yd8f1ES5Qm8N6Y0Tq2mQZqSL5J3ggQAAAAeo2y1UXoHU6qbq9UTqgAAA=="
	testSyncSt  = "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt/SvVK1+B0oQiAYBMk2JBAEOzBiM3mkuwdaUcjKasqgcplVmVdZhZAzO2dvPfee++999577733ujudTif33/8/XGZkAWz2zkrayZ4hgKrIHz9+fB8/Ih7/D3+7UUqcfEFd/LtvAzT7dmVSLffBiRGTfd8RN33X11n7gffffy2fOv/3//9/y/yf8fwH9D/9B/z/BfyP9b5PmWf+4f+AHfvSLLMnqbJF+W1v1"
	testUser    = "svc-listener@contoso.com"
	testPass    = "Sup3r-Secret!pw"
	testMailbox = "anna.berg@contoso.com"
)

// soapReq is a request as the fake server received it.
type soapReq struct {
	Header http.Header
	Raw    []byte
	Doc    *node // s:Envelope
	Op     *node // the first child of s:Body
}

// node is a parsed XML element (test-only DOM, enough to assert on names,
// namespaces, order and values).
type node struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []*node
	Text     string
}

func parseDoc(t testing.TB, data []byte) *node {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("request is not well-formed XML: %v\n%s", err, data)
			return root
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tk.Name, Attr: tk.Copy().Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tk)
			}
		}
	}
	return root
}

// short renders a name with the conventional prefix of its namespace.
func short(n xml.Name) string {
	switch n.Space {
	case nsSOAP:
		return "s:" + n.Local
	case nsMsg:
		return "m:" + n.Local
	case nsTypes:
		return "t:" + n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

// names lists the children as "m:Local".
func (n *node) names() []string {
	var out []string
	for _, c := range n.Children {
		out = append(out, short(c.Name))
	}
	return out
}

// at walks down by prefixed names ("m:ItemShape", "t:BaseShape"), taking
// the first match at each step; it fails the test when a step is missing.
func (n *node) at(t testing.TB, path ...string) *node {
	t.Helper()
	cur := n
	for _, p := range path {
		var next *node
		for _, c := range cur.Children {
			if short(c.Name) == p {
				next = c
				break
			}
		}
		if next == nil {
			t.Fatalf("no %s under %s (children %v)", p, short(cur.Name), cur.names())
		}
		cur = next
	}
	return cur
}

func (n *node) attr(name string) string {
	for _, a := range n.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func wantNames(t testing.TB, n *node, want ...string) {
	t.Helper()
	if got := n.names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("children of %s:\n got %v\nwant %v", short(n.Name), got, want)
	}
}

// fakeEWS is an httptest server that parses each SOAP request and hands it
// to handle; it records the requests.
type fakeEWS struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*soapReq
	handle func(w http.ResponseWriter, r *http.Request, req *soapReq)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, req *soapReq)) *fakeEWS {
	t.Helper()
	f := &fakeEWS{handle: handle}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		req := &soapReq{Header: r.Header.Clone(), Raw: raw}
		if len(raw) > 0 {
			req.Doc = parseDoc(t, raw)
			for _, c := range req.Doc.Children {
				if short(c.Name) == "s:Body" && len(c.Children) > 0 {
					req.Op = c.Children[0]
				}
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		f.handle(w, r, req)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEWS) requests() []*soapReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*soapReq(nil), f.reqs...)
}

func (f *fakeEWS) last(t *testing.T) *soapReq {
	t.Helper()
	r := f.requests()
	if len(r) == 0 {
		t.Fatal("no request reached the server")
	}
	return r[len(r)-1]
}

func (f *fakeEWS) url() string { return f.URL + "/EWS/Exchange.asmx" }

// newClient builds a client for f; edit adjusts the options.
func newClient(t *testing.T, rawURL string, edit func(*Options)) *Client {
	t.Helper()
	o := Options{URL: rawURL, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// reply writes a SOAP response with status 200.
func reply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	io.WriteString(w, body)
}

// soapEnv wraps a body the way Exchange 2013+ does: s: prefix, the server
// version in the header, xsi/xsd on the body.
func soapEnv(body string) string {
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" ` +
		`xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" xmlns="http://schemas.microsoft.com/exchange/services/2006/types" ` +
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"/></s:Header>` +
		`<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` +
		body + `</s:Body></s:Envelope>`
}

// opResp is a whole response of op with the given response messages.
func opResp(op string, msgs ...string) string {
	return soapEnv(`<m:` + op + `Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" ` +
		`xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>` +
		strings.Join(msgs, "") + `</m:ResponseMessages></m:` + op + `Response>`)
}

func okMsg(op, inner string) string {
	return `<m:` + op + `ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>` +
		inner + `</m:` + op + `ResponseMessage>`
}

func errMsg(op, code, text, msgXML string) string {
	s := `<m:` + op + `ResponseMessage ResponseClass="Error"><m:MessageText>` + text + `</m:MessageText>` +
		`<m:ResponseCode>` + code + `</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>`
	if msgXML != "" {
		s += `<m:MessageXml>` + msgXML + `</m:MessageXml>`
	}
	return s + `</m:` + op + `ResponseMessage>`
}

// wantClass checks err's mail class.
func wantClass(t *testing.T, err error, c mail.ErrorClass) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got nil", c)
	}
	if got := mail.ClassOf(err); got != c {
		t.Fatalf("class = %s, want %s (err: %v)", got, c, err)
	}
}

// noSecret checks an error text for the test credentials.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), testPass) || strings.Contains(err.Error(), "tok-")) {
		t.Fatalf("error text leaks a secret: %v", err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newBenchServer answers every request with body.
func newBenchServer(b *testing.B, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		reply(w, body)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}
