// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/netguard"
)

// busyFault is the fault Exchange throttles with (HTTP 500).
func busyFault(backoffMS string) string {
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>` +
		`<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>` +
		`<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail>` +
		`<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>` +
		`<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>` +
		`<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">` + backoffMS + `</t:Value></t:MessageXml>` +
		`</detail></s:Fault></s:Body></s:Envelope>`
}

func faultOf(code, text string) string {
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>` +
		`<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:` + code + `</faultcode>` +
		`<faultstring xml:lang="en-US">` + text + `</faultstring><detail>` +
		`<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">` + code + `</e:ResponseCode>` +
		`<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">` + text + `</e:Message>` +
		`</detail></s:Fault></s:Body></s:Envelope>`
}

func TestFaultServerBusy(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, busyFault("297749"))
	})
	c := newClient(t, f.url(), nil)
	_, err := c.SyncFolderItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, "", 100)
	wantClass(t, err, mail.ClassProtocol)
	var fe *Fault
	if !errors.As(err, &fe) || fe.Code != "ErrorServerBusy" || fe.Status != 500 || fe.BackOff != 297749*time.Millisecond {
		t.Fatalf("fault = %+v (%v)", fe, err)
	}
	if !errors.Is(err, ErrServerBusy) {
		t.Error("not ErrServerBusy")
	}
	if d, ok := BackOff(err); !ok || d != 297749*time.Millisecond {
		t.Errorf("BackOff = %v, %v", d, ok)
	}
}

// ErrorInternalServerError carrying ErrorServerBusy in its MessageXml (HTTP 200).
func TestInnerServerBusy(t *testing.T) {
	inner := `<t:Value Name="InnerErrorMessageText">The server cannot service this request right now. Try again later.</t:Value>` +
		`<t:Value Name="InnerErrorResponseCode">ErrorServerBusy</t:Value><t:Value Name="InnerErrorDescriptiveLinkKey">0</t:Value>` +
		`<t:Value Name="BackOffMilliseconds">1200</t:Value>`
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("FindItem", errMsg("FindItem", "ErrorInternalServerError", "An internal server error occurred. The operation failed.", inner)))
	})
	c := newClient(t, f.url(), nil)
	err := c.FindItems(ctxT(t), Target{}, FolderID{Distinguished: "inbox"}, time.Time{}, 10, func([]ItemInfo) error { return nil })
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != "ErrorInternalServerError" || re.Inner != "ErrorServerBusy" {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, ErrServerBusy) {
		t.Error("inner busy not recognised")
	}
	if d, _ := BackOff(err); d != 1200*time.Millisecond {
		t.Errorf("BackOff = %v", d)
	}
	wantClass(t, err, mail.ClassProtocol)
}

func TestResponseCodes(t *testing.T) {
	cases := []struct {
		code  string
		fault bool
		class mail.ErrorClass
		is    error
		hint  string
	}{
		{"ErrorItemNotFound", false, mail.ClassProtocol, ErrNotFound, ""},
		{"ErrorFolderNotFound", false, mail.ClassConfig, ErrNotFound, ""},
		{"ErrorInvalidSyncStateData", false, mail.ClassProtocol, ErrInvalidSyncState, ""},
		{"ErrorExceededSubscriptionCount", false, mail.ClassProtocol, ErrExceededSubscriptionCount, ""},
		{"ErrorExpiredSubscription", false, mail.ClassProtocol, ErrSubscriptionLost, ""},
		{"ErrorProxyRequestNotAllowed", false, mail.ClassProtocol, ErrSubscriptionLost, ""},
		{"ErrorNonExistentMailbox", false, mail.ClassConfig, nil, "no mailbox"},
		{"ErrorImpersonateUserDenied", true, mail.ClassConfig, nil, "impersonate"},
		{"ErrorImpersonationDenied", false, mail.ClassConfig, nil, "impersonate"},
		{"ErrorInvalidExchangeImpersonationHeaderData", true, mail.ClassConfig, nil, "impersonation"},
		{"ErrorSchemaValidation", true, mail.ClassInternal, nil, ""},
		{"ErrorTimeoutExpired", false, mail.ClassTimeout, nil, ""},
		{"ErrorMailboxStoreUnavailable", false, mail.ClassProtocol, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
				if tc.fault {
					w.WriteHeader(http.StatusInternalServerError)
					io.WriteString(w, faultOf(tc.code, "Server says no."))
					return
				}
				reply(w, opResp("GetItem", errMsg("GetItem", tc.code, "Server says no.", "")))
			})
			c := newClient(t, f.url(), nil)
			_, _, err := c.GetHeaders(ctxT(t), Target{Impersonate: testMailbox}, ItemID{ID: testItemID})
			wantClass(t, err, tc.class)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), "Server says no.") {
				t.Errorf("err text = %q", err)
			}
			if tc.hint != "" && !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("err text lacks the hint %q: %q", tc.hint, err)
			}
		})
	}
}

