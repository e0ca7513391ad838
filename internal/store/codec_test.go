// SPDX-License-Identifier: Apache-2.0

package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func sampleMailbox() *mail.Mailbox {
	return &mail.Mailbox{ID: "id", Kind: mail.ServerIMAP, ServerType: "844f0837", Host: "h", Port: 993, UseSSL: true,
		Secure: mail.SecureStartTLS, UserName: "u", Password: "p", AccessToken: "t", UseOAuth: true,
		FolderIDs: []string{"INBOX", "", "a/b"}, Endpoint: "https://e", User: "Supervisor", Workspace: "Default",
		TimeZone: "UTC", SenderAddress: "s@x", Context: "{}", SubscriptionTTL: -5,
		Features: map[string]bool{"on": true, "off": false, "": true}, Extra: map[string]string{"k": "v", "e": ""},
		Client: mail.ClientNative, WebhookURL: "https://hook", WebhookSecret: "whsec_x",
		OAuth2: &mail.OAuth2{TokenURL: "https://login/token", ClientID: "c", ClientSecret: "cs", RefreshToken: "rt",
			Scopes: []string{"https://mail.google.com/", "offline_access"}}}
}

func TestMailboxCodecRoundTrip(t *testing.T) {
	for _, m := range []*mail.Mailbox{sampleMailbox(), {ID: "empty"}} {
		got, err := decodeMailbox(m.ID, encodeMailbox(m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n%#v, %v\nwant\n%#v", got, err, m)
		}
	}
	if n := len(encodeMailbox(&mail.Mailbox{ID: "x"})); n != 0 {
		t.Errorf("an empty mailbox encodes to %d bytes, want 0", n)
	}
}

// Records written by a newer version (unknown field numbers of every wire
// type) still decode: fields are only ever added.
func TestMailboxCodecSkipsUnknownFields(t *testing.T) {
	m := sampleMailbox()
	e := encoder{b: encodeMailbox(m)}
	e.uint(99, 12345)
	e.str(100, "future")
	e.tag(101, 1)
	e.b = append(e.b, 1, 2, 3, 4, 5, 6, 7, 8)
	e.tag(102, 5)
	e.b = append(e.b, 1, 2, 3, 4)
	got, err := decodeMailbox(m.ID, e.b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("with unknown fields: %#v, %v", got, err)
	}
}

func TestCodecRejectsCorruption(t *testing.T) {
	b := encodeMailbox(sampleMailbox())
	for n := 1; n < len(b); n++ {
		// Every strict prefix either fails or is a shorter valid record; never a panic.
		_, _ = decodeMailbox("id", b[:n])
	}
	bad := [][]byte{
		{0x22, 0x05, 'a'},                    // Host (4) length past the end
		{0x10, 0x80},                         // Kind (2) truncated varint
		{0x00},                               // field number 0
		{0x12, 0x00},                         // Kind (2, a varint) sent length-delimited
		{0x22 &^ 7, 0x01},                    // Host (4, a string) sent as a varint
		{0x0b},                               // wire type 3 (groups) unsupported
		{0x28, 0xff, 0xff, 0xff, 0xff, 0x7f}, // Port (5) beyond int32
	}
	for i, in := range bad {
		if _, err := decodeMailbox("id", in); err == nil {
			t.Errorf("case %d (% x) decoded without error", i, in)
		}
	}
	// Cursor data is the source's business; the store checks its own part,
	// the fence.
	for _, s := range []string{"", "1", ":4", "1:2:3:-4", "1:2:3:x", "1:2:3:18446744073709551616"} {
		if _, err := decodeCursor(s); err == nil {
			t.Errorf("decodeCursor(%q) succeeded", s)
		}
	}
}

func TestStatusCodecRoundTrip(t *testing.T) {
	st := mail.Status{State: "error", ErrorClass: "auth", LastError: "x", Node: "n",
		Since: time.UnixMilli(1764316800123).UTC(), RetryAt: time.UnixMilli(-1).UTC(), Delivered: 1 << 63, Folders: []string{"", "INBOX"}}
	got, err := decodeStatus(encodeStatus(st))
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip: %#v, %v", got, err)
	}
}

func TestCursorCodec(t *testing.T) {
	c := mail.Cursor{Data: "1:2:-5", Fence: 1<<64 - 1}
	s := encodeCursor(c)
	if s != "1:2:-5:18446744073709551615" {
		t.Fatalf("encodeCursor = %q", s)
	}
	if got, err := decodeCursor(s); err != nil || got != c {
		t.Fatalf("decodeCursor = %+v, %v", got, err)
	}
	// What releases before opaque cursors wrote ("uidvalidity:uid:date:fence")
	// reads as the IMAP cursor "uidvalidity:uid:date" with its fence.
	if got, err := decodeCursor("7:42:1764316800:3"); err != nil || got != (mail.Cursor{Data: "7:42:1764316800", Fence: 3}) {
		t.Fatalf("legacy cursor = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "12", ":3", "7:42:x"} {
		if _, err := decodeCursor(bad); err == nil {
			t.Errorf("decodeCursor(%q) accepted", bad)
		}
	}
}

func FuzzDecodeMailbox(f *testing.F) {
	f.Add(encodeMailbox(sampleMailbox()))
	f.Add([]byte{})
	f.Add(encodeStatus(mail.Status{State: "exists", Folders: []string{"INBOX"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMailbox("id", b); err == nil {
			again, err := decodeMailbox("id", encodeMailbox(m))
			if err != nil || !reflect.DeepEqual(normMailbox(again), normMailbox(m)) {
				t.Fatalf("re-encoding changed the mailbox: %#v vs %#v (%v)", again, m, err)
			}
		}
		if st, err := decodeStatus(b); err == nil {
			again, err := decodeStatus(encodeStatus(st))
			if err != nil || !reflect.DeepEqual(again, normStatus(st)) {
				t.Fatalf("re-encoding changed the status: %#v vs %#v (%v)", again, st, err)
			}
		}
	})
}

// normMailbox maps a decoded mailbox to what encoding it again yields: empty
// maps (entries all defaulted) stay, so only nil-vs-empty is normalised.
func normMailbox(m *mail.Mailbox) *mail.Mailbox { return cloneMailbox(m) }
