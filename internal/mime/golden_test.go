// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current parser output")

// goldenMessage is the stable, reviewable view of a mail.Message stored in
// the golden files: attachment data is replaced by its size and digest.
type goldenMessage struct {
	MessageID   string             `json:"messageId"`
	Subject     string             `json:"subject"`
	From        mail.Address       `json:"from"`
	To          []mail.Address     `json:"to"`
	Cc          []mail.Address     `json:"cc"`
	Bcc         []mail.Address     `json:"bcc"`
	ReplyTo     []mail.Address     `json:"replyTo"`
	Date        string             `json:"date"`
	InReplyTo   string             `json:"inReplyTo"`
	References  string             `json:"references"`
	Importance  string             `json:"importance"`
	Text        string             `json:"text"`
	HTML        string             `json:"html"`
	Attachments []goldenAttachment `json:"attachments"`
	Size        int                `json:"size"`
	Warnings    []string           `json:"warnings"`
	Headers     []mail.Header      `json:"headers"`
}

type goldenAttachment struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	ContentID   string `json:"contentId,omitempty"`
	Inline      bool   `json:"inline"`
	Size        int    `json:"size"`
	SHA256      string `json:"sha256"`
}

func goldenView(m *mail.Message) goldenMessage {
	g := goldenMessage{
		MessageID: m.MessageID, Subject: m.Subject, From: m.From,
		To: m.To, Cc: m.Cc, Bcc: m.Bcc, ReplyTo: m.ReplyTo,
		InReplyTo: m.InReplyTo, References: m.References,
		Importance: importanceName(m.Importance),
		Text:       m.Text, HTML: m.HTML, Size: m.Size, Warnings: m.Warnings, Headers: m.Headers,
	}
	if !m.Date.IsZero() {
		g.Date = m.Date.Format(time.RFC3339)
	}
	for _, a := range m.Attachments {
		sum := sha256.Sum256(a.Data)
		g.Attachments = append(g.Attachments, goldenAttachment{
			Name: a.Name, ContentType: a.ContentType, ContentID: a.ContentID, Inline: a.Inline,
			Size: len(a.Data), SHA256: hex.EncodeToString(sum[:]),
		})
	}
	return g
}

func importanceName(i mail.Importance) string {
	switch i {
	case mail.ImportanceHigh:
		return "high"
	case mail.ImportanceNormal:
		return "normal"
	case mail.ImportanceLow:
		return "low"
	}
	return "none"
}

func marshalGolden(t *testing.T, m *mail.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the HTML bodies readable in review
	enc.SetIndent("", "  ")
	if err := enc.Encode(goldenView(m)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGolden parses every testdata/*.eml and compares the result with the
// matching .golden.json. Run with -update to rewrite them, then review the
// diff by eye.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 18 {
		t.Fatalf("found %d corpus files, want at least 18", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(raw, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := marshalGolden(t, m)
			goldenPath := strings.TrimSuffix(file, ".eml") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parse result differs from %s (run with -update and review the diff):\n%s", goldenPath, got)
			}
		})
	}
}

// TestCorpusSpotChecks pins the facts each corpus file exists to test,
// independently of the golden files, so that a careless -update cannot
// record wrongly decoded text.
func TestCorpusSpotChecks(t *testing.T) {
	tests := []struct {
		file, subject, from, text, html string
		attachments                     []string
		importance                      mail.Importance
	}{
		{file: "plain_ascii", subject: "Quarterly numbers are in and they look fine", from: "Alice Smith", text: "The Q1 numbers"},
		{file: "alternative", subject: "Réunion de l’équipe ✓", from: "José García", text: "La réunion de l’équipe", html: "<b>jeudi à 14&nbsp;h</b>"},
		{file: "related_inline_pdf", text: "invoice attached", html: "cid:logo.png@01DA6F00.12345678", attachments: []string{"logo.png", "attachment-2.png", "invoice-42.pdf"}},
		{file: "cp1251", subject: "Счёт на оплату №123", from: "Иванов Пётр", text: "Прошу оплатить счёт №123 до пятницы."},
		{file: "koi8r", subject: "Отчёт о командировке", from: "Сергей", text: "Ёлки-палки, чуть не забыл"},
		{file: "latin1_qp", subject: "Café crème brûlée", from: "Renée Lévesque", text: "s'il vous plaît.\r\nGrüße aus Köln, ¡hasta mañana!"},
		{file: "gb2312", subject: "关于下周会议的通知", from: "王伟", text: "下周一上午十点在三楼会议室召开项目会议，请准时参加。"},
		{file: "shift_jis", subject: "会議のお知らせ", from: "鈴木一郎", text: "明日の会議は十時からです。"},
		{file: "iso2022jp", subject: "見積書の送付について", from: "佐藤花子", text: "見積書を添付いたします。"},
		{file: "nested", text: "Weekly chart below.", html: "<p>Weekly chart below.</p>", attachments: []string{"attachment-1.gif", "data.csv"}},
		{file: "forwarded_rfc822", text: "See the forwarded message below.", attachments: []string{"Квартальный отчёт_ итоги.eml"}},
		{file: "tnef", attachments: []string{"winmail.dat"}},
		{file: "rfc2231_filename", attachments: []string{"Отчёт №1.pdf", "Смета за март.xls", "Фото с корпоратива.jpg"}},
		{file: "xpriority_high", importance: mail.ImportanceHigh},
		{file: "importance_low", importance: mail.ImportanceLow},
		{file: "unknown_8bit", subject: "Re: Договор поставки", text: "Здравствуйте, Алексей Николаевич!"},
		{file: "html_only", text: "Only € 9.99 – “best” deal.", html: "<p>Only € 9.99 – “best” deal.</p>"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			m := mustParse(t, raw, nil)
			if tt.subject != "" && m.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, tt.subject)
			}
			if tt.from != "" && m.From.Name != tt.from {
				t.Errorf("From.Name = %q, want %q", m.From.Name, tt.from)
			}
			if !strings.Contains(m.Text, tt.text) {
				t.Errorf("Text = %q, want it to contain %q", m.Text, tt.text)
			}
			if !strings.Contains(m.HTML, tt.html) {
				t.Errorf("HTML = %q, want it to contain %q", m.HTML, tt.html)
			}
			if strings.Contains(m.Text, "INNER BODY") || strings.Contains(m.HTML, "INNER BODY") {
				t.Error("a forwarded message's body leaked into the outer body")
			}
			if tt.attachments != nil {
				var names []string
				for _, a := range m.Attachments {
					names = append(names, a.Name)
				}
				if strings.Join(names, "|") != strings.Join(tt.attachments, "|") {
					t.Errorf("attachments = %q, want %q", names, tt.attachments)
				}
			}
			if want := tt.importance; want != mail.ImportanceNone && m.Importance != want {
				t.Errorf("Importance = %v, want %v", m.Importance, want)
			}
		})
	}
}
