// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// msg builds a raw message from header lines and a body, with CRLF endings.
func msg(body string, headers ...string) []byte {
	return []byte(strings.Join(headers, "\r\n") + "\r\n\r\n" + body)
}

func mustParse(t *testing.T, raw []byte, opts *Options) *mail.Message {
	t.Helper()
	m, err := Parse(raw, opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\r\n", " \t\r\n\r\n"} {
		if _, err := Parse([]byte(in), nil); !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) error = %v, want ErrEmpty", in, err)
		}
	}
}

func TestImportance(t *testing.T) {
	tests := []struct {
		headers []string
		want    mail.Importance
	}{
		{nil, mail.ImportanceNormal},
		{[]string{"Importance: high"}, mail.ImportanceHigh},
		{[]string{"Importance: HIGH"}, mail.ImportanceHigh},
		{[]string{"Importance: Low"}, mail.ImportanceLow},
		{[]string{"Importance: normal", "X-Priority: 1"}, mail.ImportanceNormal},
		{[]string{"Importance: urgent", "X-Priority: 5"}, mail.ImportanceLow}, // unknown value skipped
		{[]string{"X-Priority: 1"}, mail.ImportanceHigh},
		{[]string{"X-Priority: 1 (Highest)"}, mail.ImportanceHigh},
		{[]string{"X-Priority: 2 (High)"}, mail.ImportanceHigh},
		{[]string{"X-Priority: 3 (Normal)"}, mail.ImportanceNormal},
		{[]string{"X-Priority: 4"}, mail.ImportanceLow},
		{[]string{"X-Priority: 5 (Lowest)"}, mail.ImportanceLow},
		{[]string{"X-Priority: 9"}, mail.ImportanceNormal},
		{[]string{"X-Priority: high"}, mail.ImportanceNormal},
		{[]string{"X-MSMail-Priority: High"}, mail.ImportanceHigh},
		{[]string{"X-MSMail-Priority: Low"}, mail.ImportanceLow},
		{[]string{"X-Priority: 5", "X-MSMail-Priority: High"}, mail.ImportanceLow},
	}
	for _, tt := range tests {
		name := strings.Join(tt.headers, "; ")
		t.Run(name, func(t *testing.T) {
			m := mustParse(t, msg("body", append([]string{"From: a@example.com"}, tt.headers...)...), nil)
			if m.Importance != tt.want {
				t.Errorf("Importance = %v, want %v", m.Importance, tt.want)
			}
		})
	}
}

func TestMessageID(t *testing.T) {
	tests := []struct {
		header, want string
	}{
		{"Message-ID: <abc@example.com>", "<abc@example.com>"},
		{"Message-ID:   <abc@example.com>  ", "<abc@example.com>"},
		{"Message-ID: abc@example.com", "<abc@example.com>"},
		{"Message-Id: <abc@example.com> (added by relay)", "<abc@example.com>"},
		{"MESSAGE-ID:\r\n <folded@example.com>", "<folded@example.com>"},
		{"Message-ID: <abc@example.com", "<abc@example.com>"},
	}
	for _, tt := range tests {
		m := mustParse(t, msg("body", "From: a@example.com", tt.header), nil)
		if m.MessageID != tt.want {
			t.Errorf("%q: MessageID = %q, want %q", tt.header, m.MessageID, tt.want)
		}
	}
}

func TestSyntheticMessageID(t *testing.T) {
	a := msg("body one", "From: a@example.com", "Subject: x")
	b := msg("body two", "From: a@example.com", "Subject: x")
	empty := msg("body one", "From: a@example.com", "Subject: x", "Message-ID:  ")

	idA1 := mustParse(t, a, nil).MessageID
	idA2 := mustParse(t, append([]byte(nil), a...), nil).MessageID
	idB := mustParse(t, b, nil).MessageID
	idEmpty := mustParse(t, empty, nil).MessageID

	if idA1 != idA2 {
		t.Errorf("synthesized id not stable: %q vs %q", idA1, idA2)
	}
	if idA1 == idB {
		t.Errorf("different messages got the same id %q", idA1)
	}
	// The id is part of the contract with deduplicating clients: pin its form.
	const want = "<8ce88ff2a963fece45f5e77cd3cd1bf3@emaillistener.invalid>" // printf … | sha256sum
	if got := syntheticMessageID(a); got != want || idA1 != want {
		t.Errorf("syntheticMessageID = %q (Parse: %q), want %q", got, idA1, want)
	}
	if !strings.HasSuffix(idEmpty, "@emaillistener.invalid>") {
		t.Errorf("empty Message-ID header: got %q, want a synthesized id", idEmpty)
	}
}

