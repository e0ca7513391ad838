// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	errDispositionRequired = &ewsError{"ErrorMessageDispositionRequired", "MessageDisposition attribute is required."}
	errInvalidRecipients   = &ewsError{"ErrorInvalidRecipients", "At least one recipient isn't valid."}
	errInvalidBase64       = &ewsError{"ErrorMimeContentInvalidBase64String", "The MIME content is not a valid Base64 string."}
	errConflict            = &ewsError{"ErrorIrresolvableConflict", "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."}
	errUnsupportedItem     = &ewsError{"ErrorInvalidItemForOperationCreateItem", "The CreateItem operation can only create messages in this server."}
)

// itemElementOrder lists the children of t:Message in schema order (ItemType, then
// MessageType), to check the order of items clients send.
var itemElementOrder = strings.Fields(`MimeContent ItemId ParentFolderId ItemClass Subject Sensitivity Body
	Attachments DateTimeReceived Size Categories Importance InReplyTo IsSubmitted IsDraft IsFromMe IsResend
	IsUnmodified InternetMessageHeaders DateTimeSent DateTimeCreated ResponseObjects ReminderDueBy ReminderIsSet
	ReminderNextTime ReminderMinutesBeforeStart DisplayCc DisplayTo DisplayBcc HasAttachments ExtendedProperty
	Culture EffectiveRights LastModifiedName LastModifiedTime IsAssociated WebClientReadFormQueryString
	WebClientEditFormQueryString ConversationId UniqueBody Flag StoreEntryId InstanceKey NormalizedBody
	EntityExtractionResult PolicyTag ArchiveTag RetentionDate Preview RightsManagementLicenseData
	PredictedActionReasons IsClutter BlockStatus HasBlockedImages TextBody IconIndex SearchKey SortKey Hashtags
	Mentions MentionedMe MentionsPreview MentionsEx AppliedHashtags AppliedHashtagsPreview Likes LikesPreview
	PendingSocialActivityTagIds AtAllMention CanDelete InferenceClassification
	Sender ToRecipients CcRecipients BccRecipients IsReadReceiptRequested IsDeliveryReceiptRequested
	ConversationIndex ConversationTopic From InternetMessageId IsRead IsResponseRequested References ReplyTo
	ReceivedBy ReceivedRepresenting ApprovalRequestData VotingInformation ReminderMessageData SenderSMTPAddress
	MailboxGuids`)

// checkMessageOrder validates the children of a t:Message against the schema order
// (ExtendedProperty may repeat).
func checkMessageOrder(m *node) error {
	pos := -1
	for _, k := range m.kids {
		i := slices.Index(itemElementOrder, k.local)
		if k.space != nsTypes || i < 0 || i < pos || (i == pos && k.local != "ExtendedProperty") {
			return schemaFault(k, "The element 'Message' in namespace '%s' has invalid child element '%s' in namespace '%s'.", nsTypes, k.local, k.space)
		}
		pos = i
	}
	return nil
}

// newMessage is a t:Message from CreateItem.
type newMessage struct {
	mime       []byte // from MimeContent, or built from the properties
	structured outgoing
	isRead     *bool
	categories []string
	err        *ewsError
}

func parseNewMessage(m *node) (newMessage, error) {
	var nm newMessage
	if err := checkMessageOrder(m); err != nil {
		return nm, err
	}
	for _, k := range m.kids {
		switch k.local {
		case "MimeContent":
			raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(k.text.String()), ""))
			if err != nil {
				nm.err = errInvalidBase64
			}
			nm.mime = raw
		case "Subject":
			nm.structured.subject = k.value()
		case "Body":
			nm.structured.body = k.text.String()
			bt, _ := k.attr("BodyType")
			nm.structured.html = bt == "HTML"
		case "ToRecipients":
			nm.structured.to = parseRecipients(k)
		case "CcRecipients":
			nm.structured.cc = parseRecipients(k)
		case "BccRecipients":
			nm.structured.bcc = parseRecipients(k)
		case "From":
			if l := parseRecipients(k); len(l) > 0 {
				nm.structured.from = l[0]
			}
		case "InternetMessageId":
			nm.structured.messageID = k.value()
		case "IsRead":
			v, err := boolText(k)
			if err != nil {
				return nm, err
			}
			nm.isRead = &v
		case "Categories":
			for _, c := range k.children(nsTypes, "String") {
				nm.categories = append(nm.categories, c.value())
			}
		}
	}
	return nm, nil
}

