// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// webhookReceiver is a native client's webhook: it checks every request's
// signature with its own Standard Webhooks verifier, and answers 500 while
// failing is set.
type webhookReceiver struct {
	t      *testing.T
	key    []byte
	mu     sync.Mutex
	fail   bool
	acked  map[string]int // 2xx answers per webhook-id
	events []map[string]any
	failed int // 500 answers
	bad    []string
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	id, ts, sig := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	r.mu.Lock()
	defer r.mu.Unlock()
	mac := hmac.New(sha256.New, r.key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	sec, _ := strconv.ParseInt(ts, 10, 64)
	switch {
	case err != nil:
		r.bad = append(r.bad, "body: "+err.Error())
	case id == "" || !hmac.Equal([]byte(sig), []byte(want)):
		r.bad = append(r.bad, fmt.Sprintf("bad signature %q for id %q ts %q", sig, id, ts))
	case time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute:
		r.bad = append(r.bad, "stale timestamp "+ts)
	}
	if r.fail {
		r.failed++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev["id"] != id {
		r.bad = append(r.bad, fmt.Sprintf("event %s: %v", body, err))
	}
	r.acked[id]++
	if r.acked[id] == 1 {
		r.events = append(r.events, ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// newWebhookReceiver starts a receiver on 127.0.0.1 with a new whsec_
// secret; it returns the receiver, the secret and the webhook URL.
func newWebhookReceiver(t *testing.T) (*webhookReceiver, string, string) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	recv := &webhookReceiver{t: t, key: key, acked: map[string]int{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	return recv, "whsec_" + base64.StdEncoding.EncodeToString(key), srv.URL + "/hook"
}

func (r *webhookReceiver) setFail(v bool) {
	r.mu.Lock()
	r.fail = v
	r.mu.Unlock()
}

// apiCall calls the native API with a token; it returns the status, the
// body and the headers.
func apiCall(t *testing.T, base, token, method, path, ctype, body string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// apiJSON is apiCall with a JSON body and answer (an object; nil when the
// answer is not one).
func apiJSON(t *testing.T, base, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, b, _ := apiCall(t, base, token, method, path, "application/json", body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return code, out
}

// waitFor waits until n distinct acknowledged events match.
func (r *webhookReceiver) waitFor(what string, n int, within time.Duration, match func(ev map[string]any) bool) []map[string]any {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got []map[string]any
		r.mu.Lock()
		for _, ev := range r.events {
			if match(ev) {
				got = append(got, ev)
			}
		}
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d webhook events %s, want %d", len(got), what, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvents waits for n distinct acknowledged events.
func (r *webhookReceiver) waitEvents(n int, within time.Duration) []map[string]any {
	r.t.Helper()
	return r.waitFor("of any type", n, within, func(map[string]any) bool { return true })
}

func TestNativeAccountWebhooks(t *testing.T) {
	const apiToken = "e2e-native-api-token-0123456789"
	e := newEnv(t, func(c *config.Config) { c.APITokens = config.Secret("e2e:" + apiToken) })
	recv, secret, hookURL := newWebhookReceiver(t)
	t.Cleanup(func() {
		for _, s := range []string{apiToken, secret} {
			if strings.Contains(e.logs.String(), s) {
				t.Errorf("the service logged a secret")
			}
		}
	})

	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return apiJSON(t, e.base, apiToken, method, path, body)
	}

	// Without a token the API refuses; the document is public.
	if resp, err := http.Get(e.base + "/v1/accounts"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp, err)
	}
	if resp, err := http.Get(e.base + "/v1/openapi.json"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %v %v", resp, err)
	}

	host, port, _ := strings.Cut(e.dc.IMAPAddr, ":")
	body, _ := json.Marshal(map[string]any{
		"id": "alice-native", "email": "alice@example.com",
		"imap":    map[string]any{"host": host, "port": json.Number(port), "secure": "none", "password": "alicepw"},
		"folders": []string{"INBOX"},
		// Only new emails: the account.state events are left out.
		"webhook": map[string]any{"url": hookURL, "secret": secret, "events": []string{"message.new"}},
	})
	code, acc := call("POST", "/v1/accounts", string(body))
	if code != http.StatusCreated || acc["id"] != "alice-native" {
		t.Fatalf("create: %d %v", code, acc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, acc = call("GET", "/v1/accounts/alice-native", "")
		if code == http.StatusOK && acc["state"] == "exists" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account: %d %v", code, acc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The Creatio route sees the same registration.
	if st := e.state("alice-native"); st["State"] != "exists" {
		t.Fatalf("subscriptionsstate: %v", st)
	}
	// Validate and folders log in with the account's credentials.
	if code, v := call("POST", "/v1/accounts/alice-native/validate", "{}"); code != http.StatusOK || v["valid"] != true {
		t.Fatalf("validate: %d %v", code, v)
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/v1/accounts/alice-native/folders", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var folders []map[string]any
	err = json.NewDecoder(resp.Body).Decode(&folders)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(folders) == 0 || folders[0]["id"] != "INBOX" {
		t.Fatalf("folders: %d %v %v", resp.StatusCode, folders, err)
	}

	for i := 1; i <= 3; i++ {
		e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail(fmt.Sprintf("native %d", i), fmt.Sprintf("native-%d@example.com", i)))
	}
	events := recv.waitEvents(3, 10*time.Second)
	for _, ev := range events {
		msg, _ := ev["message"].(map[string]any)
		if ev["type"] != "message.new" || ev["account"] != "alice-native" || ev["folder"] != "INBOX" ||
			!strings.HasPrefix(fmt.Sprint(msg["subject"]), "native ") || !strings.Contains(fmt.Sprint(msg["text"]), "body of native") {
			t.Fatalf("event %v", ev)
		}
	}

	// The webhook fails for a minute while two more emails arrive: nothing
	// is lost, nothing is acknowledged twice.
	recv.setFail(true)
	for i := 4; i <= 5; i++ {
		e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail(fmt.Sprintf("native %d", i), fmt.Sprintf("native-%d@example.com", i)))
	}
	time.Sleep(time.Minute)
	recv.setFail(false)
	recv.waitEvents(5, 10*time.Second)
	time.Sleep(500 * time.Millisecond) // a duplicate would come now

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.failed == 0 {
		t.Error("the webhook was not called while failing")
	}
	if len(recv.bad) > 0 {
		t.Errorf("bad requests: %v", recv.bad)
	}
	subjects := map[string]int{}
	for _, ev := range recv.events {
		msg, _ := ev["message"].(map[string]any)
		subjects[fmt.Sprint(msg["subject"])]++
	}
	for i := 1; i <= 5; i++ {
		if n := subjects[fmt.Sprintf("native %d", i)]; n != 1 {
			t.Errorf("email %d delivered %d times", i, n)
		}
	}
	for id, n := range recv.acked {
		if n != 1 {
			t.Errorf("event %s acknowledged %d times", id, n)
		}
	}
	if len(recv.events) != 5 {
		t.Errorf("%d events, want 5", len(recv.events))
	}
	// Nothing went to Creatio.
	if n := len(e.emails("native")); n != 0 {
		t.Errorf("%d emails posted to Creatio", n)
	}
}

// TestClusterNativeAccounts: accounts created through one node are read,
// changed and deleted through another, and their mail reaches the webhook
// from whichever node holds them.
func TestClusterNativeAccounts(t *testing.T) {
	const apiToken = "e2e-cluster-native-token-012345"
	r := testenv.NewRedisT(t, testenv.RedisOptions{})
	dc := testenv.NewT(t, testenv.DovecotOptions{AnyPassword: "pw", ExtraConf: "mail_fsync = never"})
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	tokens := func(c *config.Config) { c.APITokens = config.Secret("e2e:" + apiToken) }
	a := startNode(t, "node-a", r, dc, key, tokens)
	b := startNode(t, "node-b", r, dc, key, tokens)
	recv := &webhookReceiver{t: t, key: []byte("cluster-secret-0123456789"), acked: map[string]int{}}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	call := func(n *clusterNode, method, path, body string) (int, map[string]any) {
		t.Helper()
		return apiJSON(t, n.base, apiToken, method, path, body)
	}

	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	const n = 6
	for i := range n {
		body := fmt.Sprintf(`{"id":"acc-%d","email":"n%d@example.com","imap":{"host":%q,"port":%s,"secure":"none","password":"pw"},
			"folders":["INBOX"],"webhook":{"url":%q,"secret":"cluster-secret-0123456789","events":["message.new"]}}`, i, i, host, port, hook.URL)
		if code, out := call(a, "POST", "/v1/accounts", body); code != http.StatusCreated {
			t.Fatalf("create through node-a: %d %v", code, out)
		}
	}
	nodes := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		code, acc := call(b, "GET", fmt.Sprintf("/v1/accounts/acc-%d", i), "")
		if code == http.StatusOK && acc["state"] == "exists" {
			nodes[fmt.Sprint(acc["status"].(map[string]any)["node"])]++
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("acc-%d through node-b: %d %v", i, code, acc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if nodes["node-a"] == 0 || nodes["node-b"] == 0 {
		t.Fatalf("accounts by node: %v", nodes)
	}
	if code, out := call(b, "GET", "/v1/accounts", ""); code != http.StatusOK || len(out["accounts"].([]any)) != n {
		t.Fatalf("list through node-b: %d %v", code, out)
	}
	for i := range n {
		if _, err := dc.Append(fmt.Sprintf("n%d@example.com", i), "pw", "INBOX", simpleMail(fmt.Sprintf("cluster %d", i), fmt.Sprintf("c%d@x", i))); err != nil {
			t.Fatal(err)
		}
	}
	recv.waitEvents(n, 20*time.Second)
	// A change through node-b reaches whichever node runs the account.
	if code, out := call(b, "PATCH", "/v1/accounts/acc-0", `{"webhook":{"events":["message.new","account.state"]}}`); code != http.StatusOK {
		t.Fatalf("patch through node-b: %d %v", code, out)
	}
	recv.waitFor("account.state of acc-0", 1, 20*time.Second, func(ev map[string]any) bool {
		return ev["account"] == "acc-0" && ev["type"] == "account.state"
	})
	if code, _ := call(b, "DELETE", "/v1/accounts/acc-1", ""); code != http.StatusNoContent {
		t.Fatalf("delete through node-b: %d", code)
	}
	if code, _ := call(a, "GET", "/v1/accounts/acc-1", ""); code != http.StatusNotFound {
		t.Fatalf("deleted account through node-a: %d", code)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.bad) > 0 {
		t.Errorf("bad requests: %v", recv.bad)
	}
}