func TestMaxAttachmentBytes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "related_inline_pdf.eml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		limit     int64
		wantData  []bool // per attachment: Data kept
		wantWarns int
	}{
		{0, []bool{true, true, true}, 0},
		{1 << 20, []bool{true, true, true}, 0},
		{142, []bool{true, true, true}, 0}, // the PDF is exactly 142 bytes
		{100, []bool{true, true, false}, 1},
		{10, []bool{false, false, false}, 3},
	}
	for _, tt := range tests {
		m := mustParse(t, raw, &Options{MaxAttachmentBytes: tt.limit})
		if len(m.Attachments) != len(tt.wantData) {
			t.Fatalf("limit %d: %d attachments, want %d", tt.limit, len(m.Attachments), len(tt.wantData))
		}
		for i, a := range m.Attachments {
			if (a.Data != nil) != tt.wantData[i] {
				t.Errorf("limit %d: attachment %q Data kept = %v, want %v", tt.limit, a.Name, a.Data != nil, tt.wantData[i])
			}
			if a.Name == "" || a.ContentType == "" {
				t.Errorf("limit %d: attachment %d lost its metadata: %+v", tt.limit, i, a)
			}
		}
		if len(m.Warnings) != tt.wantWarns {
			t.Errorf("limit %d: warnings %q, want %d", tt.limit, m.Warnings, tt.wantWarns)
		}
		for _, w := range m.Warnings {
			if !strings.Contains(w, "exceeds limit") {
				t.Errorf("limit %d: unexpected warning %q", tt.limit, w)
			}
		}
	}
}

func TestAddressLists(t *testing.T) {
	tests := []struct {
		value string
		want  []mail.Address
	}{
		{"a@example.com", []mail.Address{{Address: "a@example.com"}}},
		{`"Doe, John" <j@example.com>, b@example.com`, []mail.Address{{Name: "Doe, John", Address: "j@example.com"}, {Name: "", Address: "b@example.com"}}},
		{"=?utf-8?B?0JjQstCw0L0=?= <ivan@example.ru>", []mail.Address{{Name: "Иван", Address: "ivan@example.ru"}}},
		{`"=?utf-8?B?0JjQstCw0L0=?=" <ivan@example.ru>`, []mail.Address{{Name: "Иван", Address: "ivan@example.ru"}}},
		{"undisclosed-recipients:;", nil},
		{"a@example.com; b@example.com", []mail.Address{{Name: "", Address: "a@example.com"}, {Name: "", Address: "b@example.com"}}},
		{"John Doe (Sales) <j@x.example>, <<bad>>, c@example.com", []mail.Address{{Name: "John Doe", Address: "j@x.example"}, {Name: "", Address: "c@example.com"}}},
		{"Broken \"Quote <q@example.com>", []mail.Address{{Name: "Broken \"Quote", Address: "q@example.com"}}},
		{"not an address", []mail.Address{{Name: "", Address: "not an address"}}},
	}
	for _, tt := range tests {
		d := newHeaderDecoder("")
		got := d.addressList("To", tt.value)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("addressList(%q) = %#v, want %#v", tt.value, got, tt.want)
		}
	}
}

func TestFromFallsBackToSender(t *testing.T) {
	m := mustParse(t, msg("x", "Sender: List <list@example.com>", "Subject: s"), nil)
	if want := (mail.Address{Name: "List", Address: "list@example.com"}); m.From != want {
		t.Errorf("From = %+v, want %+v", m.From, want)
	}
}

