// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"encoding/base64"
	"html"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rendering of folder and item properties. Which properties appear follows the
// shape: IdOnly, Default or AllProperties plus AdditionalProperties; they always come
// in the order of the schema's sequences (ItemType, then MessageType), because
// clients with schema-bound parsers depend on it.

func fmtTime(t time.Time, ms bool) string {
	if ms {
		return t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// writeFolder renders one folder element.
func writeFolder(b *xw, f *folder, sh shape) {
	want := func(uri string, inDefault, inAll bool) bool {
		switch {
		case sh.has(uri):
			return true
		case sh.base == "AllProperties":
			return inAll
		case sh.base == "Default":
			return inDefault
		}
		return false
	}
	name := f.elementName()
	b.open(name)
	b.empty("t:FolderId", "Id", f.id, "ChangeKey", f.changeKey())
	if f.parent != nil && want("folder:ParentFolderId", false, true) {
		b.empty("t:ParentFolderId", "Id", f.parent.id, "ChangeKey", f.parent.changeKey())
	}
	if f.class != "" && want("folder:FolderClass", false, true) {
		b.leaf("t:FolderClass", f.class)
	}
	if want("folder:DisplayName", true, true) {
		b.leaf("t:DisplayName", f.name)
	}
	if want("folder:TotalCount", true, true) {
		b.leaf("t:TotalCount", strconv.Itoa(len(f.items)))
	}
	if want("folder:ChildFolderCount", true, true) {
		b.leaf("t:ChildFolderCount", strconv.Itoa(len(f.kids)))
	}
	if want("folder:EffectiveRights", false, true) {
		b.open("t:EffectiveRights")
		for _, r := range []string{"CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read"} {
			b.leaf("t:"+r, "true")
		}
		b.leaf("t:ViewPrivateItems", "true")
		b.end("t:EffectiveRights")
	}
	if f.hasUnreadCount() && want("folder:UnreadCount", true, true) {
		b.leaf("t:UnreadCount", strconv.Itoa(f.unread))
	}
	b.end(name)
}

// itemCtx carries what item rendering needs besides the item.
type itemCtx struct {
	sh   shape
	ms   bool // millisecond precision
	find bool // FindItem/SyncFolderItems: no MIME, bodies truncated
	mbox func(email string) bool
}

// itemProp is one renderable item property, in schema order.
type itemProp struct {
	uri            string
	inDefault, all bool
	write          func(b *xw, it *item, c *itemCtx)
}

var itemProps = []itemProp{
	{"item:MimeContent", false, false, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:MimeContent", base64.StdEncoding.EncodeToString(it.mime), "CharacterSet", "UTF-8")
	}},
	{"item:ItemId", true, true, func(b *xw, it *item, c *itemCtx) {
		b.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey())
	}},
	{"item:ParentFolderId", false, true, func(b *xw, it *item, c *itemCtx) {
		b.empty("t:ParentFolderId", "Id", it.folder.id, "ChangeKey", it.folder.changeKey())
	}},
	{"item:ItemClass", false, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:ItemClass", it.hdr.class()) }},
	{"item:Subject", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:Subject", it.hdr.subject) }},
	{"item:Sensitivity", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:Sensitivity", "Normal") }},
	{"item:Body", false, true, writeBody},
	{"item:DateTimeReceived", true, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:DateTimeReceived", fmtTime(it.received, c.ms))
	}},
	{"item:Size", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:Size", strconv.Itoa(len(it.mime))) }},
	{"item:Categories", false, true, func(b *xw, it *item, c *itemCtx) {
		if len(it.categories) == 0 {
			return
		}
		b.open("t:Categories")
		for _, cat := range it.categories {
			b.leaf("t:String", cat)
		}
		b.end("t:Categories")
	}},
	{"item:Importance", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:Importance", "Normal") }},
	{"item:InReplyTo", false, true, func(b *xw, it *item, c *itemCtx) {
		if it.hdr.inReplyTo != "" {
			b.leaf("t:InReplyTo", it.hdr.inReplyTo)
		}
	}},
	{"item:IsSubmitted", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsSubmitted", "false") }},
	{"item:IsDraft", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsDraft", strconv.FormatBool(it.draft)) }},
	{"item:IsFromMe", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsFromMe", "false") }},
	{"item:IsResend", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsResend", "false") }},
	{"item:IsUnmodified", true, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:IsUnmodified", strconv.FormatBool(it.version == 1))
	}},
	{"item:InternetMessageHeaders", false, true, func(b *xw, it *item, c *itemCtx) {
		if len(it.hdr.fields) == 0 {
			return
		}
		b.open("t:InternetMessageHeaders")
		for _, f := range it.hdr.fields {
			b.leaf("t:InternetMessageHeader", f[1], "HeaderName", f[0])
		}
		b.end("t:InternetMessageHeaders")
	}},
	{"item:DateTimeSent", true, true, func(b *xw, it *item, c *itemCtx) {
		t := it.hdr.date
		if t.IsZero() {
			t = it.received
		}
		b.leaf("t:DateTimeSent", fmtTime(t, c.ms))
	}},
	{"item:DateTimeCreated", true, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:DateTimeCreated", fmtTime(it.created, c.ms))
	}},
	{"item:DisplayCc", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:DisplayCc", displayList(it.hdr.cc)) }},
	{"item:DisplayTo", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:DisplayTo", displayList(it.hdr.to)) }},
	{"item:HasAttachments", true, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:HasAttachments", strconv.FormatBool(it.hdr.attachments))
	}},
	{"item:Culture", false, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:Culture", "en-US") }},
	{"item:LastModifiedName", false, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:LastModifiedName", it.folder.mbox.display)
	}},
	{"item:LastModifiedTime", false, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:LastModifiedTime", fmtTime(it.modified, c.ms))
	}},
	{"message:Sender", true, true, func(b *xw, it *item, c *itemCtx) {
		if s := it.hdr.senderOrFrom(); s != nil {
			writeSingleRecipient(b, "t:Sender", *s, c)
		}
	}},
	{"message:ToRecipients", true, true, func(b *xw, it *item, c *itemCtx) { writeRecipients(b, "t:ToRecipients", it.hdr.to, c) }},
	{"message:CcRecipients", true, true, func(b *xw, it *item, c *itemCtx) { writeRecipients(b, "t:CcRecipients", it.hdr.cc, c) }},
	{"message:BccRecipients", false, true, func(b *xw, it *item, c *itemCtx) { writeRecipients(b, "t:BccRecipients", it.hdr.bcc, c) }},
	{"message:IsReadReceiptRequested", false, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsReadReceiptRequested", "false") }},
	{"message:IsDeliveryReceiptRequested", false, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:IsDeliveryReceiptRequested", "false")
	}},
	{"message:ConversationTopic", false, true, func(b *xw, it *item, c *itemCtx) {
		b.leaf("t:ConversationTopic", conversationTopic(it.hdr.subject))
	}},
	{"message:From", true, true, func(b *xw, it *item, c *itemCtx) {
		if len(it.hdr.from) > 0 {
			writeSingleRecipient(b, "t:From", it.hdr.from[0], c)
		}
	}},
	{"message:InternetMessageId", true, true, func(b *xw, it *item, c *itemCtx) {
		if it.hdr.messageID != "" {
			b.leaf("t:InternetMessageId", it.hdr.messageID)
		}
	}},
	{"message:IsRead", true, true, func(b *xw, it *item, c *itemCtx) { b.leaf("t:IsRead", strconv.FormatBool(it.read)) }},
	{"message:References", false, true, func(b *xw, it *item, c *itemCtx) {
		if it.hdr.references != "" {
			b.leaf("t:References", it.hdr.references)
		}
	}},
	{"message:ReplyTo", false, true, func(b *xw, it *item, c *itemCtx) { writeRecipients(b, "t:ReplyTo", it.hdr.replyTo, c) }},
}

// writeItem renders one item element (t:Message, or t:MeetingRequest etc. by item
// class) with the properties its shape selects.
func writeItem(b *xw, it *item, c *itemCtx) {
	name := it.hdr.element()
	b.open(name)
	for _, p := range itemProps {
		switch {
		case p.uri == "item:ItemId":
		case p.uri == "item:MimeContent":
			if c.find || !(c.sh.mime || c.sh.has(p.uri)) {
				continue
			}
		case c.sh.has(p.uri):
		case c.sh.base == "AllProperties" && p.all:
		case c.sh.base == "Default" && p.inDefault:
		default:
			continue
		}
		p.write(b, it, c)
	}
	b.end(name)
}

func writeSingleRecipient(b *xw, name string, a addr, c *itemCtx) {
	b.open(name)
	writeMailbox(b, a, c)
	b.end(name)
}

func writeRecipients(b *xw, name string, list []addr, c *itemCtx) {
	if len(list) == 0 {
		return
	}
	b.open(name)
	for _, a := range list {
		writeMailbox(b, a, c)
	}
	b.end(name)
}

func writeMailbox(b *xw, a addr, c *itemCtx) {
	b.open("t:Mailbox")
	n := a.name
	if n == "" {
		n = a.email
	}
	b.leaf("t:Name", n)
	b.leaf("t:EmailAddress", a.email)
	b.leaf("t:RoutingType", "SMTP")
	kind := "OneOff"
	if c.mbox != nil && c.mbox(a.email) {
		kind = "Mailbox"
	}
	b.leaf("t:MailboxType", kind)
	b.end("t:Mailbox")
}

func displayList(list []addr) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = a.name
		if parts[i] == "" {
			parts[i] = a.email
		}
	}
	return strings.Join(parts, "; ")
}

var topicPrefix = regexp.MustCompile(`(?i)^\s*((re|fw|fwd|aw|wg|sv|vs)\s*:\s*)+`)

func conversationTopic(subject string) string { return topicPrefix.ReplaceAllString(subject, "") }

// findBodyLimit is how much of a body FindItem returns: "the first 255 characters".
const findBodyLimit = 255

func writeBody(b *xw, it *item, c *itemCtx) {
	text, htm := bodies(it.mime)
	kind, body := "Text", text
	switch c.sh.bodyType {
	case "HTML":
		kind, body = "HTML", htm
		if htm == "" {
			body = "<html><body><pre>" + html.EscapeString(text) + "</pre></body></html>"
		}
	case "Text":
		if text == "" && htm != "" {
			body = stripTags(htm)
		}
	default: // Best: HTML when the message has it
		if htm != "" {
			kind, body = "HTML", htm
		}
	}
	truncated := false
	if c.find && len([]rune(body)) > findBodyLimit {
		body, truncated = string([]rune(body)[:findBodyLimit]), true
	}
	b.leaf("t:Body", body, "BodyType", kind, "IsTruncated", strconv.FormatBool(truncated))
}

var tagRE = regexp.MustCompile(`(?s)<[^>]*>`)

func stripTags(h string) string { return html.UnescapeString(tagRE.ReplaceAllString(h, "")) }
