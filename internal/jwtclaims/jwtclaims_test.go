// SPDX-License-Identifier: Apache-2.0

package jwtclaims

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func TestParse(t *testing.T) {
	exp := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c, ok := Parse(jwt(t, map[string]any{"aud": "https://outlook.office.com", "scp": "IMAP.AccessAsUser.All SMTP.Send",
		"exp": exp.Unix(), "tid": "t1", "upn": "alice@contoso.com"}))
	if !ok || !c.Expires.Equal(exp) || c.Tenant != "t1" || c.User != "alice@contoso.com" ||
		!slices.Equal(c.Scopes, []string{"IMAP.AccessAsUser.All", "SMTP.Send"}) {
		t.Fatalf("Parse = %+v, %v", c, ok)
	}
	if !c.HasScope("https://outlook.office.com/IMAP.AccessAsUser.All") || !c.HasScope("smtp.send") || c.HasScope("Mail.Read") {
		t.Error("HasScope")
	}
	if !c.For("https://outlook.office.com/") || c.For("https://graph.microsoft.com") {
		t.Error("For")
	}
	app, ok := Parse(jwt(t, map[string]any{"aud": []string{"00000003-0000-0000-c000-000000000000"}, "roles": []string{"Mail.ReadWrite"}}))
	if !ok || !app.For("00000003-0000-0000-c000-000000000000") || !app.HasScope("Mail.ReadWrite") || !app.Expires.IsZero() {
		t.Errorf("app token = %+v", app)
	}
	for _, bad := range []string{"", "opaque-gmail-token", "a.b", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c",
		"a." + strings.Repeat("A", maxToken) + ".c"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%.20q) accepted", bad)
		}
	}
}
