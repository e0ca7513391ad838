// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"crypto/sha256"
	"encoding/hex"
	netmail "net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// syntheticIDDomain is the domain of synthesized Message-IDs. ".invalid" is
// reserved (RFC 2606 §2), so a synthesized id can never collide with a real one.
const syntheticIDDomain = "emaillistener.invalid"

var (
	// commentRe matches a (non-nested) RFC 5322 comment such as "(MSK)".
	commentRe = regexp.MustCompile(`\([^()]*\)`)
	// gmtOffsetRe matches "GMT+0300", "UTC+03:00", "GMT-5" style zones.
	gmtOffsetRe = regexp.MustCompile(`(?i)\b(?:GMT|UTC)\s*([+-])(\d{1,2}):?(\d{2})?$`)
	// colonZoneRe matches a numeric zone written with a colon, "+03:00".
	colonZoneRe = regexp.MustCompile(`([+-]\d{2}):(\d{2})$`)
	// xPriorityRe takes the leading digit of "1 (Highest)".
	xPriorityRe = regexp.MustCompile(`^\s*(\d)`)
)

// parseDate parses a Date header leniently and returns it in UTC, or the zero
// time when it cannot be understood.
func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if t, err := netmail.ParseDate(v); err == nil && !hasZoneName(v) {
		return t.UTC()
	}
	v = normalizeDate(v)
	if t, err := netmail.ParseDate(v); err == nil {
		return t.UTC()
	}
	// Tried after net/mail gives up; they cover what real mailers and
	// scripts send: missing seconds, ISO 8601, asctime.
	layouts := [...]string{
		"Mon, 2 Jan 2006 15:04:05 -0700",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04 -0700",
		"2 Jan 2006 15:04 -0700",
		"Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 January 2006 15:04:05 -0700",
		"Monday, 2 January 2006 15:04:05 -0700",
		"Monday, January 2, 2006 15:04:05 -0700",
		"Mon Jan 2 15:04:05 -0700 2006",
		"Mon Jan 2 15:04:05 2006",
		"Mon, 2 Jan 2006 15:04:05",
		"2 Jan 2006 15:04:05",
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05-0700",
		"2006-01-02 15:04:05 -0700",
		"2006-01-02 15:04:05",
		"02.01.2006 15:04:05 -0700",
		"02.01.2006 15:04:05",
	}
	for _, layout := range layouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// hasZoneName reports whether a date ends with an alphabetic zone, which
// net/mail would resolve host-dependently.
func hasZoneName(v string) bool {
	fields := strings.Fields(v)
	last := fields[len(fields)-1]
	return last != "" && (last[0] >= 'A' && last[0] <= 'Z' || last[0] >= 'a' && last[0] <= 'z')
}

// normalizeDate strips comments and stray punctuation and rewrites zones
// into the numeric form.
func normalizeDate(v string) string {
	v = commentRe.ReplaceAllString(v, " ")
	v = strings.Join(strings.Fields(v), " ")
	v = strings.TrimRight(v, " .,")
	v = strings.Replace(v, ",", ", ", 1)
	v = strings.Join(strings.Fields(v), " ")
	if m := gmtOffsetRe.FindStringSubmatchIndex(v); m != nil {
		hh := v[m[4]:m[5]]
		if len(hh) == 1 {
			hh = "0" + hh
		}
		mm := "00"
		if m[6] >= 0 {
			mm = v[m[6]:m[7]]
		}
		v = v[:m[0]] + v[m[2]:m[3]] + hh + mm
	}
	v = colonZoneRe.ReplaceAllString(v, "$1$2")
	// RFC 5322 §4.3 zone names (and a few common ones) become offsets,
	// because time.Parse resolves abbreviations against the host's zone.
	zones := [...][2]string{
		{"UT", "+0000"}, {"GMT", "+0000"}, {"UTC", "+0000"}, {"Z", "+0000"},
		{"EST", "-0500"}, {"EDT", "-0400"}, {"CST", "-0600"}, {"CDT", "-0500"},
		{"MST", "-0700"}, {"MDT", "-0600"}, {"PST", "-0800"}, {"PDT", "-0700"},
		{"MSK", "+0300"}, {"CET", "+0100"}, {"CEST", "+0200"},
	}
	fields := strings.Fields(v)
	if n := len(fields); n > 0 {
		last := strings.ToUpper(fields[n-1])
		for _, z := range zones {
			if last == z[0] {
				fields[n-1] = z[1]
				if n > 1 && (strings.HasPrefix(fields[n-2], "+") || strings.HasPrefix(fields[n-2], "-")) {
					fields = fields[:n-1] // "+0300 MSK": the offset already says it
				}
				break
			}
		}
	}
	return strings.Join(fields, " ")
}

// messageID returns the Message-ID with angle brackets, or "" when v holds
// none. Anything after the id (comments, a second id) is dropped.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 1 {
			return strings.Join(strings.Fields(v[i:i+j+1]), "")
		}
	}
	fields := strings.Fields(strings.Trim(v, "<>"))
	if len(fields) == 0 {
		return ""
	}
	id := strings.Trim(fields[0], "<>")
	if id == "" {
		return ""
	}
	return "<" + id + ">"
}

// syntheticMessageID derives a Message-ID from the message bytes, so that
// the same message fetched twice gets the same id and the client can
// deduplicate it.
func syntheticMessageID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "<" + hex.EncodeToString(sum[:])[:32] + "@" + syntheticIDDomain + ">"
}

// collapseSpace replaces runs of white space with one space.
func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// importance reads Importance (RFC 2156), then Priority (RFC 2156: urgent,
// normal, non-urgent), then X-Priority, then X-MSMail-Priority; a header with
// an unknown value is skipped.
func importance(h header) mail.Importance {
	switch strings.ToLower(strings.TrimSpace(h.get("Importance"))) {
	case "high":
		return mail.ImportanceHigh
	case "normal":
		return mail.ImportanceNormal
	case "low":
		return mail.ImportanceLow
	}
	switch strings.ToLower(strings.TrimSpace(h.get("Priority"))) {
	case "urgent":
		return mail.ImportanceHigh
	case "normal":
		return mail.ImportanceNormal
	case "non-urgent":
		return mail.ImportanceLow
	}
	if m := xPriorityRe.FindStringSubmatch(h.get("X-Priority")); m != nil {
		switch m[1] {
		case "1", "2":
			return mail.ImportanceHigh
		case "3":
			return mail.ImportanceNormal
		case "4", "5":
			return mail.ImportanceLow
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.get("X-MSMail-Priority"))) {
	case "high":
		return mail.ImportanceHigh
	case "normal", "medium":
		return mail.ImportanceNormal
	case "low":
		return mail.ImportanceLow
	}
	return mail.ImportanceNormal
}
