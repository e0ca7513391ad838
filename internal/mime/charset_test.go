// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/text/encoding/htmlindex"
)

// TestCharsets round-trips a sample through every charset the service must
// support: encoded with x/text, wrapped in an RFC 2047 subject and a base64
// body, and parsed back.
func TestCharsets(t *testing.T) {
	tests := []struct {
		label, sample string
	}{
		{"UTF-8", "Ünïcödé ✓ Привет 你好"},
		{"windows-1251", "Привет, мир! Счёт №5"},
		{"KOI8-R", "Ёлки-палки, привет"},
		{"ISO-8859-1", "Café déjà vu, ¡olé!"},
		{"ISO-8859-2", "Zażółć gęślą jaźń"},
		{"ISO-8859-5", "Добрый вечер"},
		{"ISO-8859-15", "Prix : 10 € - œuvre, Ÿ"},
		{"GB2312", "你好，世界"},
		{"GBK", "你好，世界，镕"},
		{"GB18030", "你好，世界"},
		{"Big5", "妳好，世界"},
		{"Shift_JIS", "こんにちは世界"},
		{"ISO-2022-JP", "こんにちは世界"},
		{"EUC-KR", "안녕하세요 세계"},
		{"windows-1252", "“Smart quotes” – €5"},
		{"cp1251", "Привет"},        // a common non-WHATWG spelling
		{"win-1251", "Привет"},      // ditto
		{"ks_c_5601-1987", "안녕하세요"}, // Outlook's name for Korean
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			enc, err := htmlindex.Get(tt.label)
			if err != nil {
				enc, _ = lookupCharset(tt.label)
			}
			if enc == nil {
				t.Fatalf("no encoder for %s", tt.label)
			}
			encoded, err := enc.NewEncoder().Bytes([]byte(tt.sample))
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			b64 := base64.StdEncoding.EncodeToString(encoded)
			raw := fmt.Sprintf("From: x@example.com\r\nSubject: =?%s?B?%s?=\r\n"+
				"Content-Type: text/plain; charset=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
				tt.label, b64, tt.label, b64)
			m, err := Parse([]byte(raw), nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.sample {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.sample)
			}
			if m.Text != tt.sample {
				t.Errorf("Text = %q, want %q", m.Text, tt.sample)
			}
			if len(m.Warnings) != 0 {
				t.Errorf("Warnings = %q", m.Warnings)
			}
		})
	}
}

func TestDecodeTextFallbacks(t *testing.T) {
	cp1251 := func(s string) []byte {
		enc, _ := htmlindex.Get("windows-1251")
		b, _ := enc.NewEncoder().Bytes([]byte(s))
		return b
	}
	long := strings.Repeat("Просим рассмотреть проект договора и сообщить о замечаниях. ", 3)
	tests := []struct {
		name     string
		in       []byte
		label    string
		html     bool
		want     string
		wantWarn bool
	}{
		{"ascii", []byte("hello"), "", false, "hello", false},
		{"utf8 labelled ascii", []byte("Привет"), "us-ascii", false, "Привет", false},
		{"utf8 labelled cp1251", []byte("Привет мир"), "windows-1251", false, "Привет мир", true},
		{"cp1251 labelled utf8", cp1251(long), "utf-8", false, long, true},
		{"cp1251 unknown label", cp1251(long), "unknown-8bit", false, long, true},
		{"utf8 unknown label", []byte("Привет"), "x-garbage", false, "Привет", true},
		{"damaged utf8", []byte("Привет\xff мир"), "utf-8", false, "Привет\uFFFD мир", true},
		{"utf-7", []byte("+BB8EQAQ4BDIENQRC- +BDwEOARA-, ok"), "UTF-7", false, "Привет мир, ok", false},
		{"quoted label", []byte("caf\xe9"), `"iso-8859-1"`, false, "café", false},
		{"html meta", append([]byte(`<meta charset="windows-1251">`), cp1251("Привет")...), "", true, `<meta charset="windows-1251">Привет`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warn := decodeText(tt.in, tt.label, tt.html)
			if got != tt.want {
				t.Errorf("decodeText = %q, want %q", got, tt.want)
			}
			if (warn != "") != tt.wantWarn {
				t.Errorf("warning = %q, want warning: %v", warn, tt.wantWarn)
			}
		})
	}
}
