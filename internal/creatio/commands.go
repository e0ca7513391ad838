// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SyncEmailsCommand is the body of POST /api/email/synchronize
// (docs/CREATIO-PROTOCOL.md §9.1), standard JSON. Read Filters through Filter.
type SyncEmailsCommand struct {
	Credentials SynchronizationCredentials `json:"Credentials"`
	// Filters is the decimal string of UTC .NET ticks for Exchange, or an IMAP
	// SEARCH criteria string for IMAP (docs/CREATIO-PROTOCOL.md §9.2, §9.3).
	Filters string `json:"Filters"`
	// SyncSinceTimeStamp is the ~7.15 form of the load-from date (UTC ticks),
	// used when Filters is empty (docs/CREATIO-PROTOCOL.md §9.1).
	SyncSinceTimeStamp FlexInt `json:"SyncSinceTimeStamp,omitempty"`
}

// SendCommand is the body of POST /apiv2/email/send and /api/email/send
// (docs/CREATIO-PROTOCOL.md §10), standard JSON. The files are in
// Email.Attachments; the top-level Attachments is null in every known Creatio
// build. Answer 200 with an empty body on success; any body text is shown to
// the user as the error.
type SendCommand struct {
	Email       Email                      `json:"Email"`
	Attachments []Attachment               `json:"Attachments"`
	Credentials SynchronizationCredentials `json:"Credentials"` // SMTP side for IMAP mailboxes
}

// SyncFilter is the meaning of a synchronize request's Filters.
type SyncFilter struct {
	// Since limits the sync to mail from this day on (IMAP SINCE/SENTSINCE: a
	// date at 00:00 UTC, compared by date only, RFC 3501 §6.4.4) or this instant
	// (Exchange ticks). Zero means no limit.
	Since time.Time
	// SentDate says Since applies to the Date header (SENTSINCE) rather than to
	// the server's internal date (SINCE, Exchange).
	SentDate bool
	// WithoutKeyword excludes messages carrying this IMAP keyword (UNKEYWORD,
	// Creatio's flag-based strategies).
	WithoutKeyword string
	// UIDFrom limits the sync to UIDs >= UIDFrom ("UID n:*"); 0 means no limit.
	UIDFrom uint32
	// Undraft and Undeleted exclude \Draft and \Deleted messages.
	Undraft, Undeleted bool
	// Ignored lists criteria this parser does not understand. They are dropped,
	// which can only widen the sync; Creatio deduplicates
	// (docs/CREATIO-PROTOCOL.md §14).
	Ignored []string
}

// Filter interprets Filters (docs/CREATIO-PROTOCOL.md §9.2, §9.3): a decimal
// number is Exchange ticks
// (0-ish means everything); anything else is parsed as the IMAP SEARCH
// criteria Creatio's strategies produce, e.g. "UNDRAFT UNDELETED SENTSINCE
// 01-Jan-2026". An empty Filters falls back to SyncSinceTimeStamp.
func (c *SyncEmailsCommand) Filter() SyncFilter {
	s := strings.TrimSpace(c.Filters)
	if s == "" {
		return SyncFilter{Since: FromTicks(int64(c.SyncSinceTimeStamp))}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return SyncFilter{Since: FromTicks(n)}
	}
	var f SyncFilter
	words := strings.Fields(s)
	for i := 0; i < len(words); i++ {
		w := strings.ToUpper(words[i])
		arg := ""
		if i+1 < len(words) {
			arg = words[i+1]
		}
		switch w {
		case "UNDRAFT":
			f.Undraft = true
		case "UNDELETED":
			f.Undeleted = true
		case "SINCE", "SENTSINCE":
			d, err := time.Parse("2-Jan-2006", strings.Trim(arg, `"`))
			if err != nil {
				f.Ignored = append(f.Ignored, w)
				continue
			}
			f.Since, f.SentDate = d, w == "SENTSINCE"
			i++
		case "UNKEYWORD":
			if arg == "" {
				f.Ignored = append(f.Ignored, w)
				continue
			}
			f.WithoutKeyword = arg
			i++
		case "UID":
			from, ok := strings.CutSuffix(arg, ":*")
			n, err := strconv.ParseUint(from, 10, 32)
			if !ok || err != nil {
				f.Ignored = append(f.Ignored, w)
				continue
			}
			f.UIDFrom = uint32(n)
			i++
		default:
			f.Ignored = append(f.Ignored, words[i])
		}
	}
	return f
}

// ParseFilter is Filter with strict checking, for the synchronize endpoint: a
// criterion the service cannot apply is a *RequestError instead of being
// dropped, so a typo never turns into a full-mailbox load. Exchange filters
// must be ticks.
func (c *SyncEmailsCommand) ParseFilter(kind mail.ServerKind) (SyncFilter, error) {
	f := c.Filter()
	if len(f.Ignored) > 0 {
		return f, fieldError("Filters", "synchronize: Filters: cannot apply %q; supported: UNDRAFT, UNDELETED, "+
			"SINCE dd-Mon-yyyy, SENTSINCE dd-Mon-yyyy, UNKEYWORD keyword, UID n:*, or .NET ticks", strings.Join(f.Ignored, " "))
	}
	s := strings.TrimSpace(c.Filters)
	if kind == mail.ServerExchange && s != "" {
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return f, fieldError("Filters", "synchronize: Filters: Exchange mailboxes take UTC .NET ticks, not %q", s)
		}
	}
	return f, nil
}
