// SPDX-License-Identifier: Apache-2.0

package compose

import (
	"bytes"
	"errors"
	stdmime "mime"
	netmail "net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv/msgfixture"
)

var buildNow = time.Date(2025, 3, 14, 9, 26, 53, 0, time.FixedZone("MSK", 3*3600))

func TestBuildRichMessage(t *testing.T) {
	msg := msgfixture.Rich(t)
	raw, err := Build(msg, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	env := msgfixture.Parse(t, raw)

	if got, want := msgfixture.Shape(env.Root), "multipart/mixed[multipart/related[multipart/alternative[text/plain,text/html],image/png],application/pdf]"; got != want {
		t.Fatalf("MIME structure\n got %s\nwant %s", got, want)
	}
	for name, want := range map[string]string{
		"Message-Id":         "<4b2f1d7e-0c59-4e7c-9a51-3f0d2c1b9e11@example.com>",
		"Subject":            "Отчёт за март: итоги ✓",
		"From":               "Алиса Иванова <alice@example.com>",
		"To":                 `"Bob" <bob@example.com>`,
		"Cc":                 "<carol@example.com>",
		"Date":               "Fri, 14 Mar 2025 09:26:53 +0300",
		"In-Reply-To":        "<parent@example.com>",
		"References":         "<root@example.com> <parent@example.com>",
		"Importance":         "high",
		"X-Priority":         "1 (Highest)",
		"Mime-Version":       "1.0",
		"X-Creatio-Activity": "b1c2",
	} {
		if got := env.GetHeader(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	head := msgfixture.HeaderBlock(raw)
	// Bcc must not leak; Creatio's internal MessageId is not a MIME header; the
	// header section itself is 7-bit (RFC 2047 words for the non-ASCII parts).
	for _, bad := range []string{"\r\nBcc:", "dave@example.com", "\r\nMessageid:", "creatio-internal"} {
		if strings.Contains(head, bad) {
			t.Errorf("header section contains %q:\n%s", bad, head)
		}
	}
	for i := 0; i < len(head); i++ {
		if head[i] >= 0x80 {
			t.Fatalf("non-ASCII byte in the header section:\n%s", head)
		}
	}
	if !strings.Contains(head, "Subject: =?utf-8?") {
		t.Errorf("Subject is not RFC 2047-encoded:\n%s", head)
	}

	if !strings.Contains(env.HTML, `src="cid:chart-7f3a"`) || !strings.Contains(env.HTML, "Здравствуйте") {
		t.Errorf("HTML = %q", env.HTML)
	}
	if !strings.Contains(env.Text, "Здравствуйте, Bob!") {
		t.Errorf("derived text alternative = %q", env.Text)
	}
	if len(env.Inlines) != 1 {
		t.Fatalf("%d inline parts, want 1", len(env.Inlines))
	}
	img := env.Inlines[0]
	if img.ContentID != "chart-7f3a" || img.Header.Get("Content-Id") != "<chart-7f3a>" ||
		img.Disposition != "inline" || !bytes.Equal(img.Content, msg.Attachments[0].Data) {
		t.Errorf("inline part: cid %q (%q), disposition %q, %d bytes", img.ContentID,
			img.Header.Get("Content-Id"), img.Disposition, len(img.Content))
	}
	if img.Parent == nil || img.Parent.ContentType != "multipart/related" ||
		!strings.Contains(img.Parent.Header.Get("Content-Type"), `type="multipart/alternative"`) {
		t.Errorf("inline part is not in multipart/related; type=multipart/alternative")
	}
	if len(env.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(env.Attachments))
	}
	pdf := env.Attachments[0]
	if pdf.FileName != "Отчёт март.pdf" || pdf.ContentType != "application/pdf" || !bytes.Equal(pdf.Content, msgfixture.PDF()) {
		t.Errorf("attachment %q %s, %d bytes", pdf.FileName, pdf.ContentType, len(pdf.Content))
	}
	if !strings.Contains(string(raw), "filename*=utf-8''") {
		t.Error("non-ASCII file name is not RFC 2231-encoded")
	}
	checkWireFormat(t, raw)
}

// checkWireFormat: CRLF line ends only, no line over 998 octets (RFC 5322 §2.1.1).
func checkWireFormat(t *testing.T, raw []byte) {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
	}
}

func TestBuildTextOnly(t *testing.T) {
	msg := &mail.Message{
		MessageID: "bare-id@example.com",
		Subject:   "plain",
		From:      mail.Address{Address: "alice@example.com"},
		To:        []mail.Address{{Address: "bob@example.com"}},
		Text:      "Строка 1\nline 2 with a very long tail " + strings.Repeat("x", 200) + "\n",
		// Inline without an HTML body has nothing to be referenced from: attached.
		Attachments: []mail.Attachment{{Name: "a.png", ContentID: "a1", Inline: true, Data: msgfixture.PNG(t)}},
	}
	raw, err := Build(msg, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	env := msgfixture.Parse(t, raw)
	if got := msgfixture.Shape(env.Root); got != "multipart/mixed[text/plain,image/png]" {
		t.Fatalf("structure %s", got)
	}
	if got := env.GetHeader("Message-Id"); got != "<bare-id@example.com>" {
		t.Errorf("Message-ID = %q, want angle brackets added", got)
	}
	if want := strings.ReplaceAll(msg.Text, "\n", "\r\n"); env.Text != msg.Text && env.Text != want {
		t.Errorf("text = %q", env.Text)
	}
	if env.HTML != "" || len(env.Inlines) != 0 || len(env.Attachments) != 1 {
		t.Errorf("html %q, %d inlines, %d attachments", env.HTML, len(env.Inlines), len(env.Attachments))
	}
	if env.GetHeader("Importance") != "" || env.GetHeader("X-Priority") != "" {
		t.Error("ImportanceNone wrote priority headers")
	}
	if !strings.Contains(string(raw), "Content-Transfer-Encoding: quoted-printable") {
		t.Error("text is not quoted-printable")
	}
	checkWireFormat(t, raw)

	// A message with nothing but text is a single part.
	raw, err = Build(&mail.Message{From: mail.Address{Address: "a@example.com"}, Text: "hi"}, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgfixture.Shape(msgfixture.Parse(t, raw).Root); got != "text/plain" {
		t.Errorf("text-only structure %s", got)
	}
}

func TestBuildGeneratesMessageID(t *testing.T) {
	uuidID := regexp.MustCompile(`^<[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}@(.+)>$`)
	for from, domain := range map[string]string{"alice@example.com": "example.com", "": fallbackIDDomain, "nodomain": fallbackIDDomain} {
		raw, err := Build(&mail.Message{From: mail.Address{Address: from}, Text: "x"}, buildNow)
		if err != nil {
			t.Fatal(err)
		}
		id := msgfixture.Parse(t, raw).GetHeader("Message-Id")
		if m := uuidID.FindStringSubmatch(id); m == nil || m[1] != domain {
			t.Errorf("from %q: generated Message-ID %q, want <uuid@%s>", from, id, domain)
		}
	}
}

func TestBuildImportance(t *testing.T) {
	cases := map[mail.Importance][2]string{
		mail.ImportanceNone:   {"", ""},
		mail.ImportanceNormal: {"normal", "3 (Normal)"},
		mail.ImportanceHigh:   {"high", "1 (Highest)"},
		mail.ImportanceLow:    {"low", "5 (Lowest)"},
	}
	for imp, want := range cases {
		raw, err := Build(&mail.Message{From: mail.Address{Address: "a@example.com"}, Importance: imp}, buildNow)
		if err != nil {
			t.Fatal(err)
		}
		env := msgfixture.Parse(t, raw)
		if got := [2]string{env.GetHeader("Importance"), env.GetHeader("X-Priority")}; got != want {
			t.Errorf("importance %d: headers %q, want %q", imp, got, want)
		}
	}
}

func TestBuildHeaderInjection(t *testing.T) {
	msg := &mail.Message{
		MessageID: "<id@example.com>\r\nBcc: evil1@attacker.test",
		Subject:   "hello\r\nBcc: evil2@attacker.test",
		From:      mail.Address{Name: "A\r\nBcc: evil3@attacker.test", Address: "alice@example.com"},
		To:        []mail.Address{{Address: "bob@example.com"}},
		InReplyTo: "<p@example.com>\nBcc: evil4@attacker.test",
		Headers: []mail.Header{
			{Name: "X-Note", Value: "ok\r\n\r\nbody injected\r\nBcc: evil5@attacker.test"},
			{Name: "Bcc", Value: "evil6@attacker.test"},
			{Name: "Subject", Value: "override"},
			{Name: "Content-Type", Value: "text/html"},
		},
		Text: "real body",
	}
	raw, err := Build(msg, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	env := msgfixture.Parse(t, raw)
	head := msgfixture.HeaderBlock(raw)
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "bcc:") {
			t.Errorf("injected header line %q", line)
		}
	}
	if got := env.GetHeader("Subject"); got != "hello Bcc: evil2@attacker.test" {
		t.Errorf("Subject = %q", got)
	}
	if got := env.GetHeader("X-Note"); got != "ok body injected Bcc: evil5@attacker.test" {
		t.Errorf("X-Note = %q", got)
	}
	if env.Text != "real body" {
		t.Errorf("body = %q", env.Text)
	}
	if n := strings.Count(head, "\r\nSubject:"); n != 1 {
		t.Errorf("%d Subject fields", n)
	}

	for _, name := range []string{"X Bad", "X:Bad", "", "Х-Кириллица", "X\x00"} {
		_, err := Build(&mail.Message{Headers: []mail.Header{{Name: name, Value: "v"}}}, buildNow)
		if !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("header name %q: err = %v, want ErrInvalidHeader", name, err)
		}
	}
}

// FuzzBuild checks that no subject or header value, however hostile, adds a
// header field or breaks the message.
func FuzzBuild(f *testing.F) {
	f.Add("hello", "X-Note", "value", "name")
	f.Add("a\r\nBcc: x@y", "X-A", "b\nTo: z@y", "N\r\n")
	f.Add("Привет\r\n\r\nbody", "X-Ünï", "\x00\x7f", "\"quoted\" <x>")
	f.Fuzz(func(t *testing.T, subject, hname, hvalue, name string) {
		msg := &mail.Message{
			Subject: subject,
			From:    mail.Address{Name: name, Address: "alice@example.com"},
			To:      []mail.Address{{Address: "bob@example.com"}},
			Headers: []mail.Header{{Name: hname, Value: hvalue}},
			Text:    "body",
		}
		raw, err := Build(msg, buildNow)
		if errors.Is(err, ErrInvalidHeader) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		head := msgfixture.HeaderBlock(raw)
		allowed := map[string]bool{"date": true, "from": true, "to": true, "subject": true, "message-id": true,
			"mime-version": true, "content-type": true, "content-transfer-encoding": true,
			strings.ToLower(strings.TrimSpace(hname)): true}
		for _, line := range strings.Split(strings.TrimSuffix(head, "\r\n"), "\r\n") {
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue // folded continuation
			}
			key, _, ok := strings.Cut(line, ":")
			if !ok || !allowed[strings.ToLower(key)] {
				t.Fatalf("unexpected header line %q in\n%s", line, head)
			}
		}
		checkWireFormat(t, raw)
	})
}

