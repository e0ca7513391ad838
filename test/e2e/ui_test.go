// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/emaillistener/emaillistener/internal/config"
)

// chromiumPath is Debian's chromium, installed by scripts/install-test-deps.sh.
const chromiumPath = "/usr/bin/chromium"

// uiRow is one mailbox row as the browser shows it.
type uiRow struct {
	ID, State, Text, Class string
}

// TestDashboard loads the dashboard in headless Chromium against the running
// service: two mailboxes in exists, one with a wrong password in error, the
// admin token required; the rows, the error class and the text filter are
// checked in the rendered page.
func TestDashboard(t *testing.T) {
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s: run scripts/install-test-deps.sh (or apt-get install -y chromium): %v", chromiumPath, err)
	}
	const token = "dash-Token-5f1c0d2e9a"
	e := newEnv(t, func(c *config.Config) {
		c.AdminToken = token
		c.NodeID = "node-1"
	})
	const alice, bob, carol = "ui-alice-0001", "ui-bob-0002", "ui-carol-0003"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: alice, User: "alice@example.com", Password: "alicepw"}))
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: bob, User: "bob@example.com", Password: "bobpw", Folders: []string{"INBOX"}}))
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: carol, User: "carol@example.com", Password: wrongPassword}))
	e.waitState(alice, "exists", 10*time.Second)
	e.waitState(bob, "exists", 10*time.Second)
	bad := e.waitState(carol, "error", 10*time.Second)
	class, _ := bad["ErrorClass"].(string)
	if class == "" {
		t.Fatalf("no error class in %v", bad)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("dashboard-1", "dashboard-1@example.com"))
	e.waitEmails("dashboard-1", 1, 10*time.Second)

	// Without the token: 401 for the page, its data and the cluster view.
	for _, path := range []string{"/ui/", "/ui/api/overview", "/api/cluster"} {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "EL_ADMIN_TOKEN") {
			t.Errorf("GET %s without the token: %d %s", path, resp.StatusCode, b)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1500, 800),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first call starts the browser, on a context without a deadline
	// (a deadline there would stop the browser); each step gets its own.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	step := func() context.Context {
		ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	rowsJS := `Array.from(document.querySelectorAll("#mailboxes tbody tr[data-id]")).map(function (tr) {
		var c = tr.querySelector(".eclass");
		return {ID: tr.dataset.id, State: tr.dataset.state, Text: tr.innerText, Class: c ? c.textContent : ""};
	})`
	rows := func() []uiRow {
		out, err := chromedp.Run(step(), chromedp.Evaluate[[]uiRow](rowsJS))
		if err != nil {
			t.Fatalf("read rows: %v", err)
		}
		return out
	}
	waitRows := func(what string, ok func([]uiRow) bool) []uiRow {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := rows()
			if ok(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rows %+v", what, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if err := chromedp.Do(step(),
		chromedp.Navigate(e.base+"/ui/?token="+token),
		chromedp.WaitVisible(`#mailboxes tbody tr[data-id]`),
	); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	location, err := chromedp.Run(step(), chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(location, token) || !strings.HasSuffix(location, "/ui/") {
		t.Errorf("the page is at %s: the token must leave the address", location)
	}
	got := waitRows("three mailboxes", func(r []uiRow) bool { return len(r) == 3 })
	want := map[string]string{alice: "exists", bob: "exists", carol: "error"}
	for _, r := range got {
		if want[r.ID] != r.State {
			t.Errorf("row %s: state %q, want %q", r.ID, r.State, want[r.ID])
		}
		switch r.ID {
		case carol:
			if r.Class != class || !strings.Contains(r.Text, "carol@example.com") || !strings.Contains(r.Text, "in ") {
				t.Errorf("error row %+v: want class %q, the address and the retry time", r, class)
			}
		case alice:
			if !strings.Contains(r.Text, "alice@example.com") || !strings.Contains(r.Text, "ago") || r.Class != "" {
				t.Errorf("alice's row %+v: want the address and the last delivery's age", r)
			}
		}
	}
	if got[0].ID != carol {
		t.Errorf("the error row is not first: %+v", got)
	}
	nodes, err := chromedp.Run(step(), chromedp.Text("#nodes tbody"))
	if err != nil {
		t.Fatal(err)
	}
	counts, err := chromedp.Run(step(), chromedp.Text("#counts"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nodes, "node-1") || !strings.Contains(nodes, "3 / 10000") {
		t.Errorf("nodes table: %q", nodes)
	}
	if !strings.Contains(counts, "3 registered: 2 exists") || !strings.Contains(counts, "1 error") {
		t.Errorf("counts: %q", counts)
	}

	shot, err := chromedp.Run(step(), chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "dashboard.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		dst = filepath.Join("..", "..", "docs", "dashboard.png")
	}
	if err := os.WriteFile(dst, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || len(shot) < 10_000 || img.Bounds().Dx() < 800 || img.Bounds().Dy() < 300 {
		t.Errorf("screenshot: %d bytes, %v, %v", len(shot), err, img)
	}
	t.Logf("screenshot: %s (%d bytes)", dst, len(shot))

	// The text filter keeps only the matching row; the state filter too.
	if err := chromedp.Do(step(), chromedp.SendKeys("#filter", "bob@")); err != nil {
		t.Fatal(err)
	}
	waitRows("filter bob@", func(r []uiRow) bool { return len(r) == 1 && r[0].ID == bob && r[0].State == "exists" })
	if err := chromedp.Do(step(), chromedp.Evaluate[chromedp.Void](`void (function () {
		document.getElementById("filter").value = "";
		var s = document.getElementById("state");
		s.value = "error";
		s.dispatchEvent(new Event("change"));
	})()`)); err != nil {
		t.Fatal(err)
	}
	waitRows("state error", func(r []uiRow) bool { return len(r) == 1 && r[0].ID == carol })

	// The JSON behind the page, with the Bearer token.
	req, _ := http.NewRequest(http.MethodGet, e.base+"/ui/api/overview?q=example.com&limit=2", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ov struct {
		Total, Matched int
		Mailboxes      []struct{ ID, State, ErrorClass string }
	}
	err = json.NewDecoder(resp.Body).Decode(&ov)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || ov.Total != 3 || ov.Matched != 3 || len(ov.Mailboxes) != 2 ||
		ov.Mailboxes[0].ID != carol || ov.Mailboxes[0].ErrorClass != class {
		t.Errorf("overview: %d %v %+v", resp.StatusCode, err, ov)
	}
	if strings.Contains(e.logs.String(), token) {
		t.Error("the admin token reached the log")
	}
}
