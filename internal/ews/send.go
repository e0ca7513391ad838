// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SendMIME sends an RFC 5322 message as it is and saves a copy in Sent
// Items (CreateItem, SendAndSaveCopy). Recipients come from its header. A
// refusal of this message (ErrorSendAsDenied, a quota) comes back as a
// *ResponseError with its code. It is never retried here: a connection lost
// after the server took the request could otherwise send the message twice.
func (c *Client) SendMIME(ctx context.Context, t Target, raw []byte) error {
	const op = "CreateItem"
	if len(raw) == 0 {
		return mail.Errorf(mail.ClassInternal, "ews "+op, "empty message")
	}
	_, err := call[responseMessage](ctx, c, t, op, false, func(w *xmlw) {
		w.start("m:CreateItem", "MessageDisposition", "SendAndSaveCopy")
		w.start("m:SavedItemFolderId")
		w.folderID(FolderID{Distinguished: "sentitems"})
		w.end("m:SavedItemFolderId")
		w.start("m:Items")
		w.start("t:Message")
		w.start("t:MimeContent", "CharacterSet", "UTF-8")
		// Base64 needs no escaping; encode straight into the buffer.
		n := base64.StdEncoding.EncodedLen(len(raw))
		w.b.Grow(n)
		buf := w.b.AvailableBuffer()[:n]
		base64.StdEncoding.Encode(buf, raw)
		w.b.Write(buf)
		w.end("t:MimeContent")
		w.end("t:Message")
		w.end("m:Items")
		w.end("m:CreateItem")
	})
	return err
}

// AddCategory appends category to the item's categories (UpdateItem,
// AppendToItemField item:Categories, SaveOnly, AutoResolve). A change key
// that is stale or missing (the item changed since it was listed) is
// replaced by a fresh one, read with GetItem, and the update tried once
// more.
func (c *Client) AddCategory(ctx context.Context, t Target, id ItemID, category string) error {
	const op = "UpdateItem"
	if id.ID == "" || category == "" {
		return mail.Errorf(mail.ClassConfig, "ews "+op, "empty item id or category")
	}
	err := c.addCategory(ctx, t, id, category)
	if !staleChangeKey(err) {
		return err
	}
	x, gerr := c.getItem(ctx, t, id)
	if gerr != nil {
		return gerr
	}
	return c.addCategory(ctx, t, ItemID{ID: id.ID, ChangeKey: x.ItemID.ChangeKey}, category)
}

func (c *Client) addCategory(ctx context.Context, t Target, id ItemID, category string) error {
	_, err := call[responseMessage](ctx, c, t, "UpdateItem", false, func(w *xmlw) {
		w.start("m:UpdateItem", "MessageDisposition", "SaveOnly", "ConflictResolution", "AutoResolve")
		w.start("m:ItemChanges")
		w.start("t:ItemChange")
		w.itemID(id)
		w.start("t:Updates")
		w.start("t:AppendToItemField")
		w.empty("t:FieldURI", "FieldURI", "item:Categories")
		w.start("t:Message")
		w.start("t:Categories")
		w.elem("t:String", category)
		w.end("t:Categories")
		w.end("t:Message")
		w.end("t:AppendToItemField")
		w.end("t:Updates")
		w.end("t:ItemChange")
		w.end("m:ItemChanges")
		w.end("m:UpdateItem")
	})
	return err
}

// staleChangeKey reports the codes of a change key that does not name the
// item's current version (or is required and missing).
func staleChangeKey(err error) bool {
	var re *ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case "ErrorStaleObject", "ErrorIrresolvableConflict", "ErrorChangeKeyRequired",
		"ErrorChangeKeyRequiredForWriteOperations", "ErrorInvalidChangeKey":
		return true
	}
	return false
}
