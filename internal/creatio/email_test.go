// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"reflect"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func testMailbox() *mail.Mailbox {
	return &mail.Mailbox{
		ID:            "1111aaaa-2222-4bbb-8ccc-333333dddddd",
		User:          "Supervisor",
		Workspace:     "Default",
		TimeZone:      "Russian Standard Time",
		SenderAddress: "john.doe@example.com",
		Context:       "{UserRequested:true,HasError:false}",
	}
}

func TestNewEmailJSON(t *testing.T) {
	m := &mail.Message{
		MessageID:  "<abc@example.com>",
		Subject:    "Quarterly report",
		From:       mail.Address{Name: "Jane Roe", Address: "jane@example.com"},
		To:         []mail.Address{{Name: "John Doe", Address: "john@example.com"}, {Address: "ops@example.com"}},
		Cc:         []mail.Address{{Address: "cc@example.com"}},
		Date:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		InReplyTo:  "<prev@example.com>",
		References: "<root@example.com>\r\n <prev@example.com>",
		Headers: []mail.Header{
			{Name: "Subject", Value: "Quarterly report"},
			{Name: "X-Long", Value: "first part\r\n\tsecond part"},
		},
		Importance: mail.ImportanceHigh,
		HTML:       `<p>See <img src="cid:logo@x"></p>`,
		Text:       "See logo",
		Attachments: []mail.Attachment{
			{Name: "logo.png", ContentType: "image/png", ContentID: "logo@x", Inline: true, Data: []byte("PNG")},
			{Name: "report.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.7")},
			{Name: "empty.txt", ContentType: "text/plain"},
		},
	}
	got, err := Marshal(NewEmail(m))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Id":"<abc@example.com>","Subject":"Quarterly report",` +
		`"Body":"<p>See <img src=\"cid:logo@x\"></p>","Sender":"Jane Roe <jane@example.com>",` +
		`"Recepients":["John Doe <john@example.com>","ops@example.com"],"CopyRecepients":["cc@example.com"],` +
		`"BlindCopyRecepients":[],"Headers":["Subject=Quarterly report","X-Long=first part second part"],` +
		`"Importance":2,"IsHtmlBody":true,"Attachments":[` +
		`{"Id":"logo@x","Name":"logo.png","Base64Data":"UE5H","IsInline":true},` +
		`{"Id":"","Name":"report.pdf","Base64Data":"JVBERi0xLjc=","IsInline":false},` +
		`{"Id":"","Name":"empty.txt","Base64Data":"","IsInline":false}],` +
		`"SendDateTimeStamp":639028224000000000,"MessageId":"<abc@example.com>",` +
		`"InReplyTo":"<prev@example.com>","References":"<root@example.com> <prev@example.com>"}`
	if string(got) != want {
		t.Fatalf("NewEmail JSON\n got %s\nwant %s", got, want)
	}
}