func TestBuildCustomHeaders(t *testing.T) {
	base := func() *mail.Message {
		return &mail.Message{
			From: mail.Address{Address: "alice@example.com"},
			Headers: []mail.Header{
				{Name: "Reply-To", Value: "team@example.com"},
				{Name: "Auto-Submitted", Value: "auto-replied"},
				{Name: "In-Reply-To", Value: "<from-header@example.com>"},
				{Name: "X-Mailer-Note", Value: "Grüße"},
			},
		}
	}
	env := msgfixture.Parse(t, must(Build(base(), buildNow)))
	for name, want := range map[string]string{
		"Reply-To": "team@example.com", "Auto-Submitted": "auto-replied",
		"In-Reply-To": "<from-header@example.com>", "X-Mailer-Note": "Grüße",
	} {
		if got := env.GetHeader(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	// The message's own fields win over the same names in Headers.
	msg := base()
	msg.ReplyTo = []mail.Address{{Address: "owner@example.com"}}
	msg.InReplyTo = "<field@example.com>"
	raw := must(Build(msg, buildNow))
	env = msgfixture.Parse(t, raw)
	if got := env.GetHeaderValues("Reply-To"); len(got) != 1 || got[0] != "<owner@example.com>" {
		t.Errorf("Reply-To = %q", got)
	}
	if got := env.GetHeaderValues("In-Reply-To"); len(got) != 1 || got[0] != "<field@example.com>" {
		t.Errorf("In-Reply-To = %q", got)
	}
}

func must(raw []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return raw
}

// A word longer than a header line cannot be folded: it goes out as
// encoded-words that a reader joins back into the same text.
func TestBuildUnfoldableWord(t *testing.T) {
	long := strings.Repeat("C", 1500)
	subject := "Отчёт " + strings.Repeat("Ж", 600)
	msg := &mail.Message{
		Subject: subject,
		From:    mail.Address{Address: "alice@example.com"},
		To:      []mail.Address{{Address: "bob@example.com"}},
		Headers: []mail.Header{{Name: "X-Long", Value: long}},
		Text:    "body",
	}
	raw, err := Build(msg, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	checkWireFormat(t, raw)
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var dec stdmime.WordDecoder
	for name, want := range map[string]string{"X-Long": long, "Subject": subject} {
		got, err := dec.DecodeHeader(m.Header.Get(name))
		if err != nil || got != want {
			t.Errorf("%s: decoded %d bytes (%v), want the %d bytes sent", name, len(got), err, len(want))
		}
	}
	// Structured fields cannot be encoded: an overlong Message-ID is replaced,
	// overlong references are left out.
	huge := "<" + strings.Repeat("i", 1200) + "@example.com>"
	raw, err = Build(&mail.Message{From: msg.From, To: msg.To, MessageID: huge, InReplyTo: huge,
		References: "<a@example.com> " + huge + " <b@example.com>", Text: "x"}, buildNow)
	if err != nil {
		t.Fatal(err)
	}
	checkWireFormat(t, raw)
	m, err = netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get("Message-Id"); len(id) > 200 || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID %.80q…, want a fresh one", id)
	}
	if got := m.Header.Get("References"); got != "<a@example.com> <b@example.com>" {
		t.Errorf("References = %.80q, want the two short ids", got)
	}
	if _, err := Build(&mail.Message{From: msg.From, Headers: []mail.Header{{Name: strings.Repeat("X", 77), Value: "v"}}}, buildNow); !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("a 77-character field name: %v, want ErrInvalidHeader", err)
	}
}
