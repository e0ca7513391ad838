// SPDX-License-Identifier: Apache-2.0

package cluster

import (
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Kind: EventSubscribe, Mode: mail.ModeCreate, ID: "a"},
		{Kind: EventSubscribe, Mode: mail.ModeRecreate, ID: "id:with:colons"},
		{Kind: EventSubscribe, Mode: mail.ModeUpdate, ID: "5f0c…"},
		{Kind: EventClose, ID: "b:c"},
	} {
		got, ok := ParseEvent(e.String())
		if !ok || got != e {
			t.Errorf("ParseEvent(%q) = %+v %v, want %+v", e.String(), got, ok, e)
		}
	}
	for _, bad := range []string{EventNodes, Resync, "", "sub:", "sub:9:x", "sub:x:y", "sub:1:", "close:", "mailbox:x"} {
		if e, ok := ParseEvent(bad); ok {
			t.Errorf("ParseEvent(%q) = %+v", bad, e)
		}
	}
}
