// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The native API gets /v1/ (lower-cased, under the prefix too) with the
// guards of the other routes; the rest still ends in the 404 fallback.
func TestV1Mounted(t *testing.T) {
	var got []string
	v1 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	a, err := New(Options{Service: &fakeService{}, PathPrefix: "/el", MaxRequestBytes: 64, V1: v1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	send := func(method, path, ctype, body string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path, ctype, body string
		want                      int
	}{
		{"GET", "/v1/accounts", "", "", http.StatusTeapot},
		{"GET", "/EL/V1/accounts/aBc", "", "", http.StatusTeapot}, // the prefix and /v1/ in any case, the rest as is
		{"POST", "/v1/accounts/x/send", "message/rfc822", "Subject: x\r\n\r\nx", http.StatusTeapot},
		{"POST", "/v1/accounts/x/send", "application/json", "{}", http.StatusTeapot},
		{"POST", "/v1/accounts/x/send", "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"POST", "/v1/accounts", "message/rfc822", "{}", http.StatusUnsupportedMediaType},
		{"PATCH", "/v1/accounts/x", "application/json", "{}", http.StatusTeapot},
		{"DELETE", "/v1/accounts/x", "", "", http.StatusTeapot},
		{"POST", "/v1/accounts", "application/json", "{}", http.StatusTeapot},
		{"POST", "/v1/accounts", "text/plain", "{}", http.StatusUnsupportedMediaType},
		{"POST", "/v1/accounts", "application/json", strings.Repeat("x", 65), http.StatusRequestEntityTooLarge},
		{"GET", "/v2/accounts", "", "", http.StatusNotFound},
	} {
		if code := send(c.method, c.path, c.ctype, c.body); code != c.want {
			t.Errorf("%s %s (%s): %d, want %d", c.method, c.path, c.ctype, code, c.want)
		}
	}
	want := []string{"GET /v1/accounts", "GET /v1/accounts/aBc", "POST /v1/accounts/x/send", "POST /v1/accounts/x/send",
		"PATCH /v1/accounts/x", "DELETE /v1/accounts/x", "POST /v1/accounts"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the handler saw %v, want %v", got, want)
	}
	// Without V1, /v1/ is the 404 fallback.
	_, plain, _ := newTestAPI(t, "")
	resp, err := http.Get(plain.URL + "/v1/accounts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("without V1: %d", resp.StatusCode)
	}
}
