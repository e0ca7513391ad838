// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// ServiceStatus values.
const StatusStarted = "Started"

// ServiceStatus is the body of GET /api/listeners/status and /exists
// (docs/CREATIO-PROTOCOL.md §7.3).
// Creatio only needs HTTP 200 and shows ServiceStatus and Version on its
// diagnostics page. Extra properties (the original sent "connections") are
// written after the two known ones, sorted by name; an Extra key equal to a
// known name (case-insensitively) is ignored.
type ServiceStatus struct {
	ServiceStatus string         `json:"ServiceStatus"`
	Version       string         `json:"Version"`
	Extra         map[string]any `json:"-"`
}

// MarshalJSON implements json.Marshaler.
func (s ServiceStatus) MarshalJSON() ([]byte, error) {
	return marshalWithExtra([]field{{"ServiceStatus", s.ServiceStatus}, {"Version", s.Version}}, s.Extra)
}

// UnmarshalJSON implements json.Unmarshaler; names match case-insensitively as
// in Creatio, unknown properties go to Extra.
func (s *ServiceStatus) UnmarshalJSON(b []byte) error {
	var out ServiceStatus
	extra, err := unmarshalWithExtra(b, map[string]any{"ServiceStatus": &out.ServiceStatus, "Version": &out.Version})
	if err != nil {
		return err
	}
	out.Extra = extra
	*s = out
	return nil
}

// SubscriptionState is one value of the subscriptionsstate response, an object
// keyed by mailbox id (docs/CREATIO-PROTOCOL.md §7.1). Creatio reads State
// with exact casing, and only mail.StateExists counts as healthy: anything
// else makes its failover job recreate and resync the mailbox every minute.
// Extra properties (diagnostics) follow State, sorted by name.
type SubscriptionState struct {
	State string         `json:"State"`
	Extra map[string]any `json:"-"`
}

// MarshalJSON implements json.Marshaler.
func (s SubscriptionState) MarshalJSON() ([]byte, error) {
	return marshalWithExtra([]field{{"State", s.State}}, s.Extra)
}

// UnmarshalJSON implements json.Unmarshaler; unknown properties go to Extra.
func (s *SubscriptionState) UnmarshalJSON(b []byte) error {
	var out SubscriptionState
	extra, err := unmarshalWithExtra(b, map[string]any{"State": &out.State})
	if err != nil {
		return err
	}
	out.Extra = extra
	*s = out
	return nil
}

type field struct {
	name  string
	value any
}

func marshalWithExtra(known []field, extra map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	write := func(name string, v any) error {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		buf.Write(k)
		buf.WriteByte(':')
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(b)
		return nil
	}
	for _, f := range known {
		if err := write(f.name, f.value); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !slices.ContainsFunc(known, func(f field) bool { return strings.EqualFold(f.name, k) }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := write(k, extra[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// unmarshalWithExtra decodes the object b: properties named in known into the
// pointers there (an exact name wins over a case-insensitive match), the rest
// into the returned map (nil when there are none).
func unmarshalWithExtra(b []byte, known map[string]any) (map[string]any, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	for name, dst := range known {
		key := name
		if _, ok := raw[key]; !ok {
			for k := range raw {
				if strings.EqualFold(k, name) {
					key = k
					break
				}
			}
		}
		if v, ok := raw[key]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, err
			}
			delete(raw, key)
		}
	}
	var extra map[string]any
	for k, v := range raw {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, err
		}
		if extra == nil {
			extra = make(map[string]any, len(raw))
		}
		extra[k] = x
	}
	return extra, nil
}

// Action codes for a failed validation (CredentialsValidationInfo.Data): the
// Creatio UI turns them into a help link (docs/CREATIO-PROTOCOL.md §8.1).
const (
	ActionEmailTroubleShoot = "EmailTroubleShoot"
	ActionLinkToAcademy     = "LinkToExchangeListenerServiceAcademy"
)

// CredentialsValidationInfo is the response of /api/mailbox/validate (spec
// §4.4). Answer HTTP 200 also for wrong credentials; a non-2xx status makes
// Creatio report a service failure instead.
type CredentialsValidationInfo struct {
	IsValid bool   `json:"IsValid"`
	Message string `json:"Message"` // shown on the diagnostics page
	// Data is, when IsValid, empty or strict JSON text {"MailboxName":…} that the
	// UI JSON.parses; otherwise an action code (Action*).
	Data string `json:"Data"`
}

// ValidationOK is a successful validation; a non-empty mailboxName becomes the
// mailbox's display name in Creatio.
func ValidationOK(mailboxName string) CredentialsValidationInfo {
	v := CredentialsValidationInfo{IsValid: true}
	if mailboxName != "" {
		b, _ := json.Marshal(struct {
			MailboxName string `json:"MailboxName"`
		}{mailboxName})
		v.Data = string(b)
	}
	return v
}

// ValidationFailed is a failed validation with a message for the diagnostics
// page and an action code (ActionEmailTroubleShoot, or "").
func ValidationFailed(message, action string) CredentialsValidationInfo {
	return CredentialsValidationInfo{IsValid: false, Message: message, Data: action}
}

// MailboxFolder is one element of the /api/mailbox/folders response (spec
// §4.3). Id is what Creatio later sends back in FolderIds (the IMAP path or
// EWS folder id); ParentId is another folder's Id, or "" for a top-level folder.
type MailboxFolder struct {
	ID       string `json:"Id"`
	Name     string `json:"Name"`
	ParentID string `json:"ParentId"`
}