func TestHTTPStatuses(t *testing.T) {
	cases := []struct {
		name    string
		handle  func(w http.ResponseWriter)
		class   mail.ErrorClass
		text    string
		backoff time.Duration
		busy    bool
	}{
		{"401", func(w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", `Basic realm="mail.contoso.com"`)
			w.WriteHeader(401)
		}, mail.ClassAuth, "requires authentication", 0, false},
		{"403", func(w http.ResponseWriter) { w.WriteHeader(403) }, mail.ClassConfig, "EWS is disabled", 0, false},
		{"404", func(w http.ResponseWriter) { w.WriteHeader(404) }, mail.ClassConfig, "no EWS endpoint", 0, false},
		{"302", func(w http.ResponseWriter) {
			w.Header().Set("Location", "/ews/genericerrorpage.htm?aspxerrorpath=/ews/exchange.asmx")
			w.WriteHeader(302)
		}, mail.ClassProtocol, "genericerrorpage", 0, false},
		{"503", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
			io.WriteString(w, "<html><body><h1>Service Unavailable</h1></body></html>")
		}, mail.ClassProtocol, "busy", 7 * time.Second, true},
		{"500 html", func(w http.ResponseWriter) {
			w.WriteHeader(500)
			io.WriteString(w, "<html><head><title>Runtime Error</title></head><body>Server Error in '/EWS' Application.</body></html>")
		}, mail.ClassProtocol, "without a SOAP fault", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) { tc.handle(w) })
			c := newClient(t, f.url(), nil)
			_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
			wantClass(t, err, tc.class)
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %q, want %q in it", err, tc.text)
			}
			if d, _ := BackOff(err); d != tc.backoff {
				t.Errorf("BackOff = %v", d)
			}
			if errors.Is(err, ErrServerBusy) != tc.busy {
				t.Errorf("ErrServerBusy = %v", !tc.busy)
			}
			var se *StatusError
			if !errors.As(err, &se) {
				t.Errorf("no *StatusError in %v", err)
			}
		})
	}
}

// A connection closed by the server before the answer ("Connection: close"
// under load): a read is sent once more, a send is not.
func TestConnectionDropped(t *testing.T) {
	var n atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		if n.Add(1)%2 == 1 {
			hijackAndCut(w)
			return
		}
		switch req.Op.Name.Local {
		case "GetFolder":
			reply(w, opResp("GetFolder", okMsg("GetFolder", `<m:Folders><t:Folder><t:FolderId Id="`+testFolder+`"/><t:DisplayName>Inbox</t:DisplayName></t:Folder></m:Folders>`)))
		default:
			reply(w, opResp("CreateItem", okMsg("CreateItem", `<m:Items/>`)))
		}
	})
	c := newClient(t, f.url(), nil)
	fs, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	if err != nil || len(fs) != 1 || fs[0].DisplayName != "Inbox" {
		t.Fatalf("GetFolder = %+v, %v", fs, err)
	}
	err = c.SendMIME(ctxT(t), Target{}, []byte("Subject: x\r\n\r\nx"))
	wantClass(t, err, mail.ClassConnect)
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests, want 3 (GetFolder twice, CreateItem once)", got)
	}
}

// hijackAndCut sends the start of a response and drops the connection.
func hijackAndCut(w http.ResponseWriter) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 5000\r\n\r\n<?xml version=")
	buf.Flush()
	conn.Close()
}

