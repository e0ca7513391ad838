// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// testMessage builds an RFC 5322 message of about size bytes.
func testMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Received: from mx01.contoso.com (10.0.0.5) by exch01.contoso.local (10.0.0.9) with Microsoft SMTP Server id 15.1.2507.6; Mon, 2 Mar 2026 10:15:04 +0100\r\n")
	b.WriteString("From: Anna Berg <anna.berg@contoso.com>\r\nTo: Vertrieb <sales@contoso.com>\r\n")
	b.WriteString("Subject: =?utf-8?q?Quartalsbericht_Q1_=E2=80=93_Entwurf?=\r\nDate: Mon, 2 Mar 2026 10:15:00 +0100\r\n")
	b.WriteString("Message-ID: <DB9PR06MB7291.eurprd06@contoso.com>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "Zeile %05d: Umsatz gegenüber Vorjahr gestiegen, Details im Anhang & in der Tabelle <1>.\r\n", i)
	}
	return b.Bytes()
}

// wrap76 is base64 as some servers send it, in lines of 76.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteString("\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func mimeResponse(b64 string) string {
	return opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">`+b64+`</t:MimeContent>`+
		`<t:ItemId Id="`+testItemID+`" ChangeKey="`+testItemCK+`"/></t:Message></m:Items>`))
}

func TestGetMIME(t *testing.T) {
	msg := testMessage(30 << 10)
	for name, b64 := range map[string]string{
		"one line":  base64.StdEncoding.EncodeToString(msg),
		"76 column": wrap76(base64.StdEncoding.EncodeToString(msg)),
	} {
		t.Run(name, func(t *testing.T) {
			body := mimeResponse(b64)
			// Tiny chunks: quanta and tags split across reads.
			f := streamServer(t, split(body, 333), nil)
			c := newClient(t, f.url(), nil)
			m, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if m.Truncated || !bytes.Equal(m.Raw, msg) {
				t.Fatalf("MIME differs (truncated %v, %d vs %d bytes)", m.Truncated, len(m.Raw), len(msg))
			}
		})
	}
}

func TestGetMIMETruncated(t *testing.T) {
	msg := testMessage(30 << 10)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		reply(w, mimeResponse(base64.StdEncoding.EncodeToString(msg)))
	})
	c := newClient(t, f.url(), nil)
	m, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	hdrEnd := bytes.Index(msg, []byte("\r\n\r\n")) + 4
	if !m.Truncated || !bytes.Equal(m.Raw, msg[:hdrEnd]) {
		t.Fatalf("truncated=%v raw=%q", m.Truncated, m.Raw)
	}
	// Exactly at the limit is not truncated.
	m, err = c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, int64(len(msg)))
	if err != nil || m.Truncated || len(m.Raw) != len(msg) {
		t.Fatalf("at the limit: %v, truncated %v", err, m != nil && m.Truncated)
	}
}

func TestGetMIMEErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\nbody"))
	cases := map[string]struct {
		body  string
		class mail.ErrorClass
		is    error
	}{
		"not found":       {opResp("GetItem", errMsg("GetItem", "ErrorItemNotFound", "The specified object was not found in the store., The process failed to get the correct properties.", "")), mail.ClassProtocol, ErrNotFound},
		"fault":           {soapEnv(`<s:Fault><faultcode xmlns:a="` + nsTypes + `">a:ErrorServerBusy</faultcode><faultstring>busy</faultstring></s:Fault>`), mail.ClassProtocol, ErrServerBusy},
		"not base64":      {mimeResponse(good[:8] + "!!" + good[8:]), mail.ClassProtocol, nil},
		"entity":          {mimeResponse(good[:8] + "&#65;" + good[8:]), mail.ClassProtocol, nil},
		"markup inside":   {mimeResponse(good + "<!-- x -->"), mail.ClassProtocol, nil},
		"partial quantum": {mimeResponse(good[:len(good)-2]), mail.ClassProtocol, nil},
		"empty":           {mimeResponse(""), mail.ClassProtocol, nil},
		"no MimeContent":  {opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:ItemId Id="x"/></t:Message></m:Items>`)), mail.ClassProtocol, nil},
		"html":            {"<html><body>Server Error</body></html>", mail.ClassProtocol, nil},
		"cut":             {mimeResponse(good)[:400], mail.ClassConnect, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) { reply(w, tc.body) })
			c := newClient(t, f.url(), nil)
			_, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, 1<<20)
			wantClass(t, err, tc.class)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

// A connection cut inside the base64 is a connection failure.
func TestGetMIMEConnectionCut(t *testing.T) {
	body := mimeResponse(base64.StdEncoding.EncodeToString(testMessage(20000)))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	c := newClient(t, f.url(), nil)
	_, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, 1<<20)
	wantClass(t, err, mail.ClassConnect)
}

// The envelope before MimeContent is bounded too.
func TestGetMIMEPrefixBudget(t *testing.T) {
	body := opResp("GetItem", okMsg("GetItem", `<m:Items><t:Message><t:Subject>`+strings.Repeat("x", maxMIMEPrefix+100)+`</t:Subject></t:Message></m:Items>`))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, req *soapReq) { reply(w, body) })
	c := newClient(t, f.url(), nil)
	_, err := c.GetMIME(ctxT(t), Target{}, ItemID{ID: testItemID}, 1<<20)
	wantClass(t, err, mail.ClassProtocol)
}

// readMIME with the smallest reads and buffer: every split of quanta, tags
// and the bufio buffer is exercised.
func TestReadMIMESmallReads(t *testing.T) {
	msg := testMessage(5000)
	body := mimeResponse(wrap76(base64.StdEncoding.EncodeToString(msg)))
	for _, size := range []int{16, 17, 64, 4096} {
		br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(body)), size)
		m, err := readMIME(br, "GetItem", 1<<20, 0, func() {})
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		if !bytes.Equal(m.Raw, msg) {
			t.Fatalf("buffer %d: MIME differs", size)
		}
	}
}

func FuzzReadMIME(f *testing.F) {
	f.Add(mimeResponse(base64.StdEncoding.EncodeToString([]byte("Subject: x\r\n\r\nbody"))), int64(100))
	f.Add(mimeResponse(wrap76(base64.StdEncoding.EncodeToString(testMessage(500)))), int64(50))
	f.Add(opResp("GetItem", errMsg("GetItem", "ErrorItemNotFound", "gone", "")), int64(10))
	f.Fuzz(func(t *testing.T, body string, limit int64) {
		if limit <= 0 || limit > 1<<20 {
			limit = 1 << 20
		}
		br := bufio.NewReaderSize(strings.NewReader(body), 16)
		m, err := readMIME(br, "GetItem", limit, 0, func() {})
		if err == nil && int64(len(m.Raw)) > limit {
			t.Fatalf("%d bytes over the limit %d", len(m.Raw), limit)
		}
	})
}

// BenchmarkReadMIME30K is the parsing cost of a 30 KB message: the
// envelope up to MimeContent and the base64 decode.
func BenchmarkReadMIME30K(b *testing.B) {
	body := []byte(mimeResponse(base64.StdEncoding.EncodeToString(testMessage(30 << 10))))
	r := bytes.NewReader(body)
	br := bufio.NewReaderSize(r, 32<<10)
	b.SetBytes(30 << 10)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(body)
		br.Reset(r)
		if _, err := readMIME(br, "GetItem", 1<<20, 30<<10+1024, func() {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetMIME30K is the whole call over loopback HTTP.
func BenchmarkGetMIME30K(b *testing.B) {
	body := mimeResponse(base64.StdEncoding.EncodeToString(testMessage(30 << 10)))
	srv := newBenchServer(b, body)
	c, err := New(Options{URL: srv + "/EWS/Exchange.asmx"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	b.SetBytes(30 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetMIME(b.Context(), Target{Impersonate: testMailbox}, ItemID{ID: testItemID}, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
