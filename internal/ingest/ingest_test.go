// SPDX-License-Identifier: Apache-2.0

package ingest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

type refused struct{}

func (refused) Error() string          { return "400" }
func (refused) PermanentFailure() bool { return true }

func TestRun(t *testing.T) {
	arrived := time.Date(2026, 12, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	var got *mail.Message
	deliverErr := error(nil)
	s := Step{
		Parse: func(raw []byte) (*mail.Message, error) {
			if string(raw) == "garbage" {
				return nil, errors.New("not mail")
			}
			return &mail.Message{MessageID: "<a@b>"}, nil
		},
		Deliver: func(_ context.Context, _ *mail.Mailbox, m *mail.Message) error { got = m; return deliverErr },
	}
	log := slog.New(slog.DiscardHandler)
	mb := &mail.Mailbox{ID: "m"}
	// Delivered, fixed up.
	skip, err := s.Run(context.Background(), log, mb, &source.Fetched{Raw: []byte("x"), Date: arrived, Truncated: true})
	if skip != "" || err != nil || !got.Date.Equal(arrived) || got.Date.Location() != time.UTC || len(got.Warnings) != 1 {
		t.Fatalf("delivered: %q %v %+v", skip, err, got)
	}
	// Unparseable: skipped, nothing delivered.
	got = nil
	if skip, err := s.Run(context.Background(), log, mb, &source.Fetched{Raw: []byte("garbage")}); skip != SkipUnparseable || err != nil || got != nil {
		t.Fatalf("unparseable: %q %v", skip, err)
	}
	// Refused for good: skipped.
	deliverErr = refused{}
	if skip, err := s.Run(context.Background(), log, mb, &source.Fetched{Raw: []byte("x")}); skip != SkipRejected || err != nil {
		t.Fatalf("refused: %q %v", skip, err)
	}
	// Anything else: returned, not skipped.
	deliverErr = errors.New("503")
	if skip, err := s.Run(context.Background(), log, mb, &source.Fetched{Raw: []byte("x")}); skip != "" || err == nil {
		t.Fatalf("temporary: %q %v", skip, err)
	}
}
