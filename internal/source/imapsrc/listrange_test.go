// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"testing"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// ListRange lists exactly the messages of its UID range, and ListAfter those
// above the cursor (also when the cursor is past the last message, where
// "n:*" would match the last one).
func TestListRangeDovecot(t *testing.T) {
	t.Parallel()
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{appendUser: appendPW}})
	for i := range 6 {
		if _, err := d.DeliverFile(appendUser, "INBOX", message(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	c := dialDovecot(t, d)
	if _, err := c.Examine(t.Context(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	refs, err := c.ListRange(t.Context(), 2, 4)
	if err != nil || len(refs) != 3 || refs[0].UID != 2 || refs[2].UID != 4 || refs[0].Size < 1000 || refs[0].Date.IsZero() {
		t.Fatalf("ListRange(2, 4) = %+v, %v", refs, err)
	}
	if refs, err := c.ListRange(t.Context(), 7, 100); err != nil || len(refs) != 0 {
		t.Fatalf("ListRange past the end = %+v, %v", refs, err)
	}
	if refs, err := c.ListAfter(t.Context(), 6); err != nil || len(refs) != 0 {
		t.Fatalf("ListAfter(6) = %+v, %v", refs, err)
	}
	if refs, err := c.ListAfter(t.Context(), 4); err != nil || len(refs) != 2 || refs[0].UID != 5 {
		t.Fatalf("ListAfter(4) = %+v, %v", refs, err)
	}
	if _, err := c.ListRange(t.Context(), 5, 4); err == nil {
		t.Fatal("an empty range accepted")
	}
}
