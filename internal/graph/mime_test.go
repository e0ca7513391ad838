// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

const testMessage = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n"

func mimeServer(t *testing.T, body string, withLength bool) *Client {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.0/users/u/messages/AAMk=1/$value" {
			t.Errorf("path %q", r.URL.Path)
		}
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body))
	}))
	return c
}

func TestMIME(t *testing.T) {
	body := testMessage + strings.Repeat("body line\r\n", 1000)
	for _, withLength := range []bool{true, false} {
		c := mimeServer(t, body, withLength)
		m, err := c.MIME(t.Context(), "u", "AAMk=1", int64(len(body)))
		if err != nil || m.Truncated || string(m.Raw) != body {
			t.Fatalf("length %v: %d bytes, truncated %v, %v", withLength, len(m.Raw), m.Truncated, err)
		}
		m, err = c.MIME(t.Context(), "u", "AAMk=1", int64(len(body)-1))
		if err != nil || !m.Truncated || string(m.Raw) != testMessage {
			t.Fatalf("length %v: over the limit: %q, truncated %v, %v", withLength, m.Raw, m.Truncated, err)
		}
	}
}

func TestMIMEEmptyAndGone(t *testing.T) {
	c := mimeServer(t, "", true)
	_, err := c.MIME(t.Context(), "u", "AAMk=1", 0)
	requireClass(t, err, mail.ClassProtocol)

	c, _ = newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
	}))
	_, err = c.MIME(t.Context(), "u", "AAMk=1", 0)
	requireClass(t, err, mail.ClassProtocol)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound: %v", err)
	}
}

func TestHeaders(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("$select") != "internetMessageHeaders,receivedDateTime" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		writeJSON(w, 200, map[string]any{
			"receivedDateTime":       "2026-02-01T08:00:00Z",
			"internetMessageHeaders": []any{map[string]any{"name": "Subject", "value": "hi"}, map[string]any{"name": "From", "value": "a@b"}},
		})
	}))
	hs, rcv, err := c.Headers(t.Context(), "u", "m1")
	if err != nil || len(hs) != 2 || hs[0] != (Header{"Subject", "hi"}) || rcv.IsZero() {
		t.Fatalf("Headers = %v, %v, %v", hs, rcv, err)
	}
}

func TestResponseSizeBound(t *testing.T) {
	big := strings.Repeat("x", 4096)
	for _, withLength := range []bool{true, false} {
		c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var b bytes.Buffer
			b.WriteString(`{"id":"F","displayName":"` + big + `"}`)
			if withLength {
				w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
			}
			w.Write(b.Bytes())
		}), func(o *Options) { o.MaxResponseBytes = 1024 })
		_, err := c.Folder(t.Context(), "u", "inbox")
		requireClass(t, err, mail.ClassProtocol)
		var tl *errTooLarge
		if !errors.As(err, &tl) || tl.limit != 1024 {
			t.Fatalf("want errTooLarge: %v", err)
		}
	}
}

func TestErrorBodyBounded(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write(bytes.Repeat([]byte("<html>"), 1<<20))
	}))
	_, err := c.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassProtocol)
	if len(err.Error()) > 1000 {
		t.Fatalf("error of %d bytes", len(err.Error()))
	}
}

func TestSendMIME(t *testing.T) {
	var got []byte
	var ctype string
	var n int
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if r.Method != "POST" || r.URL.Path != "/v1.0/users/u/sendMail" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		ctype = r.Header.Get("Content-Type")
		got, _ = readAllLimit(r, 1<<20)
		w.WriteHeader(http.StatusAccepted)
	}))
	if err := c.SendMIME(t.Context(), "u", []byte(testMessage+"x")); err != nil {
		t.Fatal(err)
	}
	if ctype != "text/plain" || string(got) != "RnJvbTogYUBleGFtcGxlLmNvbQ0KVG86IGJAZXhhbXBsZS5jb20NClN1YmplY3Q6IGhpDQoNCng=" {
		t.Fatalf("body %q (%s)", got, ctype)
	}
}

func TestAddCategory(t *testing.T) {
	var patches []string
	etag := `W/"1"`
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "GET":
			writeJSON(w, 200, map[string]any{"@odata.etag": etag, "categories": []string{"Red"}})
		case "PATCH":
			b, _ := readAllLimit(r, 1<<20)
			patches = append(patches, r.Header.Get("If-Match")+" "+string(b))
			if len(patches) == 1 {
				etag = `W/"2"`
				graphError(w, http.StatusPreconditionFailed, "ErrorIrresolvableConflict", "changed")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	if err := c.AddCategory(t.Context(), "u", "m1", "Processed"); err != nil {
		t.Fatal(err)
	}
	want := []string{`W/"1" {"categories":["Red","Processed"]}`, `W/"2" {"categories":["Red","Processed"]}`}
	if strings.Join(patches, "|") != strings.Join(want, "|") {
		t.Fatalf("patches %q", patches)
	}
	patches = nil
	if err := c.AddCategory(t.Context(), "u", "m1", "red"); err != nil || len(patches) != 0 {
		t.Fatalf("present category written again: %v %v", patches, err)
	}
}