func TestParseDate(t *testing.T) {
	want := time.Date(2024, 3, 5, 7, 15, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"Tue, 5 Mar 2024 10:15:00 +0300", want},
		{"Tue, 05 Mar 2024 10:15:00 +0300 (MSK)", want},
		{"5 Mar 2024 10:15:00 +0300", want},
		{"Tue, 5 Mar 2024 10:15 +0300", want},
		{"Tue,5 Mar 2024 10:15:00 +0300", want},
		{"Tue, 5 Mar 2024 10:15:00 GMT+0300", want},
		{"Tue, 5 Mar 2024 10:15:00 GMT+3", want},
		{"Tue, 5 Mar 2024 10:15:00 +03:00", want},
		{"Tue, 5 Mar 2024 10:15:00 MSK", want},
		{"Tue, 5 Mar 2024 07:15:00 GMT", want},
		{"Tue, 5 Mar 2024 02:15:00 EST", want},
		{"Tue, 5 Mar 2024 07:15:00", want},
		{"Tue Mar  5 07:15:00 2024", want},
		{"2024-03-05T10:15:00+03:00", want},
		{"2024-03-05 07:15:00", want},
		{"", time.Time{}},
		{"yesterday", time.Time{}},
	}
	for _, tt := range tests {
		if got := parseDate(tt.in); !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("parseDate(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestScanHeader(t *testing.T) {
	raw := []byte("From mbox-line Tue Mar  5 10:15:00 2024\r\n" +
		"Subject: one\r\n two\r\n\tthree\r\n" +
		"X-Empty:\r\n" +
		"Bad Name: dropped\r\n" +
		"X-Unindented: a\r\nnot indented\r\n" +
		"subject : spaced colon\r\n" +
		"\r\nbody\r\n")
	h, body := scanHeader(raw)
	want := header{
		{"Subject", "one two three"},
		{"X-Empty", ""},
		{"X-Unindented", "a not indented"},
		{"subject", "spaced colon"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("fields = %q, want %q", h, want)
	}
	if string(raw[body:]) != "body\r\n" {
		t.Errorf("body = %q", raw[body:])
	}
	// LF-only messages and messages without a body.
	h, body = scanHeader([]byte("A: 1\nB: 2\n\nbody"))
	if len(h) != 2 || body != 11 {
		t.Errorf("LF: fields %q body %d", h, body)
	}
	h, body = scanHeader([]byte("A: 1\r\nB: 2"))
	if len(h) != 2 || body != 10 {
		t.Errorf("no body: fields %q body %d", h, body)
	}
	// A broken field first is dropped; text first is no header at all.
	h, body = scanHeader([]byte(":\r\nBad Name: x\r\nA: 1\r\n\r\nbody"))
	if len(h) != 1 || h[0].name != "A" || body != 24 {
		t.Errorf("broken first field: fields %q body %d", h, body)
	}
	h, body = scanHeader([]byte("Hello there\r\nA: 1\r\n\r\nbody"))
	if h != nil || body != 0 {
		t.Errorf("text first: fields %q body %d", h, body)
	}
}

func TestHeaderDecoding(t *testing.T) {
	d := newHeaderDecoder("windows-1251")
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?Q?caf=C3=A9?= =?utf-8?Q?_cr=C3=A8me?=", "café crème"},
		{"=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"},
		{"=?utf-8?B?0J/RgNC40LLQtdGC?= world", "Привет world"},
		{"=?x-unknown?Q?abc?=", "abc"},
		{"=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"},
		{"=?utf-8?B?0J/RgNC40LLQtdG?=", "Приве\uFFFD"}, // unpadded, cut mid-rune
		{"Re: \xcf\xf0\xe8\xe2\xe5\xf2", "Re: Привет"}, // raw windows-1251 bytes
		{"=?utf-8*ru?Q?=D0=94=D0=B0?=", "Да"},          // RFC 2231 language tag
	}
	for _, tt := range tests {
		if got := d.text(tt.in); got != tt.want {
			t.Errorf("text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBodySelection(t *testing.T) {
	// Apple Mail splits a body around an inline image; both halves belong to
	// the body, and the image is an attachment in between.
	raw := msg("--b\r\nContent-Type: text/plain\r\n\r\nfirst half\r\n"+
		"--b\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"i.png\"\r\n\r\nPNG\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nsecond half\r\n"+
		"--b\r\nContent-Type: text/plain; name=\"notes.txt\"\r\n\r\nan attached file\r\n--b--\r\n",
		"From: a@example.com", "Content-Type: multipart/mixed; boundary=b")
	m := mustParse(t, raw, nil)
	if m.Text != "first half\nsecond half" {
		t.Errorf("Text = %q", m.Text)
	}
	var names []string
	for _, a := range m.Attachments {
		names = append(names, a.Name)
	}
	if want := []string{"i.png", "notes.txt"}; !reflect.DeepEqual(names, want) {
		t.Errorf("attachments = %q, want %q", names, want)
	}
}

func TestStructureFallback(t *testing.T) {
	// The declared boundary never occurs: keep the body as text.
	raw := msg("--other\r\nContent-Type: text/plain\r\n\r\nhello\r\n--other--\r\n",
		"From: a@example.com", "Content-Type: multipart/mixed; boundary=missing")
	m := mustParse(t, raw, nil)
	if !strings.Contains(m.Text, "hello") || len(m.Warnings) == 0 {
		t.Errorf("Text = %q, Warnings = %q", m.Text, m.Warnings)
	}
}

// TestDeepNesting guards against the cost of hostile nesting: every level
// scans the bytes below it again (see maxMultiparts).
func TestDeepNesting(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	const depth = 1000
	for i := range depth {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n--b0--\r\n", depth)

	start := time.Now()
	m := mustParse(t, []byte(b.String()), nil)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Parse took %v", d)
	}
	if !strings.Contains(m.Text, "innermost") {
		t.Errorf("innermost text lost: %.200q", m.Text)
	}
	found := false
	for _, w := range m.Warnings {
		found = found || strings.Contains(w, "multiparts; the rest kept unparsed")
	}
	if !found {
		t.Errorf("no nesting warning in %q", m.Warnings)
	}
}

// TestShapes covers message shapes outside the golden corpus.
func TestShapes(t *testing.T) {
	tests := []struct {
		name        string
		raw         string
		text, html  string
		attachments []string // name:content-type
		warning     string   // a substring of some warning, if any is expected
	}{
		{
			name:        "single-part PDF",
			raw:         "From: a@x.com\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n",
			attachments: []string{"scan.pdf:application/pdf"},
		},
		{
			name:        "single-part text attachment",
			raw:         "From: a@x.com\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt\r\n\r\nlog\r\n",
			attachments: []string{"log.txt:text/plain"},
		},
		{
			name: "HTML only in alternative",
			raw:  "From: a@x.com\r\nContent-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>world</b></p>\r\n--q--\r\n",
			text: "Hello *world*", html: "<p>Hello <b>world</b></p>",
		},
		{
			name:    "multipart without boundary",
			raw:     "From: a@x.com\r\nContent-Type: multipart/mixed\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--zz--\r\n",
			text:    "--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--zz--\r\n",
			warning: "without boundary",
		},
		{
			name:        "message/rfc822 at the top",
			raw:         "From: a@x.com\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner: one\r\nFrom: b@x.com\r\n\r\ninner body\r\n",
			attachments: []string{"inner_ one.eml:message/rfc822"},
		},
		{
			name:        "LF line endings",
			raw:         "From: a@x.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nline1\nline2\n--b\nContent-Type: image/png\nContent-Disposition: attachment; filename=x.png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--b--\n",
			text:        "line1\nline2",
			attachments: []string{"x.png:image/png"},
		},
		{
			name:        "attached HTML file and calendar",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: text/html; name=page.html\r\n\r\n<p>file</p>\r\n--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n--b--\r\n",
			text:        "body",
			attachments: []string{"page.html:text/html", "attachment-2.ics:text/calendar"},
		},
		{
			name:        "delivery status notification",
			raw:         "From: MAILER-DAEMON@x.com\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x.com\r\n--r--\r\n",
			text:        "Delivery failed.",
			attachments: []string{"attachment-1.txt:message/delivery-status"},
		},
		{
			name:    "no header at all",
			raw:     "Hello there,\r\njust text.\r\n",
			text:    "Hello there,\r\njust text.\r\n",
			warning: "body kept as text",
		},
		{
			name:        "part header line without colon",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/pdf;\r\nname=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b\r\nContent-Type: image/png; name=y.png\r\n\r\nPNG\r\n--b--\r\n",
			text:        "body",
			attachments: []string{"x.pdf:application/pdf", "y.png:image/png"},
			warning:     "multipart structure repaired (1 lines)",
		},
		{
			name:        "part without empty line after the delimiter",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nhello there\r\n--b\r\nContent-Type: image/png; name=y.png\r\n\r\nPNG\r\n--b--\r\n",
			text:        "hello there",
			attachments: []string{"y.png:image/png"},
			warning:     "repaired",
		},
		{
			name:        "nested multipart without delimiter lines",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=zz\r\n\r\n--yy\r\n\r\ninner\r\n--yy--\r\n--b\r\nContent-Type: image/png; name=y.png\r\n\r\nPNG\r\n--b--\r\n",
			text:        "--yy\r\n\r\ninner\r\n--yy--",
			attachments: []string{"y.png:image/png"},
			warning:     `part 1: no part found for boundary "zz"`,
		},
		{
			name:        "unterminated nested multipart",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\ninner\r\n--b\r\nContent-Type: image/png; name=y.png\r\n\r\nPNG\r\n--b--\r\n",
			text:        "inner",
			attachments: []string{"y.png:image/png"},
			warning:     `part 1.0: [W] Missing Boundary: Boundary "a" was not closed correctly`,
		},
		{
			name: "unquoted boundary with specials, missing semicolon",
			raw:  "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=----=_Part_1\r\n\r\n------=_Part_1\r\nContent-Type: text/plain charset=koi8-r\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4\r\n------=_Part_1--\r\n",
			text: "Привет",
		},
		{
			name:        "unknown transfer encoding",
			raw:         "From: a@x.com\r\nContent-Type: application/octet-stream; name=a.uue\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n",
			attachments: []string{"a.uue:application/octet-stream"},
			warning:     `part 0: unknown Content-Transfer-Encoding "x-uuencode"`,
		},
		{
			name:        "delimiter lines with mixed line endings",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\n--b\nContent-Type: image/png; name=y.png\n\nPNG\r\n--b--\r\n",
			text:        "body",
			attachments: []string{"y.png:image/png"},
			warning:     "multipart structure repaired",
		},
		{
			name:        "empty attachment named in windows-1251 by RFC 2231",
			raw:         "From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/vnd.ms-excel\r\nContent-Disposition: inline; filename*0*=windows-1251''%D1%EC%E5%F2%E0;\r\n filename*1*=.xls\r\n\r\n--b--\r\n",
			text:        "body",
			attachments: []string{"Смета.xls:application/vnd.ms-excel"},
		},
		{
			name:    "base64 in padded chunks",
			raw:     "From: a@x.com\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\nIHdvcmxk\r\nIQ==\r\n",
			text:    "hello world!",
			warning: "part 0: malformed base64",
		},
		{
			name: "windows-1251 HTML, charset in meta only",
			raw:  "From: a@x.com\r\nContent-Type: text/html\r\n\r\n<meta charset=\"windows-1251\"><p>\xcf\xf0\xe8\xe2\xe5\xf2</p>",
			text: "Привет", html: "<meta charset=\"windows-1251\"><p>Привет</p>",
			warning: "windows-1251 from <meta>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.raw), nil)
			if m.Text != tt.text {
				t.Errorf("Text = %q, want %q", m.Text, tt.text)
			}
			if m.HTML != tt.html {
				t.Errorf("HTML = %q, want %q", m.HTML, tt.html)
			}
			var atts []string
			for _, a := range m.Attachments {
				atts = append(atts, a.Name+":"+a.ContentType)
			}
			if !reflect.DeepEqual(atts, tt.attachments) {
				t.Errorf("attachments = %q, want %q", atts, tt.attachments)
			}
			joined := strings.Join(m.Warnings, "\n")
			if tt.warning == "" && joined != "" || !strings.Contains(joined, tt.warning) {
				t.Errorf("warnings = %q, want one containing %q", m.Warnings, tt.warning)
			}
		})
	}
}

func TestWarningsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 200 {
		b.WriteString("--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-bogus\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	m := mustParse(t, []byte(b.String()), nil)
	if len(m.Warnings) != maxWarnings+1 || !strings.Contains(m.Warnings[maxWarnings], "more warnings omitted") {
		t.Errorf("got %d warnings, last %q", len(m.Warnings), m.Warnings[len(m.Warnings)-1])
	}
	long := mustParse(t, []byte("Date: "+strings.Repeat("x", 5000)+"\r\n\r\nbody"), nil)
	for _, w := range long.Warnings {
		if len(w) > maxWarningBytes+len("…") {
			t.Errorf("warning of %d bytes", len(w))
		}
	}
}
