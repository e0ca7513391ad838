// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"reflect"
	"strings"
	"testing"
)

func TestRepairPartHeaders(t *testing.T) {
	tests := []struct {
		name, in, want string
		changed        int
	}{
		{
			name: "readable headers stay",
			in:   "pre\r\n--b\r\nContent-Type: text/plain\r\n folded\r\n\r\nX: not a header\r\nno colon\r\n--b--\r\n",
			want: "pre\r\n--b\r\nContent-Type: text/plain\r\n folded\r\n\r\nX: not a header\r\nno colon\r\n--b--\r\n",
		},
		{
			name:    "line without colon continues the field",
			in:      "--b\r\nContent-Type: application/pdf;\r\nname=\"x.pdf\"\r\n\r\nbody\r\n--b--",
			want:    "--b\r\nContent-Type: application/pdf;\r\n name=\"x.pdf\"\r\n\r\nbody\r\n--b--",
			changed: 1,
		},
		{
			name:    "invalid field name dropped",
			in:      "--b\nContent-Type: text/plain\nBad Name: x\n\nbody\n--b--\n",
			want:    "--b\nContent-Type: text/plain\n\nbody\n--b--\n",
			changed: 1,
		},
		{
			name:    "no empty line after the delimiter",
			in:      "--b\r\nhello\r\n--b--\r\n",
			want:    "--b\r\n\r\nhello\r\n--b--\r\n",
			changed: 1,
		},
		{
			name:    "delimiters without header or body",
			in:      "--x\r\n--x\r\n--x--",
			want:    "--x\r\n\r\n--x\r\n\r\n--x--",
			changed: 2,
		},
		{
			name:    "nested boundary",
			in:      "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\xd0\x9f: 1\r\n\r\nx\r\n--b--\r\n--a--\r\n",
			want:    "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xd0\x9f: 1\r\n\r\nx\r\n--b--\r\n--a--\r\n",
			changed: 1,
		},
		{
			name:    "delimiters in the style of the first",
			in:      "--a\r\n\r\none\n--a\n\ntwo\r\n--a--\n",
			want:    "--a\r\n\r\none\r\n--a\r\n\ntwo\r\n--a--\r\n",
			changed: 3,
		},
		{
			name:    "LF style",
			in:      "--a\n\none\r\n--a\r\n\ntwo\n--a--\n",
			want:    "--a\n\none\r\n--a\n\ntwo\n--a--\n",
			changed: 1,
		},
		{
			name: "a longer boundary is not a delimiter",
			in:   "--bb\r\nno colon\r\n",
			want: "--bb\r\nno colon\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := repairPartHeaders([]byte(tt.in), []string{"a", "b", "x"})
			if string(got) != tt.want || changed != tt.changed {
				t.Errorf("repairPartHeaders = %q, %d; want %q, %d", got, changed, tt.want, tt.changed)
			}
		})
	}
}