func parseRecipients(n *node) []addr {
	var out []addr
	for _, mb := range n.children(nsTypes, "Mailbox") {
		out = append(out, addr{name: mb.child(nsTypes, "Name").value(), email: mb.child(nsTypes, "EmailAddress").value()})
	}
	return out
}

// CreateItem: t:Message items, as MIME or structured properties. SaveOnly stores a
// draft and returns its id; SendOnly and SendAndSaveCopy send (recorded in Sent,
// delivered to recipients that are mailboxes of this server) and return an empty
// m:Items, SendAndSaveCopy also keeping a copy in SavedItemFolderId (default Sent
// Items).
func (s *Server) opCreateItem(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, opt(nsMsg, "SavedItemFolderId"), one(nsMsg, "Items")); err != nil {
		return err
	}
	disp, err := enumAttr(op, "MessageDisposition", false, "", "SaveOnly", "SendOnly", "SendAndSaveCopy")
	if err != nil {
		return err
	}
	var saveRef *folderRef
	if sf := op.child(nsMsg, "SavedItemFolderId"); sf != nil {
		refs, err := parseFolderIDs(sf, true)
		if err != nil {
			return err
		}
		saveRef = &refs[0]
	}
	items := op.child(nsMsg, "Items")
	if len(items.kids) == 0 {
		return schemaFault(items, "The element 'Items' in namespace '%s' has incomplete content.", nsMsg)
	}
	msgs := make([]newMessage, len(items.kids))
	for i, k := range items.kids {
		if !k.is(nsTypes, "Message") {
			msgs[i].err = errUnsupportedItem
			continue
		}
		if msgs[i], err = parseNewMessage(k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "CreateItem")
	for _, nm := range msgs {
		it, e := s.createOne(c, disp, saveRef, nm)
		if e != nil {
			errorMessage(b, "CreateItem", e)
			continue
		}
		msgStart(b, "CreateItem", nil)
		if it == nil {
			b.empty("m:Items")
		} else {
			b.open("m:Items")
			b.open(it.hdr.element())
			b.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey())
			b.end(it.hdr.element())
			b.end("m:Items")
		}
		msgEnd(b, "CreateItem")
	}
	responseEnd(b, "CreateItem")
	return nil
}

// createOne stores and/or sends one message and returns the stored item when its id
// is to be returned (SaveOnly). Callers hold s.mu.
func (s *Server) createOne(c *caller, disp string, saveRef *folderRef, nm newMessage) (*item, *ewsError) {
	if nm.err != nil {
		return nil, nm.err
	}
	if disp == "" {
		return nil, errDispositionRequired
	}
	mb := c.mbox
	var save *folder
	switch {
	case saveRef != nil:
		f, e := s.resolveFolder(c, *saveRef)
		if e != nil {
			return nil, e
		}
		save, mb = f, f.mbox
	case mb == nil:
		return nil, errMissingEmail
	case disp == "SaveOnly":
		save = mb.dist("drafts")
	case disp == "SendAndSaveCopy":
		save = mb.dist("sentitems")
	}
	now := time.Now().UTC()
	raw := nm.mime
	if raw == nil {
		o := nm.structured
		if o.from.email == "" {
			o.from = addr{name: mb.display, email: mb.smtp}
		}
		if o.messageID == "" {
			o.messageID = s.newMessageID(mb)
		}
		raw = buildMIME(o, now)
	}
	if disp == "SaveOnly" {
		it := s.addItem(save, raw, parseHeader(raw), true, false)
		s.applyNewProps(it, nm)
		return it, nil
	}
	saved, sent, rcpts := prepareSend(raw, mb.smtp, now, func() string { return s.newMessageID(mb) })
	if len(rcpts) == 0 {
		return nil, errInvalidRecipients
	}
	s.transmit(mb, sent, rcpts, now)
	if disp == "SendAndSaveCopy" {
		it := s.addItem(save, saved, parseHeader(saved), false, false)
		s.applyNewProps(it, nm)
	}
	return nil, nil
}

