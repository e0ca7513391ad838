// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestClassify(t *testing.T) {
	type want struct {
		class mail.ErrorClass
		is    []error
	}
	for _, tc := range []struct {
		status int
		code   string
		msg    string
		kind   target
		want   want
	}{
		{401, "InvalidAuthenticationToken", "", tItem, want{mail.ClassAuth, nil}},
		{403, "ErrorAccessDenied", "", tFolder, want{mail.ClassConfig, nil}},
		{403, "Authorization_RequestDenied", "", tMailbox, want{mail.ClassConfig, nil}},
		{403, "ErrorSendAsDenied", "", tMailbox, want{mail.ClassConfig, nil}},
		{404, "ErrorItemNotFound", "", tItem, want{mail.ClassProtocol, []error{ErrNotFound}}},
		{404, "ErrorItemNotFound", "", tFolder, want{mail.ClassConfig, []error{ErrNotFound}}},
		{404, "ErrorItemNotFound", "", tMailbox, want{mail.ClassConfig, []error{ErrNotFound}}},
		{404, "ResourceNotFound", "", tSubscription, want{mail.ClassProtocol, []error{ErrNotFound}}},
		{404, "ResourceNotFound", "", tSubscribe, want{mail.ClassConfig, []error{ErrNotFound}}},
		{404, "", "", tBatch, want{mail.ClassConfig, nil}},
		{404, "ResourceNotFound", "", tMailbox, want{mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound}}},
		{404, "MailboxNotEnabledForRESTAPI", "", tFolder, want{mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound}}},
		{404, "ErrorInvalidUser", "", tItem, want{mail.ClassConfig, []error{ErrNoMailbox, ErrNotFound}}},
		{400, "ErrorInvalidIdMalformed", "", tFolder, want{mail.ClassConfig, []error{ErrNotFound}}},
		{400, "ErrorInvalidIdMalformed", "", tItem, want{mail.ClassProtocol, []error{ErrNotFound}}},
		{400, "ErrorInvalidUrlQueryFilter", "", tFolder, want{mail.ClassInternal, nil}},
		{400, "ErrorMimeContentInvalidBase64String", "", tMailbox, want{mail.ClassInternal, nil}},
		{400, "ValidationError", "Subscription validation request failed.", tSubscribe, want{mail.ClassConfig, nil}},
		{400, "InvalidRequest", "Subscription validation request failed.", tSubscribe, want{mail.ClassConfig, nil}},
		{400, "ExtensionError", "", tItem, want{mail.ClassProtocol, nil}},
		{400, "SyncStateNotFound", "", tFolder, want{mail.ClassProtocol, []error{ErrSyncReset}}},
		{400, "resyncRequired", "", tFolder, want{mail.ClassProtocol, []error{ErrSyncReset}}},
		{410, "", "", tFolder, want{mail.ClassProtocol, []error{ErrSyncReset}}},
		{405, "", "", tItem, want{mail.ClassInternal, nil}},
		{406, "", "", tItem, want{mail.ClassInternal, nil}},
		{415, "", "", tItem, want{mail.ClassInternal, nil}},
		{412, "ErrorIrresolvableConflict", "", tItem, want{mail.ClassProtocol, nil}},
		{413, "", "", tMailbox, want{mail.ClassProtocol, nil}},
		{429, "ApplicationThrottled", "", tFolder, want{mail.ClassProtocol, []error{ErrThrottled}}},
		{503, "", "", tFolder, want{mail.ClassProtocol, []error{ErrThrottled}}},
		{504, "", "", tFolder, want{mail.ClassProtocol, []error{ErrThrottled}}},
		{509, "", "", tFolder, want{mail.ClassProtocol, []error{ErrThrottled}}},
		{500, "", "", tFolder, want{mail.ClassProtocol, nil}},
		{502, "", "", tFolder, want{mail.ClassProtocol, nil}},
		{302, "", "", tFolder, want{mail.ClassProtocol, nil}},
		{418, "", "", tFolder, want{mail.ClassProtocol, nil}},
	} {
		f := failure{status: tc.status, code: tc.code, message: tc.msg, kind: tc.kind, perm: "Mail.Read", tokenKind: "app-only"}
		class, is, _ := f.classify()
		if class != tc.want.class || !slices.Equal(is, tc.want.is) {
			t.Errorf("%d %s kind %d: %s %v, want %s %v", tc.status, tc.code, tc.kind, class, is, tc.want.class, tc.want.is)
		}
	}
	// Every status classifies, with a class from the closed set.
	for s := 300; s < 600; s++ {
		for k := tItem; k <= tBatch; k++ {
			class, _, _ := failure{status: s, kind: k}.classify()
			if !slices.Contains(mail.Classes, class) {
				t.Fatalf("%d: class %q", s, class)
			}
		}
	}
}

