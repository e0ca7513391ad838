// SPDX-License-Identifier: Apache-2.0

package mime

import (
	"fmt"
	netmail "net/mail"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// addressList parses an address-list header value (unfolded, not yet decoded).
// A list net/mail accepts is used as is. Otherwise each comma- or
// semicolon-separated item is parsed on its own, keeping what parses; when
// nothing does, the decoded text is kept as a single address so that the
// client still sees who it was. name is the header name, for warnings.
func (d *headerDecoder) addressList(name, raw string) []mail.Address {
	raw = strings.TrimSpace(d.utf8(raw))
	if raw == "" {
		return nil
	}
	p := netmail.AddressParser{WordDecoder: &d.wd}
	if list, err := p.ParseList(raw); err == nil {
		out := make([]mail.Address, 0, len(list))
		for _, a := range list {
			out = append(out, d.address(a.Name, a.Address))
		}
		if len(out) == 0 {
			return nil // a group without members: "undisclosed-recipients:;"
		}
		return out
	}
	items := splitAddressList(raw)
	var out []mail.Address
	for _, item := range items {
		if a, ok := d.lenientAddress(&p, item); ok {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		d.warnings = append(d.warnings, fmt.Sprintf("%s: unparsable address list kept as text", name))
		return []mail.Address{{Address: d.text(raw)}}
	}
	if len(out) < len(items) {
		d.warnings = append(d.warnings, fmt.Sprintf("%s: malformed address list; kept %d of %d entries", name, len(out), len(items)))
	}
	return out
}

// address builds a mail.Address. net/mail decodes encoded words in atoms but
// not inside quoted strings, where Outlook and others put them anyway; and its
// decoder copies UTF-8 words unchecked, hence the validation.
func (d *headerDecoder) address(name, addr string) mail.Address {
	if strings.Contains(name, "=?") {
		name = d.text(name)
	}
	return mail.Address{
		Name:    validUTF8([]byte(strings.TrimSpace(name))),
		Address: validUTF8([]byte(strings.TrimSpace(addr))),
	}
}

// lenientAddress parses one list item, falling back to the "<addr>" and
// "word@domain" shapes that net/mail rejects when the display name is broken
// (unquoted specials, unbalanced quotes).
func (d *headerDecoder) lenientAddress(p *netmail.AddressParser, item string) (mail.Address, bool) {
	item = strings.TrimSpace(item)
	if item == "" {
		return mail.Address{}, false
	}
	if a, err := p.Parse(item); err == nil {
		return d.address(a.Name, a.Address), true
	}
	if i := strings.LastIndexByte(item, '<'); i >= 0 {
		addr := item[i+1:]
		if j := strings.IndexByte(addr, '>'); j >= 0 {
			addr = addr[:j]
		}
		addr = strings.TrimSpace(addr)
		if strings.Contains(addr, "@") {
			name := strings.Trim(item[:i], " \t\"'<")
			if k := strings.LastIndexByte(name, ':'); k >= 0 && !strings.Contains(name, "=?") {
				name = strings.TrimSpace(name[k+1:]) // group name before it
			}
			return d.address(d.text(name), addr), true
		}
	}
	for _, w := range strings.Fields(item) {
		if strings.Contains(w, "@") {
			w = strings.Trim(w, "<>\"'();:,[]")
			if k := strings.LastIndexByte(w, ':'); k >= 0 {
				w = w[k+1:]
			}
			if w != "" {
				return mail.Address{Address: w}, true
			}
		}
	}
	return mail.Address{}, false
}

// splitAddressList splits at commas and semicolons that are outside quoted
// strings, comments and angle brackets. Semicolons count because users type
// Outlook-style "a@x; b@y" into mailers that copy it verbatim.
func splitAddressList(s string) []string {
	var items []string
	var quoted, escaped bool
	depth, angle, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case quoted:
			quoted = c != '"'
		case c == '"':
			quoted = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '<' && depth == 0:
			angle++
		case c == '>' && angle > 0 && depth == 0:
			angle--
		case (c == ',' || c == ';') && depth == 0 && angle == 0:
			if item := strings.TrimSpace(s[start:i]); item != "" {
				items = append(items, item)
			}
			start = i + 1
		}
	}
	if item := strings.TrimSpace(s[start:]); item != "" {
		items = append(items, item)
	}
	return items
}