func TestNewEmailEmptyMessage(t *testing.T) {
	got, err := Marshal(NewEmail(&mail.Message{MessageID: "<x@y>", Text: "plain"}))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Id":"<x@y>","Subject":"","Body":"plain","Sender":"","Recepients":[],"CopyRecepients":[],` +
		`"BlindCopyRecepients":[],"Headers":[],"Importance":0,"IsHtmlBody":false,"Attachments":[],"SendDateTimeStamp":0,` +
		`"MessageId":"<x@y>","InReplyTo":"","References":""}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestDefaultSendDate(t *testing.T) {
	e := NewEmail(&mail.Message{})
	internal := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	e.DefaultSendDate(internal)
	if e.SendDateTimeStamp != FlexInt(EpochTicks) {
		t.Fatalf("SendDateTimeStamp = %d, want %d", e.SendDateTimeStamp, EpochTicks)
	}
	e.DefaultSendDate(time.Now()) // already set: unchanged
	if e.SendDateTimeStamp != FlexInt(EpochTicks) {
		t.Fatal("DefaultSendDate overwrote a date")
	}
}

func TestNewLoadEmailCommand(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	got, err := Marshal(NewLoadEmailCommand(testMailbox(), nil, now))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Emails":[],"SubscriptionInfo":{"Id":"1111aaaa-2222-4bbb-8ccc-333333dddddd","SysAdminUnit":"Supervisor",` +
		`"MailboxId":"1111aaaa-2222-4bbb-8ccc-333333dddddd","WorkspaceName":"Default","TimeZoneId":"Russian Standard Time",` +
		`"EventTimeStamp":639028116000000000}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"plain value":      "plain value",
		"a\r\n b":          "a b",
		"a \r\n\t b\nc":    "a b c",
		"\r\nlead":         "lead",
		"trail\r\n":        "trail",
		"a\r\n\r\n\r\n  b": "a b",
		"keep  inner  ws":  "keep  inner  ws",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmailMessage(t *testing.T) {
	body := `{"Email":{"Id":"<1f0e@example.com>","Subject":"Hi","Body":"<b>x</b>","Sender":"Jane Roe <jane@example.com>",` +
		`"Recepients":["john@example.com","","\"Doe, John\" <jd@example.com>","a@x, b@y","not an address"],` +
		`"CopyRecepients":null,"BlindCopyRecepients":["bcc@example.com"],` +
		`"Headers":["MessageId=<ignored@example.com>","In-Reply-To=<prev@example.com>","Auto-Submitted=auto-replied",` +
		`"X-Evil=a\r\nBcc: victim@example.com","X-Colon: v=1","=novalue","bad name=x"],` +
		`"Importance":"2","IsHtmlBody":true,"Attachments":[{"Id":"9a1b","Name":"Logo.PNG","Base64Data":"UE5H","IsInline":true},` +
		`{"Id":"c2d3","Name":"data.unknownext","Base64Data":"","IsInline":false}],` +
		`"SendDateTimeStamp":0,"MessageId":null,"InReplyTo":null,"References":null},"Attachments":null,"Credentials":{"Id":"x"}}`
	var cmd SendCommand
	if err := Decode([]byte(body), &cmd); err != nil {
		t.Fatal(err)
	}
	got := cmd.Email.Message()
	want := &mail.Message{
		MessageID: "<1f0e@example.com>",
		Subject:   "Hi",
		From:      mail.Address{Name: "Jane Roe", Address: "jane@example.com"},
		To: []mail.Address{{Address: "john@example.com"}, {Name: "Doe, John", Address: "jd@example.com"},
			{Address: "a@x"}, {Address: "b@y"}, {Address: "not an address"}},
		Bcc:       []mail.Address{{Address: "bcc@example.com"}},
		InReplyTo: "<prev@example.com>",
		Headers: []mail.Header{{Name: "Auto-Submitted", Value: "auto-replied"},
			{Name: "X-Evil", Value: "a Bcc: victim@example.com"}, {Name: "X-Colon", Value: "v=1"}},
		Importance: mail.ImportanceHigh,
		HTML:       "<b>x</b>",
		Attachments: []mail.Attachment{
			{Name: "Logo.PNG", ContentType: "image/png", ContentID: "9a1b", Inline: true, Data: []byte("PNG")},
			{Name: "data.unknownext", ContentType: "application/octet-stream", Data: []byte{}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Message()\n got %+v\nwant %+v", got, want)
	}
	if cmd.Attachments != nil || cmd.Credentials.ID != "x" {
		t.Fatalf("SendCommand = %+v", cmd)
	}
}

func TestEmailMessageIDFallback(t *testing.T) {
	for _, tt := range []struct {
		e    Email
		want string
	}{
		{Email{ID: "bare@example.com"}, "<bare@example.com>"},
		{Email{Headers: []string{"MessageId=<h@example.com>"}}, "<h@example.com>"},
		{Email{MessageID: "m@example.com"}, "<m@example.com>"},
		{Email{}, ""},
	} {
		if got := tt.e.Message().MessageID; got != tt.want {
			t.Errorf("MessageID = %q, want %q", got, tt.want)
		}
	}
	if m := (&Email{Body: "t"}).Message(); m.Text != "t" || m.HTML != "" {
		t.Errorf("text body mapped to %+v", m)
	}
}
