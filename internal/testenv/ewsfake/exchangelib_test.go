// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// systemPython is Debian's interpreter, the one python3-exchangelib is installed
// for; a python3 earlier on PATH (pyenv) lacks the package.
const systemPython = "/usr/bin/python3"

// conformanceResult is what testdata/exchangelib_conformance.py reports.
type conformanceResult struct {
	ImportError           string            `json:"import_error"`
	Version               string            `json:"exchangelib_version"`
	Errors                map[string]string `json:"errors"`
	Folders               []string          `json:"folders"`
	MsgFolderRootChildren []string          `json:"msg_folder_root_children"`
	InboxTotalCount       int               `json:"inbox_total_count"`
	SyncInitial           [][]any           `json:"sync_initial"`
	StreamEvents          []string          `json:"stream_events"`
	FetchedSubject        string            `json:"fetched_subject"`
	FetchedMIMESHA256     string            `json:"fetched_mime_sha256"`
	FetchedMessageID      string            `json:"fetched_message_id"`
	SyncIncremental       [][]any           `json:"sync_incremental"`
	FindRecent            []string          `json:"find_recent"`
	Categories            []string          `json:"categories"`
	NTLMInboxTotalCount   int               `json:"ntlm_inbox_total_count"`
	MoveChangedID         bool              `json:"move_changed_id"`
	JunkCount             int               `json:"junk_count"`
	FetchDeleted          string            `json:"fetch_deleted"`
	PullEvents            []string          `json:"pull_events"`
	ImpersonatedTotal     int               `json:"impersonated_inbox_total"`
	ImpersonatedEvents    []string          `json:"impersonated_stream_events"`
}

