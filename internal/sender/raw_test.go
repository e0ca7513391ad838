// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestSendRaw(t *testing.T) {
	t.Parallel()
	srv := newSMTPServer(t, nil)
	mb := srv.mailbox(t, mail.SecureNone)
	raw := "From: \"Jane, Doe\" <jane@example.com>\r\nTo: bob@example.com, Carol <carol@example.com>\r\n" +
		"Cc: bob@example.com\r\nBcc: secret@example.com\r\nSubject: raw\r\nMessage-ID: <raw-1@example.com>\r\n\r\nHello\r\n"
	sent, err := SendRaw(t.Context(), mb, []byte(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages received", len(got))
	}
	d := got[0]
	if d.from != "jane@example.com" || strings.Join(d.rcpts, ",") != "bob@example.com,carol@example.com,secret@example.com" {
		t.Fatalf("envelope %s → %v", d.from, d.rcpts)
	}
	data := string(d.data)
	if strings.Contains(data, "Bcc") || strings.Contains(data, "secret@") || !strings.Contains(data, "Subject: raw\r\n") ||
		!strings.HasSuffix(data, "\r\n\r\nHello\r\n") || string(sent) != data {
		t.Fatalf("transmitted:\n%s", data)
	}

	for _, c := range []struct{ raw, want string }{
		{"Subject: none\r\n\r\nx", "no recipients"},
		{"To: not an address\r\n\r\nx", "not a valid address list"},
		{"From: <>\r\nTo: a@example.com\r\n\r\nx", "From header"},
		{"To: <a b@example.com>\r\n\r\nx", "not a valid address list"},
		{"", "Nothing to send"},
	} {
		_, err := SendRaw(t.Context(), mb, []byte(c.raw), nil)
		if err == nil || !strings.Contains(UserMessage(err), c.want) {
			t.Errorf("%q: %v (%s), want %q", c.raw, err, UserMessage(err), c.want)
		}
	}
	if n := len(srv.messages()); n != 1 {
		t.Fatalf("%d messages after bad input, want 1", n)
	}
}
