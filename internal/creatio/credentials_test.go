// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestMailboxFromCreateBody(t *testing.T) {
	list, err := DecodeCredentialsList([]byte(createBody))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := list[0].Mailbox()
	if err != nil {
		t.Fatal(err)
	}
	want := &mail.Mailbox{
		ID:            "1111aaaa-2222-4bbb-8ccc-333333dddddd",
		Kind:          mail.ServerIMAP,
		ServerType:    ServerTypeIMAP,
		Host:          "imap.example.com",
		Port:          993,
		UseSSL:        true,
		Secure:        mail.SecureSSL,
		UserName:      "john.doe@example.com",
		Password:      `p"a:s{s}\w,o'rd`,
		AccessToken:   list[0].AccessToken,
		FolderIDs:     []string{"INBOX", "Sent Items", "Archive/2025/Customers", `Projects/Creatio "EL" migration`},
		Endpoint:      "https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",
		User:          "Supervisor",
		Workspace:     "Default",
		TimeZone:      "Russian Standard Time",
		SenderAddress: "john.doe@example.com",
		Context:       "{UserRequested:true,HasError:false}",
		Features:      map[string]bool{"MarkEmailsAsSynchronized": true, "UseBinaryData": false},
		Extra:         map[string]string{ExtraServiceURL: "imap.example.com", ExtraUseFullEmail: "true"},
	}
	if !reflect.DeepEqual(mb, want) {
		t.Fatalf("Mailbox()\n got %+v\nwant %+v", *mb, *want)
	}
}