func TestTransferDecode(t *testing.T) {
	longQP := strings.Repeat("y", 5000) // one line, beyond the decoder's buffer
	tests := []struct {
		name, encoding, in, want string
		warning                  string // a substring of the warning; "" for none
	}{
		{"identity", "", "a=b\r\n", "a=b\r\n", ""},
		{"8bit", "8BIT", "Привет", "Привет", ""},
		{"base64", "base64", "aGVs\r\nbG8=\r\n", "hello", ""},
		{"base64 quoted label", `"Base64"`, "aGVsbG8=", "hello", ""},
		{"base64 junk", "base64", "aGVs!*bG8=", "hello", "malformed base64"},
		{"base64 padded chunks", "base64", "aGVsbG8=\r\nIHdvcmxk\r\nIQ==\r\n", "hello world!", "malformed base64"},
		{"base64 cut short", "base64", "aGVsbG8gdw", "hello w", "malformed base64"},
		{"base64 lone last character", "base64", "aGVsbG8gd", "hello ", "malformed base64"},
		{"quoted-printable", "quoted-printable", "caf=C3=A9 =\r\nau lait\r\n", "café au lait\r\n", ""},
		{"qp stray equals", "quoted-printable", "a=b=", "a=b", ""},
		{"qp control byte", "quoted-printable", "a\x01b=C3=A9\x1b$B", "a\x01bé\x1b$B", "malformed quoted-printable"},
		{"qp long line", "quoted-printable", longQP + "=\r\nz", longQP + "z", "malformed quoted-printable"},
		{"qp equals before CR", "quoted-printable", "a=\rb\r\n", "a=\rb\r\n", "malformed quoted-printable"},
		{"unknown", "x-uuencode", "begin 644 f\r\n", "begin 644 f\r\n", "unknown Content-Transfer-Encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.in)
			got, warning := transferDecode(tt.encoding, raw)
			if string(got) != tt.want {
				t.Errorf("content = %.80q, want %.80q", got, tt.want)
			}
			if tt.warning == "" && warning != "" || !strings.Contains(warning, tt.warning) {
				t.Errorf("warning = %q, want one containing %q", warning, tt.warning)
			}
			if len(got) > 0 && len(raw) > 0 && &got[0] == &raw[0] {
				t.Error("content aliases the input")
			}
		})
	}
}

func TestParseMediaType(t *testing.T) {
	tests := []struct {
		in     string
		mt     string
		params map[string]string
	}{
		{"", "", nil},
		{`Text/Plain; Charset="utf-8"`, "text/plain", map[string]string{"charset": "utf-8"}},
		{"multipart/mixed; boundary=----=_Part_1", "multipart/mixed", map[string]string{"boundary": "----=_Part_1"}},
		{"text/plain charset=koi8-r", "text/plain", map[string]string{"charset": "koi8-r"}},
		{`text/html"; charset=utf-8; charset=latin1`, "text/html", map[string]string{"charset": "utf-8"}},
		{`attachment; filename="a; b.pdf"; size=x y`, "attachment", map[string]string{"filename": "a; b.pdf", "size": "x y"}},
		{`attachment; filename="C:\\dir\\a.pdf`, "attachment", map[string]string{"filename": `C:\dir\a.pdf`}},
		{`"text/plain"; charset=utf-8`, "text/plain", map[string]string{"charset": "utf-8"}},
		{"<b>; x=1", "b", map[string]string{"x": "1"}},
		{"; x=1", "", map[string]string{"x": "1"}},
		{"multipart/;boundary=b", "multipart/mixed", map[string]string{"boundary": "b"}},
		{"text/", "text/plain", map[string]string{}},
		{"boundary===alt==", "", map[string]string{"boundary": "==alt=="}},
		{"BoundArY= ==alt==; x=1", "", map[string]string{"boundary": "==alt==", "x": "1"}},
	}
	for _, tt := range tests {
		mt, params := parseMediaType(tt.in)
		if mt != tt.mt || !reflect.DeepEqual(params, tt.params) {
			t.Errorf("parseMediaType(%q) = %q, %q; want %q, %q", tt.in, mt, params, tt.mt, tt.params)
		}
	}
}

// TestPartIDs pins the part numbering that warnings carry.
func TestPartIDs(t *testing.T) {
	raw := msg("--a\r\nContent-Type: text/plain\r\n\r\none\r\n"+
		"--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\n"+
		"--a\r\nContent-Type: image/png\r\n\r\nPNG\r\n--a--\r\n",
		"From: a@x.com", "Content-Type: multipart/mixed; boundary=a")
	h, bodyStart := scanHeader(raw)
	tr, err := readStructure(h, bodyStart, raw)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range tr.parts {
		ids = append(ids, p.id())
	}
	if want := []string{"0", "1", "2.0", "2.1", "2.2", "3"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
}

func TestManyParts(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@x.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 3 * maxParts {
		b.WriteString("--b\r\n\r\n")
	}
	b.WriteString("--b--\r\n")
	m := mustParse(t, []byte(b.String()), nil)
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "the rest dropped") {
		t.Errorf("Warnings = %q", m.Warnings)
	}
}
