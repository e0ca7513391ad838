// SPDX-License-Identifier: Apache-2.0

package hostile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// creatioOutage: Creatio answers 500 to every ProcessFullEmail while mail
// keeps arriving in many mailboxes. Memory stays bounded (each mailbox holds
// at most the message it is retrying), and once Creatio recovers every email
// is delivered, each once.
func (s *suite) creatioOutage(t *testing.T) {
	n := s.sz.outageBoxes
	mbs := make([]mailbox, n)
	ids := make([]string, n)
	for i := range mbs {
		ids[i] = fmt.Sprintf("outage-%04d", i)
		mbs[i] = mailbox{ID: ids[i], User: fmt.Sprintf("outage%d@example.com", i), Addr: s.dc.IMAPAddr}
	}
	s.create(t, "/api/listeners/create", mbs)
	took := s.waitExists(t, ids, 3*time.Minute)
	t.Logf("%d mailboxes exists after %v", n, took.Round(time.Millisecond))

	s.col.SetFailure(testenv.OpProcessFullEmail, 500)
	start := time.Now()
	const perBox = 2
	var peakDuring float64
	for round := range perBox {
		gather(n, 8, func(i int) {
			raw := fmt.Appendf(nil, "From: a@example.com\r\nTo: %s\r\nSubject: outage %d %d\r\nMessage-ID: <outage-%d-%d@example.com>\r\n"+
				"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n%s\r\n", mbs[i].User, i, round, i, round, strings.Repeat("text of the email ", 100))
			if _, err := s.dc.DeliverFile(mbs[i].User, "INBOX", raw); err != nil {
				t.Error(err)
			}
		})
		for time.Since(start) < time.Duration(round+1)*s.sz.outage/perBox {
			peakDuring = max(peakDuring, s.rssMiB(t))
			s.alive(t)
			time.Sleep(time.Second)
		}
	}
	failed := len(s.col.Requests(testenv.OpProcessFullEmail))
	s.col.ClearFailure(testenv.OpProcessFullEmail)
	recovered := time.Now()
	deadline := recovered.Add(3 * time.Minute)
	var got map[string]int
	for {
		got = map[string]int{}
		for _, e := range s.col.Emails() {
			if subj, _ := e.Data["Subject"].(string); strings.HasPrefix(subj, "outage ") {
				got[subj]++
			}
		}
		if len(got) == n*perBox || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	t.Logf("FIGURE Creatio failing %v while %d emails arrived in %d mailboxes: %d refused attempts, peak RSS during %.1f MiB; "+
		"after recovery %d of %d delivered in %v, %d duplicates",
		s.sz.outage, n*perBox, n, failed, peakDuring, len(got), n*perBox, time.Since(recovered).Round(time.Millisecond), dups)
	if len(got) != n*perBox {
		t.Fatalf("%d of %d emails delivered after the outage", len(got), n*perBox)
	}
	if dups > 0 {
		t.Errorf("%d duplicates", dups)
	}
	s.close(t, ids)
}
