// SPDX-License-Identifier: Apache-2.0

// Package msgfixture holds the messages and readers that tests of outbound
// mail share: a rich Creatio message (HTML, inline image, PDF, Cyrillic
// text) and helpers that read a built message back with enmime.
package msgfixture

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// PNG is a real 2x2 PNG, the inline image of the test messages.
func PNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// PDF is a small PDF-looking attachment with every byte value in it, so a
// transfer-encoding mistake cannot go unnoticed.
func PDF() []byte {
	b := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for i := range 256 {
		b = append(b, byte(i))
	}
	return append(b, "\n%%EOF\n"...)
}

// Rich is what Creatio sends for an HTML email with an inline image and a
// PDF: HTML referencing cid:<Id>, To/Cc/Bcc, a Message-ID, custom headers.
func Rich(t testing.TB) *mail.Message {
	return &mail.Message{
		MessageID:  "<4b2f1d7e-0c59-4e7c-9a51-3f0d2c1b9e11@example.com>",
		Subject:    "Отчёт за март: итоги ✓",
		From:       mail.Address{Name: "Алиса Иванова", Address: "alice@example.com"},
		To:         []mail.Address{{Name: "Bob", Address: "bob@example.com"}},
		Cc:         []mail.Address{{Address: "carol@example.com"}},
		Bcc:        []mail.Address{{Address: "dave@example.com"}},
		Importance: mail.ImportanceHigh,
		InReplyTo:  "<parent@example.com>",
		References: "<root@example.com> <parent@example.com>",
		Headers: []mail.Header{
			{Name: "X-Creatio-Activity", Value: "b1c2"},
			{Name: "MessageId", Value: "<creatio-internal@example.com>"},
		},
		HTML: `<html><body><p>Здравствуйте, Bob!</p><p>See the chart:</p>` +
			`<img src="cid:chart-7f3a"></body></html>`,
		Attachments: []mail.Attachment{
			{Name: "chart.png", ContentType: "image/png", ContentID: "chart-7f3a", Inline: true, Data: PNG(t)},
			{Name: "Отчёт март.pdf", ContentType: "application/pdf", Data: PDF()},
		},
	}
}

// Parse reads raw back with enmime and fails on any parse error.
func Parse(t testing.TB, raw []byte) *enmime.Envelope {
	t.Helper()
	env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse built message: %v\n%s", err, raw)
	}
	for _, e := range env.Errors {
		t.Errorf("parse error in built message: %v", e)
	}
	return env
}

// Shape renders the MIME tree, e.g. "multipart/mixed[text/plain,application/pdf]".
func Shape(p *enmime.Part) string {
	s := p.ContentType
	if p.FirstChild == nil {
		return s
	}
	var kids []string
	for c := p.FirstChild; c != nil; c = c.NextSibling {
		kids = append(kids, Shape(c))
	}
	return s + "[" + strings.Join(kids, ",") + "]"
}

// HeaderBlock is the top-level header section of raw.
func HeaderBlock(raw []byte) string {
	h, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return string(h) + "\r\n"
}
