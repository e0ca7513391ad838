// SPDX-License-Identifier: Apache-2.0

package mime_test

import (
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
)

// BenchmarkParseAndEncode is the service's per-email CPU path short of the
// network: raw message → mail.Message → Creatio Email → ProcessFullEmail JSON
// body (attachment re-encoded to base64).
func BenchmarkParseAndEncode(b *testing.B) { benchParseAndEncode(b, mime.BenchMessage()) }

// BenchmarkParseAndEncodeLarge is BenchmarkParseAndEncode for a ~1 MB message
// (750 KiB attachment): B/op over the message size is the memory a large
// message takes in flight.
func BenchmarkParseAndEncodeLarge(b *testing.B) {
	benchParseAndEncode(b, mime.BenchMessageWith(750<<10))
}

func benchParseAndEncode(b *testing.B, raw []byte) {
	mb := &mail.Mailbox{ID: "6f1e0c8e-1111-4a4a-9b9b-000000000001", User: "Supervisor", Workspace: "Default"}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := mime.Parse(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		body, err := creatio.Marshal(creatio.NewLoadEmailCommand(mb, []creatio.Email{creatio.NewEmail(m)}, now))
		if err != nil || len(body) < len(raw)/2 {
			b.Fatalf("Marshal: %v, %d bytes", err, len(body))
		}
	}
}
