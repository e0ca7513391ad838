// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/obs"
)

// fakeService records calls; the API's job is decoding, validation and mapping.
type fakeService struct {
	mu      sync.Mutex
	subs    []*mail.Mailbox
	modes   []mail.Mode
	closed  []mail.MailboxID
	failSub error
}

func (f *fakeService) Subscribe(_ context.Context, mbs []*mail.Mailbox, mode mail.Mode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSub != nil {
		return f.failSub
	}
	f.subs = append(f.subs, mbs...)
	f.modes = append(f.modes, mode)
	return nil
}

func (f *fakeService) Close(_ context.Context, ids []mail.MailboxID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = append(f.closed, ids...)
	return nil
}

func (f *fakeService) States(_ context.Context, ids []mail.MailboxID) (map[mail.MailboxID]creatio.SubscriptionState, error) {
	out := map[mail.MailboxID]creatio.SubscriptionState{}
	for _, id := range ids {
		out[id] = creatio.SubscriptionState{State: "exists", Extra: map[string]any{"Delivered": 3}}
	}
	return out, nil
}

func (f *fakeService) Status(context.Context) creatio.ServiceStatus {
	return creatio.ServiceStatus{ServiceStatus: "Started", Version: "1.2.3"}
}

func newTestAPI(t *testing.T, prefix string) (*fakeService, *httptest.Server, *obs.Panics) {
	t.Helper()
	svc := &fakeService{}
	panics := obs.NewPanics(nil)
	a, err := New(Options{Service: svc, PathPrefix: prefix, MaxRequestBytes: 4096, Panics: panics})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return svc, srv, panics
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const goodCreds = `[{Id:"AAAAAAAA-1111-2222-3333-444444444444",UserName:"u",Password:"p:}\"",ServiceUrl:"imap.example.com",Port:993,` +
	`ServerTypeId:"844f0837-eaa0-4f40-b965-71f5db9eae6e",UseSsl:true,SecureOption:2,FolderIds:[],Context:"{UserRequested:true}",` +
	`BpmEndpoint:"http://crm/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",Unknown:{x:[1,2]}}]`

func TestStatusAndExists(t *testing.T) {
	_, srv, _ := newTestAPI(t, "")
	for _, p := range []string{"/api/listeners/status", "/api/listeners/exists", "/API/Listeners/Status"} {
		code, body := do(t, "GET", srv.URL+p, "")
		var st map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["ServiceStatus"] != "Started" || st["Version"] != "1.2.3" {
			t.Errorf("GET %s = %d %s", p, code, body)
		}
	}
}

func TestRegisterModesAndPrefix(t *testing.T) {
	svc, srv, _ := newTestAPI(t, "/exchangelistener")
	for i, p := range []string{"/api/listeners/create", "/exchangelistener/api/listeners/recreate", "/ExchangeListener/api/listeners/update"} {
		if code, body := do(t, "POST", srv.URL+p, goodCreds); code != 200 {
			t.Fatalf("POST %s = %d %s", p, code, body)
		}
		if svc.modes[i] != mail.Mode(i) {
			t.Errorf("%s: mode %v", p, svc.modes[i])
		}
	}
	mb := svc.subs[0]
	if mb.ID != "aaaaaaaa-1111-2222-3333-444444444444" || mb.Password != `p:}"` || mb.Host != "imap.example.com" || mb.Port != 993 ||
		mb.Secure != mail.SecureSSL || mb.Context != "{UserRequested:true}" {
		t.Errorf("decoded mailbox = %+v", mb)
	}
}

func TestBadInputIsA4xxWithAClearJSONError(t *testing.T) {
	cases := []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"not json", "/api/listeners/create", "hello", 400, "invalid JSON"},
		{"empty", "/api/listeners/create", "", 400, "empty"},
		{"object not array", "/api/listeners/create", `{Id:"x"}`, 400, ""},
		{"wrong type", "/api/listeners/create", `[{Id:"x",Port:"abc"}]`, 400, "Port"},
		{"missing id", "/api/listeners/create", `[{UserName:"u"}]`, 400, "Id"},
		{"unsupported server type", "/api/listeners/create", `[{Id:"x",ServerTypeId:"00000000-0000-0000-0000-000000000000"}]`, 400, "server type"},
		{"ids not strings", "/api/listeners/close", `[1,2]`, 400, ""},
		{"state body garbage", "/api/listeners/subscriptionsstate", `[`, 400, ""},
		{"too large", "/api/listeners/create", "[" + strings.Repeat(" ", 5000) + "]", 413, ""},
		{"not implemented yet", "/api/mailbox/validate", `{}`, 501, "not supported"},
		{"unknown path", "/api/nothing", `{}`, 404, "no such endpoint"},
		{"wrong method", "/api/listeners/status", ``, 404, "DELETE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc, srv, panics := newTestAPI(t, "")
			method := "POST"
			if c.name == "wrong method" {
				method = "DELETE"
			}
			code, body := do(t, method, srv.URL+c.path, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, body)
			}
			if c.code != 405 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Fatalf("body is not a JSON error: %q", body)
				}
				if !strings.Contains(strings.ToLower(e.Error), strings.ToLower(c.want)) {
					t.Errorf("error %q does not mention %q", e.Error, c.want)
				}
			}
			if len(svc.subs) != 0 {
				t.Errorf("a refused request subscribed %d mailboxes", len(svc.subs))
			}
			if panics.Count("httpapi") != 0 {
				t.Error("handler panicked")
			}
		})
	}
}

// A batch with one bad element starts nothing.
func TestNoHalfCreatedBatch(t *testing.T) {
	svc, srv, _ := newTestAPI(t, "")
	body := `[{Id:"ok-1",ServiceUrl:"h"},{Id:"",ServiceUrl:"h"}]`
	if code, _ := do(t, "POST", srv.URL+"/api/listeners/create", body); code != 400 {
		t.Fatalf("status %d", code)
	}
	if len(svc.subs) != 0 {
		t.Fatalf("subscribed %v", svc.subs)
	}
}

func TestCloseAndStates(t *testing.T) {
	svc, srv, _ := newTestAPI(t, "")
	if code, body := do(t, "POST", srv.URL+"/api/listeners/close", `["A-1","b-2","unknown"]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if len(svc.closed) != 3 {
		t.Errorf("closed %v", svc.closed)
	}
	code, body := do(t, "POST", srv.URL+"/api/listeners/subscriptionsstate", `["x1","x2"]`)
	var st map[string]map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st["x1"]["State"] != "exists" || st["x2"]["Delivered"] != float64(3) {
		t.Errorf("%d %s", code, body)
	}
}

type panicService struct{ *fakeService }

func (panicService) Status(context.Context) creatio.ServiceStatus { panic("boom") }

func TestPanicBecomes500(t *testing.T) {
	panics := obs.NewPanics(nil)
	a, _ := New(Options{Service: panicService{&fakeService{}}, Panics: panics})
	srv := httptest.NewServer(a)
	defer srv.Close()
	code, body := do(t, "GET", srv.URL+"/api/listeners/status", "")
	if code != 500 || !strings.Contains(body, "internal error") {
		t.Errorf("%d %s", code, body)
	}
	if panics.Count("httpapi") != 1 {
		t.Errorf("panic not counted")
	}
}
