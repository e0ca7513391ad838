// SPDX-License-Identifier: Apache-2.0

package oauthtoken

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestToken(t *testing.T) {
	var redirected bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected = true }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.PostForm.Get("refresh_token") {
		case "rotate":
			_, _ = w.Write([]byte(`{"access_token":"a1","token_type":"Bearer","expires_in":3600,"refresh_token":"rotated"}`))
		case "keep":
			_, _ = w.Write([]byte(`{"access_token":"a2","token_type":"Bearer","expires_in":3600}`))
		case "down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "redirect":
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		default:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`))
		}
	}))
	defer srv.Close()
	c := New(Options{})
	client := func(refresh string) *mail.OAuth2 {
		return &mail.OAuth2{TokenURL: srv.URL, ClientID: "id", ClientSecret: "s3cr3t-client", RefreshToken: refresh}
	}
	ctx := context.Background()
	if a, r, err := c.Token(ctx, client("rotate")); err != nil || a != "a1" || r != "rotated" {
		t.Fatalf("rotate: %q %q %v", a, r, err)
	}
	if a, r, err := c.Token(ctx, client("keep")); err != nil || a != "a2" || r != "keep" {
		t.Fatalf("keep: %q %q %v", a, r, err)
	}
	_, _, err := c.Token(ctx, client("revoked-secret-grant"))
	if mail.ClassOf(err) != mail.ClassAuth || !strings.Contains(err.Error(), "invalid_grant: Token has been expired or revoked.") {
		t.Fatalf("revoked: %v (class %s)", err, mail.ClassOf(err))
	}
	for _, secret := range []string{"revoked-secret-grant", "s3cr3t-client"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows a secret: %v", err)
		}
	}
	if _, _, err := c.Token(ctx, client("down")); mail.ClassOf(err) != mail.ClassConnect {
		t.Fatalf("provider down: %v (class %s)", err, mail.ClassOf(err))
	}
	if _, _, err := c.Token(ctx, client("redirect")); err == nil || redirected {
		t.Fatalf("redirect followed: %v, reached %v", err, redirected)
	}
	if _, _, err := c.Token(ctx, &mail.OAuth2{TokenURL: srv.URL}); mail.ClassOf(err) != mail.ClassConfig {
		t.Fatalf("no refresh token: %v", err)
	}
}
