// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SubscriptionStateOf renders one mailbox's entry of subscriptionsstate
// (docs/CREATIO-PROTOCOL.md §7.1). st is the subscription's status, nil when
// no node serves the mailbox; hist is its last history load, nil if none.
// Everything beyond State is diagnostics for operators; Creatio reads State
// only.
//
// A stale status (published by a process that no longer serves the mailbox,
// mail.Status.Stale) is reported as closed with what was last known, so that
// Creatio's failover job re-creates the mailbox.
func SubscriptionStateOf(st *mail.Status, hist *mail.HistoryProgress) SubscriptionState {
	extra := map[string]any{}
	if hist != nil {
		extra["History"] = historyJSON(*hist)
	}
	switch {
	case st == nil || st.State == mail.StateClosed:
		return SubscriptionState{State: mail.StateClosed, Extra: nilIfEmpty(extra)}
	case st.Stale:
		extra["LastKnownState"], extra["LastKnownNode"] = st.State, st.Node
		extra["Note"] = "no live node holds this mailbox"
		return SubscriptionState{State: mail.StateClosed, Extra: extra}
	}
	extra["Since"] = st.Since.UTC().Format(time.RFC3339)
	extra["Delivered"] = st.Delivered
	extra["Folders"] = st.Folders
	if st.Node != "" {
		extra["Node"] = st.Node
	}
	if st.Transport != "" {
		extra["Transport"] = st.Transport
	}
	if st.Push != "" {
		extra["Push"] = st.Push
	}
	if !st.LastEventAt.IsZero() {
		extra["LastEventTime"] = st.LastEventAt.UTC().Format(time.RFC3339)
	}
	if st.State == mail.StateError {
		extra["ErrorClass"] = st.ErrorClass
		extra["ExceptionClassName"] = ExceptionClassName(st.Kind, mail.ErrorClass(st.ErrorClass))
		extra["LastError"] = st.LastError
		extra["RetryAt"] = st.RetryAt.UTC().Format(time.RFC3339)
	}
	return SubscriptionState{State: st.State, Extra: extra}
}

func nilIfEmpty(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// historyJSON renders a history load's progress.
func historyJSON(p mail.HistoryProgress) map[string]any {
	m := map[string]any{"State": p.State, "Filter": p.Filter, "Found": p.Found, "Delivered": p.Delivered,
		"Skipped": p.Skipped, "Started": p.Started.UTC().Format(time.RFC3339)}
	if p.Folder != "" {
		m["Folder"] = p.Folder
	}
	if !p.Finished.IsZero() {
		m["Finished"] = p.Finished.UTC().Format(time.RFC3339)
	}
	if p.Error != "" {
		m["Error"] = p.Error
	}
	return m
}

// FolderTree maps a folder list to Creatio's flat tree
// (docs/CREATIO-PROTOCOL.md §8.2): Id is the full path (what Creatio sends
// back in FolderIds), Name the leaf, ParentId the path above it. Folders that
// cannot be selected are kept so that their children have a parent.
func FolderTree(list []mail.Folder) []MailboxFolder {
	out := make([]MailboxFolder, 0, len(list))
	for _, f := range list {
		mf := MailboxFolder{ID: f.Name, Name: f.Name}
		if f.Display != "" || f.Parent != "" {
			mf.Name, mf.ParentID = f.Display, f.Parent
		} else if f.Delim != 0 {
			if i := strings.LastIndex(f.Name, string(f.Delim)); i > 0 {
				mf.ParentID, mf.Name = f.Name[:i], f.Name[i+1:]
			}
		}
		out = append(out, mf)
	}
	return out
}

// Query is the history query f asks for.
func (f SyncFilter) Query() mail.Query {
	q := mail.Query{Since: f.Since, SentSince: f.SentDate, UIDFrom: f.UIDFrom}
	if f.Undraft {
		q.NotFlags = append(q.NotFlags, `\Draft`)
	}
	if f.Undeleted {
		q.NotFlags = append(q.NotFlags, `\Deleted`)
	}
	if f.WithoutKeyword != "" {
		q.NotFlags = append(q.NotFlags, f.WithoutKeyword)
	}
	return q
}
