// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"reflect"
	"testing"
	"time"
)

func TestSyncFilter(t *testing.T) {
	jan1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		cmd  SyncEmailsCommand
		want SyncFilter
	}{
		{"empty", SyncEmailsCommand{}, SyncFilter{}},
		{"exchange ticks", SyncEmailsCommand{Filters: "639028224000000000"}, SyncFilter{Since: jan1}},
		{"exchange zero", SyncEmailsCommand{Filters: "0"}, SyncFilter{}},
		{"7.15 timestamp", SyncEmailsCommand{SyncSinceTimeStamp: 639028224000000000}, SyncFilter{Since: jan1}},
		{"uid based", SyncEmailsCommand{Filters: "UNDRAFT UNDELETED SENTSINCE 01-Jan-2026"},
			SyncFilter{Since: jan1, SentDate: true, Undraft: true, Undeleted: true}},
		{"date based", SyncEmailsCommand{Filters: "undraft undeleted since 1-Jan-2026"},
			SyncFilter{Since: jan1, Undraft: true, Undeleted: true}},
		{"flag based since", SyncEmailsCommand{Filters: "UNDRAFT UNDELETED UNKEYWORD 5d1f0e0a6b2c4f6e SINCE 01-Jan-2026"},
			SyncFilter{Since: jan1, WithoutKeyword: "5d1f0e0a6b2c4f6e", Undraft: true, Undeleted: true}},
		{"uid range", SyncEmailsCommand{Filters: "UID 42:*"}, SyncFilter{UIDFrom: 42}},
		{"unknown and broken", SyncEmailsCommand{Filters: "FLAGGED SINCE yesterday UID 1:5 UNKEYWORD"},
			SyncFilter{Ignored: []string{"FLAGGED", "SINCE", "yesterday", "UID", "1:5", "UNKEYWORD"}}},
	}
	for _, tt := range tests {
		if got := tt.cmd.Filter(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Filter() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestDecodeSyncEmailsCommand(t *testing.T) {
	var cmd SyncEmailsCommand
	body := `{"Credentials":{"Id":"x","ServerTypeId":"3490bd45-4f4d-4613-aa06-454546f3342a","FolderIds":[]},"Filters":"639028224000000000"}`
	if err := Decode([]byte(body), &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Credentials.ID != "x" || cmd.Filter().Since.IsZero() {
		t.Fatalf("got %+v", cmd)
	}
}