func TestMailbox(t *testing.T) {
	sec := func(n FlexInt) *FlexInt { return &n }
	base := func() SynchronizationCredentials {
		return SynchronizationCredentials{ID: "1111aaaa-2222-4bbb-8ccc-333333dddddd", ServerTypeID: ServerTypeIMAP}
	}
	tests := []struct {
		name  string
		edit  func(*SynchronizationCredentials)
		check func(*mail.Mailbox) string // "" when fine
	}{
		{"id upper-case guid", func(c *SynchronizationCredentials) { c.ID = " 1111AAAA-2222-4BBB-8CCC-333333DDDDDD " },
			want("ID", mail.MailboxID("1111aaaa-2222-4bbb-8ccc-333333dddddd"))},
		{"id not a guid kept", func(c *SynchronizationCredentials) { c.ID = " Mailbox-One " },
			want("ID", mail.MailboxID("Mailbox-One"))},
		{"exchange", func(c *SynchronizationCredentials) {
			c.ServerTypeID, c.ServiceURL = "3490BD45-4F4D-4613-AA06-454546F3342A", "https://ex.example.com/EWS/Exchange.asmx"
		}, all(want("Kind", mail.ServerExchange), want("Host", "https://ex.example.com/EWS/Exchange.asmx"),
			want("ServerType", ServerTypeExchange), want("Port", 0))},
		{"empty type is imap", func(c *SynchronizationCredentials) { c.ServerTypeID, c.ServiceURL = "", "imap.example.com" },
			all(want("Kind", mail.ServerIMAP), want("ServerType", ""))},
		{"empty type with http url is exchange", func(c *SynchronizationCredentials) {
			c.ServerTypeID, c.ServiceURL = "", "HTTPS://ex/EWS/Exchange.asmx"
		}, want("Kind", mail.ServerExchange)},
		{"empty type with autodiscover is exchange", func(c *SynchronizationCredentials) {
			c.ServerTypeID, c.IsAutodiscover, c.AutodiscoverRedirectURL = "", true, ".*"
		}, all(want("Kind", mail.ServerExchange),
			want("Extra", map[string]string{ExtraIsAutodiscover: "true", ExtraAutodiscoverRedirectURL: ".*"}))},
		{"host:port", func(c *SynchronizationCredentials) { c.ServiceURL = "imap.example.com:993" },
			all(want("Host", "imap.example.com"), want("Port", 993))},
		{"port field wins", func(c *SynchronizationCredentials) { c.ServiceURL, c.Port = "imap.example.com:993", 143 },
			all(want("Host", "imap.example.com"), want("Port", 143))},
		{"imaps url", func(c *SynchronizationCredentials) { c.ServiceURL = " imaps://imap.example.com:994/ " },
			all(want("Host", "imap.example.com"), want("Port", 994),
				want("Extra", map[string]string{ExtraServiceURL: "imaps://imap.example.com:994/"}))},
		{"url without port", func(c *SynchronizationCredentials) { c.ServiceURL, c.Port = "imap://imap.example.com", 0 },
			all(want("Host", "imap.example.com"), want("Port", 0))},
		{"ipv6 with port", func(c *SynchronizationCredentials) { c.ServiceURL = "[2001:db8::1]:993" },
			all(want("Host", "2001:db8::1"), want("Port", 993))},
		{"bare ipv6", func(c *SynchronizationCredentials) { c.ServiceURL = "2001:db8::1" }, want("Host", "2001:db8::1")},
		{"trailing slash", func(c *SynchronizationCredentials) { c.ServiceURL = "imap.example.com/" }, want("Host", "imap.example.com")},
		{"no host", func(c *SynchronizationCredentials) {}, all(want("Host", ""), want("Port", 0), want("Extra", map[string]string(nil)))},
		{"secure absent is auto", func(c *SynchronizationCredentials) {}, want("Secure", mail.SecureAuto)},
		{"secure none", func(c *SynchronizationCredentials) { c.SecureOption = sec(0) }, want("Secure", mail.SecureNone)},
		{"secure starttls", func(c *SynchronizationCredentials) { c.SecureOption = sec(3) }, want("Secure", mail.SecureStartTLS)},
		{"secure out of range", func(c *SynchronizationCredentials) { c.SecureOption = sec(7) }, want("Secure", mail.SecureAuto)},
		{"secure negative", func(c *SynchronizationCredentials) { c.SecureOption = sec(-1) }, want("Secure", mail.SecureAuto)},
		{"folders cleaned", func(c *SynchronizationCredentials) { c.FolderIDs = []string{"", "inbox", " ", "A", "INBOX", "A", "a"} },
			want("FolderIDs", []string{"INBOX", "A", "a"})},
		{"no folders", func(c *SynchronizationCredentials) { c.FolderIDs = []string{} }, want("FolderIDs", []string(nil))},
		{"exchange folders not case-folded", func(c *SynchronizationCredentials) {
			c.ServerTypeID, c.FolderIDs = ServerTypeExchange, []string{"inbox", "INBOX"}
		}, want("FolderIDs", []string{"inbox", "INBOX"})},
		{"secrets kept", func(c *SynchronizationCredentials) {
			c.Password, c.AccessToken, c.UseOAuth = " pw ", "tok", true
		}, all(want("Password", " pw "), want("AccessToken", "tok"), want("UseOAuth", true))},
		{"identity", func(c *SynchronizationCredentials) {
			c.BpmUser, c.BpmUserWorkspace, c.BpmUserTimeZone, c.SenderEmailAddress, c.Context, c.BpmEndpoint, c.SubscriptionTTL =
				"Supervisor", "Default", "UTC", " a@b.c ", "{UserRequested:false}", " https://crm/x ", 10
		}, all(want("User", "Supervisor"), want("Workspace", "Default"), want("TimeZone", "UTC"),
			want("SenderAddress", "a@b.c"), want("Context", "{UserRequested:false}"), want("Endpoint", "https://crm/x"),
			want("SubscriptionTTL", 10))},
		{"features", func(c *SynchronizationCredentials) { c.FeatureValues = map[string]FlexBool{"X": true} },
			want("Features", map[string]bool{"X": true})},
		{"no features", func(c *SynchronizationCredentials) { c.FeatureValues = map[string]FlexBool{} },
			want("Features", map[string]bool(nil))},
		{"extra", func(c *SynchronizationCredentials) { c.FolderClassName, c.PersonalMetrics = "IPF.Note", true },
			want("Extra", map[string]string{ExtraFolderClassName: "IPF.Note", ExtraPersonalMetrics: "true"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			mb, err := c.Mailbox()
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(mb); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// want checks one field of the mailbox by name.
func want(field string, v any) func(*mail.Mailbox) string {
	return func(mb *mail.Mailbox) string {
		got := reflect.ValueOf(*mb).FieldByName(field).Interface()
		if !reflect.DeepEqual(got, v) {
			return fmt.Sprintf("%s = %#v, want %#v", field, got, v)
		}
		return ""
	}
}

func all(checks ...func(*mail.Mailbox) string) func(*mail.Mailbox) string {
	return func(mb *mail.Mailbox) string {
		for _, c := range checks {
			if msg := c(mb); msg != "" {
				return msg
			}
		}
		return ""
	}
}

func TestMailboxErrors(t *testing.T) {
	tests := []struct {
		name  string
		c     SynchronizationCredentials
		field string
		msg   string
	}{
		{"no id", SynchronizationCredentials{}, "Id", "credentials: Id is required"},
		{"blank id", SynchronizationCredentials{ID: " \t"}, "Id", "credentials: Id is required"},
		{"unknown type", SynchronizationCredentials{ID: "x", ServerTypeID: "00000000-0000-0000-0000-000000000001"},
			"ServerTypeId", `credentials: unsupported server type "00000000-0000-0000-0000-000000000001"`},
		{"port range", SynchronizationCredentials{ID: "x", Port: 70000}, "Port", "credentials: Port 70000 out of range"},
		{"negative port", SynchronizationCredentials{ID: "x", Port: -1}, "Port", "credentials: Port -1 out of range"},
		{"bad url port", SynchronizationCredentials{ID: "x", ServiceURL: "imap.example.com:abc"}, "ServiceUrl",
			`credentials: ServiceUrl "imap.example.com:abc" has an invalid port`},
		{"url port zero", SynchronizationCredentials{ID: "x", ServiceURL: "imaps://h:0"}, "ServiceUrl",
			`credentials: ServiceUrl "imaps://h:0" has an invalid port`},
		{"url without host", SynchronizationCredentials{ID: "x", ServiceURL: "imaps:///x"}, "ServiceUrl",
			`credentials: ServiceUrl "imaps:///x" is not a valid host or URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb, err := tt.c.Mailbox()
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Mailbox() = %v, %v; want *RequestError", mb, err)
			}
			if re.Field != tt.field || re.Error() != tt.msg {
				t.Fatalf("err = %q field %q, want %q field %q", re.Error(), re.Field, tt.msg, tt.field)
			}
		})
	}
}

func TestCredentialsRedacted(t *testing.T) {
	c := SynchronizationCredentials{ID: "x", Password: "hunter2", AccessToken: "tok-secret"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", &c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.LogValue().String(),
		fmt.Sprintf("%+v", SyncEmailsCommand{Credentials: c}), fmt.Sprintf("%v", &SendCommand{Credentials: c})} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "tok-secret") {
			t.Fatalf("secret in %q", s)
		}
	}
}
