// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// benchMessage builds a ~34 KB message: a text and an HTML body and a 16 KiB
// base64 attachment.
func benchMessage() []byte {
	return benchMessageWith(16 << 10)
}

// benchMessageWith builds the benchMessage shape with an attachment of
// attachmentBytes (before base64).
func benchMessageWith(attachmentBytes int) []byte {
	var b bytes.Buffer
	b.WriteString("From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@example.ru>\r\n" +
		"To: a@example.com, \"B, C\" <b@example.com>\r\nCc: c@example.com\r\n" +
		"Subject: =?utf-8?B?0JrQstCw0YDRgtCw0LvRjNC90YvQuSDQvtGC0YfRkdGC?=\r\n" +
		"Date: Tue, 5 Mar 2024 10:15:00 +0300\r\nMessage-ID: <bench@example.ru>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n" +
		"--mixed\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	line := "Добрый день! Направляю квартальный отчёт, прошу ознакомиться до пятницы.\r\n"
	b.WriteString(strings.Repeat(line, 40))
	b.WriteString("\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><body>")
	b.WriteString(strings.Repeat("<p>"+strings.TrimSpace(line)+"</p>\r\n", 40))
	b.WriteString("</body></html>\r\n--alt--\r\n")
	data := make([]byte, attachmentBytes)
	for i := range data {
		data[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	b.WriteString("--mixed\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n" +
		"Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; i < len(enc); i += 76 {
		fmt.Fprintf(&b, "%s\r\n", enc[i:min(i+76, len(enc))])
	}
	b.WriteString("--mixed--\r\n")
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	raw := benchMessage()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := Parse(raw, nil)
		if err != nil || len(m.Attachments) != 1 {
			b.Fatalf("Parse: %v, %d attachments", err, len(m.Attachments))
		}
	}
}

// BenchmarkParseLarge parses a ~1 MB message, most of it one base64
// attachment: the cost of transfer decoding and boundary scanning.
func BenchmarkParseLarge(b *testing.B) {
	raw := benchMessageWith(750 << 10)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := Parse(raw, nil)
		if err != nil || len(m.Attachments) != 1 || len(m.Attachments[0].Data) != 750<<10 {
			b.Fatalf("Parse: %v, %d attachments", err, len(m.Attachments))
		}
	}
}