// TestExchangelibConformance runs exchangelib, a widely used real EWS client,
// against the fake: whatever it sends, the fake must understand, and whatever the
// fake answers, it must accept. A missing interpreter or package fails the test
// (scripts/install-test-deps.sh installs python3-exchangelib): a skipped
// conformance test would count as passing.
func TestExchangelibConformance(t *testing.T) {
	if _, err := os.Stat(systemPython); err != nil {
		t.Fatalf("%s not found (%v); run scripts/install-test-deps.sh", systemPython, err)
	}
	const (
		me       = "alice@ewsfake.test"
		peer     = "bob@ewsfake.test"
		password = "Secr3t!"
		subject  = "conformance delivery"
	)
	s := NewT(t, Options{
		ServiceAccount:     `EWSFAKE\svc-ews`,
		ServicePassword:    "Svc-pa55",
		TLS:                true,
		Heartbeat:          200 * time.Millisecond,
		ConnectionLifetime: 15 * time.Second,
		Trace:              os.Getenv("EWSFAKE_TRACE") != "",
	})
	mustOK(t, s.AddMailbox(me, `EWSFAKE\alice`, password))
	mustOK(t, s.AddMailbox(peer, "", "other"))
	for i := range 3 {
		_, err := s.Deliver(me, "inbox", testMessage("existing "+string(rune('A'+i)), "carol@example.org", me))
		mustOK(t, err)
	}
	delivered := testMessage(subject, "dave@example.org", me)

	// TLS as in production; requests trusts the fake's self-signed CA through
	// REQUESTS_CA_BUNDLE (and requests_ntlm computes channel bindings from it).
	ca := filepath.Join(t.TempDir(), "ca.pem")
	mustOK(t, os.WriteFile(ca, s.CertPEM(), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "testdata/exchangelib_conformance.py")
	cmd.Env = append(os.Environ(),
		"EWS_URL="+s.URL(), "EWS_SMTP="+me, "EWS_USER="+me, "EWS_PASSWORD="+password,
		`EWS_NTLM_USER=EWSFAKE\alice`, "EWS_PEER="+peer, "EWS_SUBJECT="+subject,
		`EWS_SVC_USER=EWSFAKE\svc-ews`, "EWS_SVC_PASSWORD=Svc-pa55",
		"REQUESTS_CA_BUNDLE="+ca, "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	mustOK(t, err)
	mustOK(t, cmd.Start())
	var res conformanceResult
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "STEP":
			t.Logf("exchangelib: %s", rest)
		case "READY":
			// Deliver only once the stream is open, so the event travels live
			// rather than from the subscription's queue.
			waitFor(t, 10*time.Second, "stream to open", func() bool { return s.Stats().OpenStreams == 1 })
			_, err := s.Deliver(me, "inbox", delivered)
			mustOK(t, err)
		case "RESULT":
			mustOK(t, json.Unmarshal([]byte(rest), &res))
		default:
			t.Logf("exchangelib stdout: %s", sc.Text())
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exchangelib script: %v\n%s", err, stderr.String())
	}
	if res.ImportError != "" {
		t.Fatalf("exchangelib is not importable by %s (%s); run scripts/install-test-deps.sh", systemPython, res.ImportError)
	}
	if len(res.Errors) > 0 {
		for step, e := range res.Errors {
			t.Errorf("exchangelib step %s: %s", step, e)
		}
		t.Logf("stderr:\n%s", stderr.String())
	}
	t.Logf("exchangelib %s", res.Version)

	for _, want := range []string{"Inbox", "Sent Items", "Drafts", "Deleted Items", "Junk Email", "Outbox", "Calendar", "Contacts"} {
		if !slices.Contains(res.Folders, want) {
			t.Errorf("root walk %v lacks %q", res.Folders, want)
		}
	}
	if res.InboxTotalCount != 3 {
		t.Errorf("inbox total count = %d, want 3", res.InboxTotalCount)
	}
	if len(res.SyncInitial) != 3 {
		t.Errorf("initial sync = %v, want 3 creates", res.SyncInitial)
	}
	if !slices.Contains(res.StreamEvents, "NewMailEvent") || !slices.Contains(res.StreamEvents, "CreatedEvent") {
		t.Errorf("stream events = %v, want CreatedEvent and NewMailEvent", res.StreamEvents)
	}
	sum := sha256.Sum256(delivered)
	if res.FetchedSubject != subject || res.FetchedMIMESHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("fetched %q (MIME sha256 %s), want %q with the delivered bytes", res.FetchedSubject, res.FetchedMIMESHA256, subject)
	}
	if len(res.SyncIncremental) != 1 || res.SyncIncremental[0][0] != "create" || res.SyncIncremental[0][1] != subject {
		t.Errorf("incremental sync = %v, want one create of %q", res.SyncIncremental, subject)
	}
	if len(res.FindRecent) != 4 || res.FindRecent[0] != subject {
		t.Errorf("FindItem newest first = %v, want 4 items starting with %q", res.FindRecent, subject)
	}
	if !slices.Equal(res.Categories, []string{"Conformance"}) {
		t.Errorf("categories after UpdateItem = %v", res.Categories)
	}
	if !res.MoveChangedID || res.JunkCount != 1 || res.FetchDeleted != "ErrorItemNotFound" {
		t.Errorf("move/copy/delete: id changed %v, junk %d, fetch after delete %q", res.MoveChangedID, res.JunkCount, res.FetchDeleted)
	}
	if !slices.Contains(res.PullEvents, "CreatedEvent") {
		t.Errorf("pull events %v", res.PullEvents)
	}
	if res.ImpersonatedTotal != 1 || !slices.Contains(res.ImpersonatedEvents, "NewMailEvent") {
		t.Errorf("impersonating %s: inbox %d, events %v", peer, res.ImpersonatedTotal, res.ImpersonatedEvents)
	}
	// The inbox: 3 existing + the delivered one moved to junk and copied back + the
	// message saved by the pull step.
	if res.NTLMInboxTotalCount != 5 {
		t.Errorf("inbox total count over NTLM = %d, want 5", res.NTLMInboxTotalCount)
	}

	// Sent through CreateItem SendAndSaveCopy: recorded, copied to Sent Items and
	// delivered to the local recipient.
	sent, err := s.Sent(me)
	mustOK(t, err)
	if len(sent) != 2 || !bytes.Contains(sent[0], []byte("sent by exchangelib")) {
		t.Errorf("Sent(%s) = %d messages, want the one sent by exchangelib", me, len(sent))
	}
	copies, err := s.Items(me, "sentitems")
	mustOK(t, err)
	if len(copies) != 2 || copies[1].Subject != "sent by exchangelib" {
		t.Errorf("sentitems hold %d items", len(copies))
	}
	got, err := s.Items(peer, "inbox")
	mustOK(t, err)
	if len(got) != 2 || got[0].Subject != "to the peer" || got[1].Subject != "sent by exchangelib" {
		t.Errorf("peer inbox holds %d items", len(got))
	}
	if st := s.Stats(); st.Requests["unauthorized"] == 0 {
		t.Errorf("no 401 seen; NTLM handshake did not happen? stats %+v", st.Requests)
	}
}