// applyNewProps sets the properties a new message carried besides its content.
// Callers hold s.mu.
func (s *Server) applyNewProps(it *item, nm newMessage) {
	if nm.isRead != nil && *nm.isRead != it.read {
		it.read = *nm.isRead
		if it.read {
			it.folder.unread--
		} else {
			it.folder.unread++
		}
	}
	it.categories = nm.categories
}

// transmit records a sent message and delivers it to the inbox of every recipient
// that is a mailbox of this server (once per mailbox), with the Received header a
// transport adds. Callers hold s.mu.
func (s *Server) transmit(from *mailbox, msg []byte, rcpts []addr, now time.Time) {
	from.sent = append(from.sent, msg)
	seen := map[*mailbox]bool{}
	for _, r := range rcpts {
		to := s.byAddr[strings.ToLower(r.email)]
		if to == nil || seen[to] {
			continue
		}
		seen[to] = true
		received := fmt.Sprintf("Received: from %s (127.0.0.1) by %s (127.0.0.1) with Microsoft SMTP Server\r\n (version=TLS1_2) id %d.%d.%d.%d; %s\r\n",
			s.backends[from.backend].fqdn, s.backends[to.backend].fqdn, verMajor, verMinor, verBuild, verMinorBuild, now.Format(time.RFC1123Z))
		raw := append([]byte(received), msg...)
		s.addItem(to.dist("inbox"), raw, parseHeader(raw), false, true)
	}
}

// newMessageID makes a Message-ID like the ones Exchange generates. Callers hold s.mu.
func (s *Server) newMessageID(mb *mailbox) string {
	g := strings.ReplaceAll(newGUID(), "-", "")
	return "<" + g + "@" + s.backends[mb.backend].fqdn + ">"
}

// UpdateItem: SetItemField, AppendToItemField and DeleteItemField on item:Categories,
// message:IsRead and item:Subject. Other properties are accepted and ignored (logged).
func (s *Server) opUpdateItem(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, opt(nsMsg, "SavedItemFolderId"), one(nsMsg, "ItemChanges")); err != nil {
		return err
	}
	conflict, err := enumAttr(op, "ConflictResolution", true, "", "NeverOverwrite", "AutoResolve", "AlwaysOverwrite")
	if err != nil {
		return err
	}
	disp, err := enumAttr(op, "MessageDisposition", false, "SaveOnly", "SaveOnly", "SendOnly", "SendAndSaveCopy")
	if err != nil {
		return err
	}
	changes := op.child(nsMsg, "ItemChanges")
	if err := checkSeq(changes, many(nsTypes, "ItemChange")); err != nil {
		return err
	}
	type parsed struct {
		ref     itemRef
		updates []*node
	}
	var todo []parsed
	for _, ch := range changes.kids {
		if err := checkSeq(ch, one(nsTypes, "ItemId", "OccurrenceItemId", "RecurringMasterItemId"), one(nsTypes, "Updates")); err != nil {
			return err
		}
		var ref itemRef
		if id := ch.child(nsTypes, "ItemId"); id != nil {
			if ref, err = parseItemID(id); err != nil {
				return err
			}
		}
		ups := ch.child(nsTypes, "Updates")
		if err := checkSeq(ups, many(nsTypes, "AppendToItemField", "SetItemField", "DeleteItemField")); err != nil {
			return err
		}
		for _, u := range ups.kids {
			if err := checkSeq(u, one(nsTypes, "FieldURI", "IndexedFieldURI", "ExtendedFieldURI"), anyN(nsTypes, "Item", "Message", "MeetingMessage", "MeetingRequest", "MeetingResponse", "MeetingCancellation", "CalendarItem", "Contact", "DistributionList", "Task", "PostItem")); err != nil {
				return err
			}
			if u.local != "DeleteItemField" && len(u.kids) != 2 {
				return schemaFault(u, "The element '%s' in namespace '%s' has incomplete content.", u.local, nsTypes)
			}
		}
		todo = append(todo, parsed{ref, ups.kids})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "UpdateItem")
	for _, p := range todo {
		it, e := s.resolveItem(c, p.ref)
		if e == nil && conflict == "NeverOverwrite" && p.ref.changeKey != "" && p.ref.changeKey != it.changeKey() {
			e = errConflict
		}
		if e != nil {
			errorMessage(b, "UpdateItem", e)
			continue
		}
		s.applyUpdates(it, p.updates)
		if disp != "SaveOnly" {
			saved, sent, rcpts := prepareSend(it.mime, it.folder.mbox.smtp, time.Now().UTC(), func() string { return s.newMessageID(it.folder.mbox) })
			s.transmit(it.folder.mbox, sent, rcpts, time.Now().UTC())
			it.mime = saved
			if disp == "SendAndSaveCopy" {
				it.draft = false
				it = s.moveItem(it, it.folder.mbox.dist("sentitems"), false)
			} else {
				s.hardDelete(it)
			}
		}
		msgStart(b, "UpdateItem", nil)
		b.open("m:Items")
		b.open(it.hdr.element())
		b.empty("t:ItemId", "Id", it.id, "ChangeKey", it.changeKey())
		b.end(it.hdr.element())
		b.end("m:Items")
		b.open("m:ConflictResults")
		b.leaf("t:Count", "0")
		b.end("m:ConflictResults")
		msgEnd(b, "UpdateItem")
	}
	responseEnd(b, "UpdateItem")
	return nil
}

