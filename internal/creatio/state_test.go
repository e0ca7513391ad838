// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestMailboxStateJSON(t *testing.T) {
	mb := testMailbox()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"failure", NewMailboxState(mb, false, "MailKit.Security.AuthenticationException", "AUTHENTICATE failed"),
			`{"MailboxId":"1111aaaa-2222-4bbb-8ccc-333333dddddd","SenderEmailAddress":"john.doe@example.com",` +
				`"BpmUserName":"Supervisor","BpmUserWorkspace":"Default","Avaliable":false,` +
				`"ExceptionClassName":"MailKit.Security.AuthenticationException","ExceptionMessage":"AUTHENTICATE failed",` +
				`"Context":"{UserRequested:true,HasError:false}"}`},
		{"recovery", NewMailboxStateForError(mb, nil),
			`{"MailboxId":"1111aaaa-2222-4bbb-8ccc-333333dddddd","SenderEmailAddress":"john.doe@example.com",` +
				`"BpmUserName":"Supervisor","BpmUserWorkspace":"Default","Avaliable":true,` +
				`"ExceptionClassName":"","ExceptionMessage":"","Context":"{UserRequested:true,HasError:false}"}`},
		{"from error", NewMailboxStateForError(mb, mail.Errorf(mail.ClassTLS, "dial", "x509: certificate expired")),
			`{"MailboxId":"1111aaaa-2222-4bbb-8ccc-333333dddddd","SenderEmailAddress":"john.doe@example.com",` +
				`"BpmUserName":"Supervisor","BpmUserWorkspace":"Default","Avaliable":false,` +
				`"ExceptionClassName":"MailKit.Security.SslHandshakeException","ExceptionMessage":"dial: x509: certificate expired",` +
				`"Context":"{UserRequested:true,HasError:false}"}`},
		{"refresh token", NewMailboxInfo(mb),
			`{"MailboxId":"1111aaaa-2222-4bbb-8ccc-333333dddddd","SenderEmailAddress":"john.doe@example.com",` +
				`"BpmUserName":"Supervisor","BpmUserWorkspace":"Default"}`},
		{"status", ServiceStatus{ServiceStatus: StatusStarted, Version: "1.2.3",
			Extra: map[string]any{"connections": map[string]int{}, "node": "el-0", "version": "shadowed"}},
			`{"ServiceStatus":"Started","Version":"1.2.3","connections":{},"node":"el-0"}`},
		{"status no extra", ServiceStatus{ServiceStatus: StatusStarted, Version: "1.2.3"},
			`{"ServiceStatus":"Started","Version":"1.2.3"}`},
		{"subscriptions state", map[string]SubscriptionState{
			"1111aaaa-2222-4bbb-8ccc-333333dddddd": {State: mail.StateExists},
			"2222aaaa-2222-4bbb-8ccc-333333dddddd": {State: mail.StateClosed, Extra: map[string]any{"Error": "auth"}},
		}, `{"1111aaaa-2222-4bbb-8ccc-333333dddddd":{"State":"exists"},` +
			`"2222aaaa-2222-4bbb-8ccc-333333dddddd":{"State":"closed","Error":"auth"}}`},
		{"validation ok", ValidationOK(`John "JD" Doe`),
			`{"IsValid":true,"Message":"","Data":"{\"MailboxName\":\"John \\\"JD\\\" Doe\"}"}`},
		{"validation ok no name", ValidationOK(""), `{"IsValid":true,"Message":"","Data":""}`},
		{"validation failed", ValidationFailed("login failed", ActionEmailTroubleShoot),
			`{"IsValid":false,"Message":"login failed","Data":"EmailTroubleShoot"}`},
		{"folders", []MailboxFolder{{ID: "INBOX", Name: "INBOX"}, {ID: "INBOX/Sub", Name: "Sub", ParentID: "INBOX"}},
			`[{"Id":"INBOX","Name":"INBOX","ParentId":""},{"Id":"INBOX/Sub","Name":"Sub","ParentId":"INBOX"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestValidationDataIsStrictJSON(t *testing.T) {
	var d struct{ MailboxName string }
	if err := json.Unmarshal([]byte(ValidationOK("Jane <j@x>").Data), &d); err != nil || d.MailboxName != "Jane <j@x>" {
		t.Fatalf("Data not strict JSON: %v %+v", err, d)
	}
}

func TestStatusUnmarshal(t *testing.T) {
	// The real 0.9.1 response (docs/CREATIO-PROTOCOL.md §7.3), lower-case "version".
	var s ServiceStatus
	if err := json.Unmarshal([]byte(`{"ServiceStatus":"Started","version":"0.9.1","connections":{}}`), &s); err != nil {
		t.Fatal(err)
	}
	want := ServiceStatus{ServiceStatus: "Started", Version: "0.9.1", Extra: map[string]any{"connections": map[string]any{}}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	var st map[string]SubscriptionState
	if err := Decode([]byte(`{"a":{State:"exists",Since:1},"b":{"state":"closed","State":"exists"}}`), &st); err != nil {
		t.Fatal(err)
	}
	if st["a"].State != mail.StateExists || st["a"].Extra["Since"] != 1.0 || st["b"].State != mail.StateExists ||
		st["b"].Extra["state"] != "closed" {
		t.Fatalf("got %+v", st)
	}
	if err := json.Unmarshal([]byte(`[]`), &s); err == nil {
		t.Fatal("array accepted as status")
	}
}

func TestExceptionClassName(t *testing.T) {
	want := map[mail.ServerKind]map[mail.ErrorClass]string{
		mail.ServerIMAP: {
			mail.ClassAuth:        "MailKit.Security.AuthenticationException",
			mail.ClassTLS:         "MailKit.Security.SslHandshakeException",
			mail.ClassCertificate: "Terrasoft.Configuration.BaseSslWarningException",
			mail.ClassConnect:     "System.Net.Sockets.SocketException",
			mail.ClassTimeout:     "System.TimeoutException",
			mail.ClassProtocol:    "MailKit.Net.Imap.ImapProtocolException",
			mail.ClassConfig:      "System.ArgumentException",
			mail.ClassInternal:    "System.Exception",
			"something-new":       "System.Exception",
		},
		mail.ServerExchange: {
			mail.ClassAuth:        "Microsoft.Exchange.WebServices.Data.ServiceRequestException",
			mail.ClassTLS:         "System.Security.Authentication.AuthenticationException",
			mail.ClassCertificate: "Terrasoft.Configuration.BaseSslWarningException",
			mail.ClassConnect:     "System.Net.WebException",
			mail.ClassTimeout:     "System.TimeoutException",
			mail.ClassProtocol:    "Microsoft.Exchange.WebServices.Data.ServiceResponseException",
			mail.ClassConfig:      "System.ArgumentException",
			mail.ClassInternal:    "System.Exception",
			"something-new":       "System.Exception",
		},
	}
	for kind, table := range want {
		for _, c := range mail.Classes {
			if _, ok := table[c]; !ok {
				t.Errorf("%s: class %q has no expectation", kind, c)
			}
		}
		for c, w := range table {
			if got := ExceptionClassName(kind, c); got != w {
				t.Errorf("ExceptionClassName(%s, %q) = %q, want %q", kind, c, got, w)
			}
		}
	}
	// An unclassified error is internal.
	if s := NewMailboxStateForError(testMailbox(), errors.New("boom")); s.ExceptionClassName != "System.Exception" ||
		s.ExceptionMessage != "boom" || s.Avaliable {
		t.Errorf("unclassified error: %+v", s)
	}
	if s := NewMailboxStateForError(testMailbox(), fmt.Errorf("wrapped: %w", mail.Errorf(mail.ClassAuth, "login", "no"))); s.ExceptionClassName != want[mail.ServerIMAP][mail.ClassAuth] {
		t.Errorf("wrapped auth error: %+v", s)
	}
}
