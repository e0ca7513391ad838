// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

const (
	appendUser = "alice@example.com"
	appendPW   = "alicepw"
)

var sentMessage = []byte("From: alice@example.com\r\nTo: bob@example.com\r\nSubject: sent copy\r\n" +
	"Message-ID: <sent-copy@example.com>\r\n\r\nhello\r\n")

func TestSentFolder(t *testing.T) {
	sel := func(name string, attrs ...string) mail.Folder {
		return mail.Folder{Name: name, Delim: '/', Selectable: true, Attrs: attrs}
	}
	cases := []struct {
		name    string
		folders []mail.Folder
		want    string
	}{
		{"special-use wins over the name", []mail.Folder{sel("INBOX"), sel("Sent"), sel("Gesendet", `\Sent`)}, "Gesendet"},
		{"attribute case-insensitive", []mail.Folder{sel("Outbox2", `\sent`)}, "Outbox2"},
		{"non-selectable \\Sent is skipped", []mail.Folder{{Name: "[Gmail]", Attrs: []string{`\Sent`, `\Noselect`}}, sel("Sent Items")}, "Sent Items"},
		{"name preference", []mail.Folder{sel("Sent Messages"), sel("Sent")}, "Sent"},
		{"name case-insensitive", []mail.Folder{sel("SENT ITEMS")}, "SENT ITEMS"},
		{"dotted inbox child", []mail.Folder{{Name: "INBOX.Sent", Delim: '.', Selectable: true}}, "INBOX.Sent"},
		{"russian", []mail.Folder{sel("INBOX"), sel("Отправленные")}, "Отправленные"},
		{"leaf below a prefix", []mail.Folder{sel("Mail/Sent Items")}, "Mail/Sent Items"},
		{"none", []mail.Folder{sel("INBOX"), sel("Drafts", `\Drafts`), sel("Sentimental")}, ""},
	}
	for _, c := range cases {
		if got := sentFolder(c.folders); got != c.want {
			t.Errorf("%s: sentFolder = %q, want %q", c.name, got, c.want)
		}
	}
}

func dialDovecot(t *testing.T, d *testenv.Dovecot) *Conn {
	t.Helper()
	mb := &mail.Mailbox{Host: d.IMAPAddr, Secure: mail.SecureNone, UserName: appendUser, Password: appendPW}
	c, err := Dial(t.Context(), mb, &Options{DialTimeout: 10 * time.Second, CommandTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkSent asserts that folder holds exactly raw, flagged \Seen.
func checkSent(t *testing.T, d *testenv.Dovecot, folder string, raw []byte) {
	t.Helper()
	c, err := d.Client(appendUser, appendPW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch %s: %d messages, %v", folder, len(msgs), err)
	}
	if got := msgs[0].FindBodySection(section); !bytes.Equal(got, raw) {
		t.Fatalf("%s holds %q, want %q", folder, got, raw)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("flags %v, want \\Seen", msgs[0].Flags)
	}
}

func TestAppendSentSpecialUse(t *testing.T) {
	t.Parallel()
	// "Gesendet" carries \Sent; "Sent Items" only has a usual name.
	d := testenv.NewT(t, testenv.DovecotOptions{
		Users:     map[string]string{appendUser: appendPW},
		ExtraConf: "namespace inbox {\n  mailbox Gesendet {\n    special_use = \\Sent\n  }\n}\n",
	})
	for _, f := range []string{"Sent Items", "Gesendet"} {
		if err := d.CreateFolder(appendUser, appendPW, f); err != nil {
			t.Fatal(err)
		}
	}
	c := dialDovecot(t, d)
	folder, err := c.AppendSent(t.Context(), sentMessage)
	if err != nil {
		t.Fatal(err)
	}
	if folder != "Gesendet" {
		t.Fatalf("AppendSent chose %q, want the \\Sent folder Gesendet", folder)
	}
	checkSent(t, d, folder, sentMessage)
}

func TestAppendSentByName(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	// No folder has \Sent (the config's Sent does not exist); the Russian name does.
	if err := d.CreateFolder(appendUser, appendPW, "Отправленные"); err != nil {
		t.Fatal(err)
	}
	c := dialDovecot(t, d)
	folder, err := c.AppendSent(t.Context(), sentMessage)
	if err != nil {
		t.Fatal(err)
	}
	if folder != "Отправленные" {
		t.Fatalf("AppendSent chose %q, want Отправленные", folder)
	}
	checkSent(t, d, folder, sentMessage)
}

func TestAppendSentNoFolder(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	c := dialDovecot(t, d)
	if _, err := c.AppendSent(t.Context(), sentMessage); mail.ClassOf(err) != mail.ClassConfig {
		t.Fatalf("AppendSent without a Sent folder: %v, want a config error", err)
	}

	// A cancelled context aborts instead of appending.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.AppendSent(ctx, sentMessage); err == nil {
		t.Fatal("AppendSent with a cancelled context succeeded")
	}
}