// applyUpdates applies the field updates of one ItemChange, then logs one change and
// fires events. Callers hold s.mu.
func (s *Server) applyUpdates(it *item, updates []*node) {
	read, other := it.read, false
	for _, u := range updates {
		path := u.kids[0]
		uri, _ := path.attr("FieldURI")
		var val *node
		if len(u.kids) > 1 {
			val = u.kids[1]
		}
		switch {
		case path.local == "FieldURI" && uri == "item:Categories":
			var cats []string
			for _, c := range val.child(nsTypes, "Categories").children(nsTypes, "String") {
				cats = append(cats, c.value())
			}
			switch u.local {
			case "SetItemField":
				it.categories = cats
			case "AppendToItemField":
				for _, c := range cats {
					if !slices.Contains(it.categories, c) {
						it.categories = append(it.categories, c)
					}
				}
			default:
				it.categories = nil
			}
			other = true
		case path.local == "FieldURI" && uri == "message:IsRead":
			read = false
			if u.local != "DeleteItemField" {
				v, _ := strconv.ParseBool(val.child(nsTypes, "IsRead").value())
				read = v
			}
		case path.local == "FieldURI" && uri == "item:Subject":
			h := *it.hdr
			h.subject = ""
			if u.local != "DeleteItemField" {
				h.subject = val.child(nsTypes, "Subject").value()
			}
			it.hdr = &h
			other = true
		default:
			s.logf("ewsfake: UpdateItem %s of %s %s is accepted but not applied", u.local, path.local, uri)
		}
	}
	if read != it.read {
		if !other {
			s.setRead(it, read)
			return
		}
		it.read = read
		if read {
			it.folder.unread--
		} else {
			it.folder.unread++
		}
	}
	if other {
		s.itemModified(it, chUpdate)
	}
}

// DeleteItem: HardDelete and SoftDelete remove the item, MoveToDeletedItems moves it
// to Deleted Items.
func (s *Server) opDeleteItem(c *caller, op *node, b *xw) error {
	if err := checkSeq(op, one(nsMsg, "ItemIds")); err != nil {
		return err
	}
	kind, err := enumAttr(op, "DeleteType", true, "", "HardDelete", "SoftDelete", "MoveToDeletedItems")
	if err != nil {
		return err
	}
	refs, err := parseItemIDs(op.child(nsMsg, "ItemIds"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	responseStart(b, "DeleteItem")
	for _, ref := range refs {
		it, e := s.resolveItem(c, ref)
		if e != nil {
			errorMessage(b, "DeleteItem", e)
			continue
		}
		if kind == "MoveToDeletedItems" && it.folder.dist != "deleteditems" {
			s.moveItem(it, it.folder.mbox.dist("deleteditems"), false)
		} else {
			s.hardDelete(it)
		}
		errorMessage(b, "DeleteItem", nil)
	}
	responseEnd(b, "DeleteItem")
	return nil
}
