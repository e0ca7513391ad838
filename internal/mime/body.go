package mime

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Body selection notes.
//
// enmime's Envelope concatenates every text/plain part of a multipart/mixed
// message, including the plain alternative of a nested multipart, and files
// parts as attachments, inlines or "other parts" by rules that drop some of
// them. We walk its part tree ourselves instead:
//
//  1. Leaves are visited in document order (pre-order).
//  2. A leaf is a body candidate when it is text/plain or text/html (or has no
//     Content-Type, RFC 2045 §5.2), is not Content-Disposition: attachment and
//     has no file name (the root is exempt from the file-name rule).
//  3. The first candidate of each type is that body. A later candidate of the
//     same type is appended when it is a sibling of the first under a
//     non-alternative multipart: Apple Mail splits a body around inline images
//     that way. Any other candidate is an attachment.
//  4. Every other leaf is an attachment, in document order; message/rfc822
//     stays whole, and its body is not merged into ours.

const (
	// maxNameRunes caps synthesized and sanitized file names: file systems
	// allow 255 bytes and Cyrillic takes two bytes per rune.
	maxNameRunes = 120
	// maxPartWarnings bounds the warnings enmime keeps per part, so that a
	// hostile message cannot grow the warning list without limit.
	maxPartWarnings = 16
	// maxMultiparts bounds the multipart containers enmime may open per
	// message; see structureGuard.
	maxMultiparts = 16
)

// collector gathers the leaves and problems of an enmime part tree.
type collector struct {
	root     *enmime.Part
	leaves   []*enmime.Part
	warnings []string
}

// collect walks the tree in document order without recursion (a hostile
// message may nest deeply).
func collect(root *enmime.Part) *collector {
	c := &collector{root: root}
	stack := []*enmime.Part{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range p.Errors {
			c.warnings = append(c.warnings, fmt.Sprintf("part %s: %s", p.PartID, e.Error()))
		}
		if p != root && p.NextSibling != nil {
			stack = append(stack, p.NextSibling)
		}
		if p.FirstChild != nil {
			stack = append(stack, p.FirstChild)
		} else if !strings.HasPrefix(p.ContentType, "multipart/") || p.Boundary == "" {
			c.leaves = append(c.leaves, p)
		}
	}
	return c
}

// fallbackCharset returns the charset to decode raw 8-bit header bytes with:
// the first legacy charset a text part declares, else the one detected in the
// first text part that is not UTF-8. A body is a far larger sample than a
// subject line, and the same mailer wrote both.
func (c *collector) fallbackCharset() string {
	for _, p := range c.leaves {
		if !isTextType(p.ContentType) {
			continue
		}
		if cs := declaredCharset(p); !isUTF8Family(cs) {
			if enc, _ := lookupCharset(cs); enc != nil {
				return cs
			}
		}
	}
	for _, p := range c.leaves {
		if isTextType(p.ContentType) && !utf8.Valid(p.Content) {
			return detectCharset(p.Content, p.ContentType == "text/html")
		}
	}
	return ""
}

// assembler fills the body and attachments of a message from collected parts.
type assembler struct {
	msg      *mail.Message
	opts     Options
	dec      *headerDecoder
	warnings []string
	cids     map[string]bool // cid: references in the HTML body, lower-case
}

// bodies picks the text and HTML bodies (see the notes above) and returns the
// leaves that remain attachments.
func (a *assembler) bodies(c *collector) []*enmime.Part {
	var first [2]*enmime.Part // text, HTML
	var parts [2][]string
	var rest []*enmime.Part
	for _, p := range c.leaves {
		kind := bodyKind(p, p == c.root)
		if kind < 0 {
			rest = append(rest, p)
			continue
		}
		switch f := first[kind]; {
		case f == nil:
			first[kind] = p
		case p.Parent != nil && p.Parent == f.Parent && p.Parent.ContentType != "multipart/alternative":
			// A continuation of the first: appended below.
		default:
			rest = append(rest, p)
			continue
		}
		if strings.HasPrefix(p.ContentType, "multipart/") {
			if strings.Contains(strings.ToLower(p.Header.Get("Content-Type")), "boundary") {
				a.warn(p, "multipart nested too deeply; kept as text")
			} else {
				a.warn(p, "multipart without boundary kept as text")
			}
		}
		s, w := decodeText(p.Content, declaredCharset(p), kind == 1)
		if w != "" {
			a.warn(p, w)
		}
		parts[kind] = append(parts[kind], strings.TrimPrefix(s, "\uFEFF"))
	}
	a.msg.Text = strings.Join(parts[0], "\n")
	a.msg.HTML = strings.Join(parts[1], "\n")
	return rest
}

// bodyKind returns 0 for a text/plain body candidate, 1 for text/html and -1
// for anything that is not a body.
func bodyKind(p *enmime.Part, isRoot bool) int {
	if p.Disposition == "attachment" || p.FileName != "" && !isRoot {
		return -1
	}
	switch {
	case p.ContentType == "text/html":
		return 1
	case p.ContentType == "text/plain", p.ContentType == "":
		return 0
	case strings.HasPrefix(p.ContentType, "multipart/"):
		return 0 // no boundary: the best we can do is show it
	}
	return -1
}

// attachments appends every remaining leaf as an attachment.
func (a *assembler) attachments(leaves []*enmime.Part) {
	for _, p := range leaves {
		cid := contentID(p)
		if len(p.Content) == 0 && p.FileName == "" && cid == "" {
			continue // an empty filler part, such as a blank alternative
		}
		ct := p.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		att := mail.Attachment{
			Name:        a.attachmentName(p, ct, len(a.msg.Attachments)+1),
			ContentType: ct,
			ContentID:   cid,
			Data:        p.Content,
		}
		if cid != "" {
			att.Inline = p.Disposition == "inline" || a.referenced(cid)
		}
		if limit := a.opts.MaxAttachmentBytes; limit > 0 && int64(len(p.Content)) > limit {
			att.Data = nil
			a.warnings = append(a.warnings,
				fmt.Sprintf("attachment %q of %d bytes exceeds limit", att.Name, len(p.Content)))
		}
		a.msg.Attachments = append(a.msg.Attachments, att)
	}
}

// referenced reports whether the HTML body refers to cid (RFC 2392).
func (a *assembler) referenced(cid string) bool {
	if a.cids == nil {
		a.cids = cidRefs(a.msg.HTML)
	}
	return a.cids[strings.ToLower(cid)]
}

// warn records a problem with part p.
func (a *assembler) warn(p *enmime.Part, msg string) {
	a.warnings = append(a.warnings, fmt.Sprintf("part %s: %s", p.PartID, msg))
}

// contentID returns the Content-ID without angle brackets. It is taken from
// the header rather than enmime's ContentID, which URL-unescapes it and so
// turns a "+" into a space.
func contentID(p *enmime.Part) string {
	v := strings.TrimSpace(p.Header.Get("Content-ID"))
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"))
	return validUTF8([]byte(v))
}

// isTextType reports whether a part's content is text for charset purposes.
func isTextType(ct string) bool {
	return ct == "" || strings.HasPrefix(ct, "text/")
}
