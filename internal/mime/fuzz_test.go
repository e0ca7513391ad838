// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"
)

// slowParse is far above the cost of any fuzz input; inputs are small.
const slowParse = 5 * time.Second

// FuzzParse checks that Parse never panics, fails only on empty input, and
// always produces a Message-ID and valid UTF-8 text. Seeds are the golden
// corpus; crashers found so far live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Subject: =?utf-8?B?\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		m, err := Parse(raw, &Options{MaxAttachmentBytes: 64})
		if d := time.Since(start); d > slowParse {
			// Catch pathological inputs (see maxMultiparts) as failures.
			t.Fatalf("Parse took %v for %d bytes", d, len(raw))
		}
		if err != nil {
			if !errors.Is(err, ErrEmpty) {
				t.Fatalf("Parse failed on non-empty input: %v", err)
			}
			return
		}
		if m.MessageID == "" {
			t.Fatal("empty MessageID")
		}
		if m.Size != len(raw) {
			t.Fatalf("Size = %d, want %d", m.Size, len(raw))
		}
		strs := []string{m.MessageID, m.Subject, m.From.Name, m.From.Address, m.Text, m.HTML, m.InReplyTo, m.References}
		strs = append(strs, m.Warnings...)
		for _, h := range m.Headers {
			strs = append(strs, h.Name, h.Value)
		}
		for _, a := range m.Attachments {
			strs = append(strs, a.Name, a.ContentType, a.ContentID)
			if a.Name == "" {
				t.Fatal("attachment without a name")
			}
			if len(a.Data) > 64 {
				t.Fatalf("attachment %q: %d bytes over the limit kept", a.Name, len(a.Data))
			}
		}
		for _, s := range strs {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in output: %q", s)
			}
		}
	})
}