// A server that echoes the bearer token everywhere it can does not get it
// into an error.
func TestErrorsNeverQuoteTheToken(t *testing.T) {
	for _, body := range []string{
		`{"error":{"code":"InvalidAuthenticationToken","message":"token %s is bad"}}`,
		`<html>your token: %s</html>`,
		`{"error":{"code":"X","message":"` + strings.Repeat("y", 290) + ` %s"}}`,
	} {
		for _, status := range []int{400, 401, 403, 404, 429, 500} {
			c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				w.Header().Set("request-id", tok)
				w.WriteHeader(status)
				w.Write([]byte(strings.ReplaceAll(body, "%s", tok)))
			}))
			_, err := c.Folder(t.Context(), "u", "inbox")
			if err == nil {
				t.Fatal("no error")
			}
			requireNoSecret(t, err, testToken, "TEST-BEARER")
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var other hits
	otherSrv := httptest.NewServer(other.wrap(http.NotFoundHandler()))
	defer otherSrv.Close()
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	_, err := c.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassProtocol)
	if other.n.Load() != 0 {
		t.Fatal("redirect followed")
	}
}

func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, err := New(Options{BaseURL: base + "/v1.0", Tokens: StaticToken(testToken), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassConnect)
	requireNoSecret(t, err, testToken)

	// A server slower than Timeout: ClassTimeout naming the budget.
	block := make(chan struct{})
	slow, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}), func(o *Options) { o.Timeout = 50 * time.Millisecond })
	defer close(block)
	_, err = slow.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "50ms") {
		t.Fatalf("timeout error %v", err)
	}

	// Our own cancellation is ClassInternal.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = slow.Folder(ctx, "u", "inbox")
	requireClass(t, err, mail.ClassInternal)
}

func TestNewOptions(t *testing.T) {
	for _, o := range []Options{
		{BaseURL: "ftp://graph/v1.0", Tokens: StaticToken("x")},
		{BaseURL: "graph.microsoft.com/v1.0", Tokens: StaticToken("x")},
		{BaseURL: "https://u:p@graph.microsoft.com/v1.0", Tokens: StaticToken("x")},
		{BaseURL: "https://graph.microsoft.com/v1.0?x=1", Tokens: StaticToken("x")},
		{},
	} {
		_, err := New(o)
		requireClass(t, err, mail.ClassConfig)
	}
	c, err := New(Options{Tokens: StaticToken("x")})
	if err != nil || c.baseStr != DefaultBaseURL || c.timeout != DefaultTimeout || c.maxResp != DefaultMaxResponseBytes {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, _ = New(Options{BaseURL: "https://graph.microsoft.us/v1.0/", Tokens: StaticToken("x")})
	if c.baseStr != "https://graph.microsoft.us/v1.0" {
		t.Fatalf("trailing slash kept: %s", c.baseStr)
	}
}

func TestExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"  a\n\tb  ": "a b",
		"x\x00y":     "x?y",
		"\xffz":      "?z",
		"":           "",
	} {
		if got := excerpt(in); got != want {
			t.Errorf("excerpt(%q) = %q, want %q", in, got, want)
		}
	}
	if got := excerpt(strings.Repeat("é", 400)); len(got) > maxExcerpt+len("…")+1 {
		t.Errorf("excerpt of %d bytes", len(got))
	}
}

type tokenFunc func(context.Context) (string, error)

func (f tokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

func TestTokenSourceErrors(t *testing.T) {
	var n hits
	c, _ := newClient(t, n.wrap(http.NotFoundHandler()), func(o *Options) {
		o.Tokens = tokenFunc(func(context.Context) (string, error) { return "", errors.New("vault sealed") })
	})
	_, err := c.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassAuth)
	c, _ = newClient(t, n.wrap(http.NotFoundHandler()), func(o *Options) {
		o.Tokens = tokenFunc(func(context.Context) (string, error) {
			return "", mail.Errorf(mail.ClassConnect, "vault", "unreachable")
		})
	})
	_, err = c.Folder(t.Context(), "u", "inbox")
	requireClass(t, err, mail.ClassConnect)
	if n.n.Load() != 0 {
		t.Fatal("a request went out without a token")
	}
}

// dropFirst closes the connection of the first request without an answer.
func dropFirst(t *testing.T, n *hits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.n.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestBrokenConnectionRetriedOnlyWhenIdempotent(t *testing.T) {
	var n hits
	c, _ := newClient(t, dropFirst(t, &n, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, folderJSONOf("F", "Inbox", 0))
	})))
	if _, err := c.Folder(t.Context(), "u", "inbox"); err != nil || n.n.Load() != 2 {
		t.Fatalf("GET not retried: %v, %d requests", err, n.n.Load())
	}

	var m hits
	c, _ = newClient(t, dropFirst(t, &m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})))
	err := c.SendMIME(t.Context(), "u", []byte(testMessage))
	requireClass(t, err, mail.ClassConnect)
	if m.n.Load() != 1 {
		t.Fatalf("sendMail sent %d times", m.n.Load())
	}
}