func TestTimeout(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c := newClient(t, f.url(), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassTimeout)
	if !strings.Contains(err.Error(), "within 200ms") {
		t.Errorf("err = %v", err)
	}
}

func TestResponseTooLarge(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, opResp("GetFolder", okMsg("GetFolder", `<m:Folders><t:Folder><t:DisplayName>`+strings.Repeat("x", 10000)+`</t:DisplayName></t:Folder></m:Folders>`)))
	})
	c := newClient(t, f.url(), func(o *Options) { o.MaxResponseBytes = 4096 })
	_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
	wantClass(t, err, mail.ClassProtocol)
}

func TestNotSOAP(t *testing.T) {
	for name, body := range map[string]string{
		"html":       "<html><body>hello</body></html>",
		"truncated":  opResp("GetFolder", okMsg("GetFolder", ""))[:200],
		"no message": soapEnv(`<m:GetFolderResponse xmlns:m="` + nsMsg + `"><m:ResponseMessages/></m:GetFolderResponse>`),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) { reply(w, body) })
			c := newClient(t, f.url(), nil)
			_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
			wantClass(t, err, mail.ClassProtocol)
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		c := newClient(t, srv.URL+"/EWS/Exchange.asmx", nil)
		_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
		wantClass(t, err, mail.ClassCertificate)
	})
	t.Run("https to plain http", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		c := newClient(t, strings.Replace(srv.URL, "http://", "https://", 1)+"/EWS/Exchange.asmx", nil)
		_, err := c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
		wantClass(t, err, mail.ClassTLS)
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newClient(t, "http://"+addr+"/EWS/Exchange.asmx", nil)
		_, err = c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
		wantClass(t, err, mail.ClassConnect)
	})
	t.Run("allow-list", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		defer srv.Close()
		allow, err := netguard.Parse("EL_MAIL_NETWORKS", "10.0.0.0/8")
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{DialContext: (&net.Dialer{Control: allow.Control()}).DialContext}
		c := newClient(t, srv.URL+"/EWS/Exchange.asmx", func(o *Options) { o.Transport = tr })
		_, err = c.GetFolder(ctxT(t), Target{}, FolderID{Distinguished: "inbox"})
		wantClass(t, err, mail.ClassConfig)
	})
}

func TestNewValidates(t *testing.T) {
	for _, o := range []Options{
		{},
		{URL: "ftp://mail.contoso.com/EWS/Exchange.asmx"},
		{URL: "https://user:pw@mail.contoso.com/EWS/Exchange.asmx"},
		{URL: "https://mail.contoso.com/EWS/Exchange.asmx", Version: "Exchange2099"},
		{URL: "https://mail.contoso.com/EWS/Exchange.asmx", Auth: Auth{Scheme: AuthBasic}},
		{URL: "https://mail.contoso.com/EWS/Exchange.asmx", Auth: Auth{Scheme: AuthBearer}},
	} {
		_, err := New(o)
		wantClass(t, err, mail.ClassConfig)
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("URL credentials in the error: %v", err)
		}
	}
}

func TestBackOffHelper(t *testing.T) {
	if _, ok := BackOff(nil); ok {
		t.Error("nil has a back-off")
	}
	if _, ok := BackOff(errors.New("x")); ok {
		t.Error("plain error has a back-off")
	}
	err := fmt.Errorf("wrapped: %w", &mail.Error{Class: mail.ClassProtocol, Op: "x", Err: &Fault{Code: "ErrorServerBusy", BackOff: time.Second}})
	if d, ok := BackOff(err); !ok || d != time.Second {
		t.Errorf("BackOff = %v %v", d, ok)
	}
}

func TestExcerpt(t *testing.T) {
	if got := excerpt("  a\r\n\tb \x00c  "); got != "a b ?c" {
		t.Errorf("excerpt = %q", got)
	}
	long := excerpt(strings.Repeat("é", 1000))
	if len(long) > maxExcerpt+8 || !strings.HasSuffix(long, "…") {
		t.Errorf("long excerpt %d bytes", len(long))
	}
}
