// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"context"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Header is one Internet message header as Exchange stored it.
type Header struct {
	Name  string
	Value string
}

type headerItemXML struct {
	ItemID   idXML  `xml:"ItemId"`
	Received string `xml:"DateTimeReceived"`
	Headers  []struct {
		Name  string `xml:"HeaderName,attr"`
		Value string `xml:",chardata"`
	} `xml:"InternetMessageHeaders>InternetMessageHeader"`
}

type getItemMsg struct {
	responseMessage
	Items struct {
		List []headerItemXML `xml:",any"`
	} `xml:"Items"`
}

// getItem reads one item with the given properties besides its id.
func (c *Client) getItem(ctx context.Context, t Target, id ItemID, props ...string) (*headerItemXML, error) {
	const op = "GetItem"
	if id.ID == "" {
		return nil, mail.Errorf(mail.ClassConfig, "ews "+op, "empty item id")
	}
	msgs, err := call[getItemMsg](ctx, c, t, op, true, func(w *xmlw) {
		w.start("m:GetItem")
		w.start("m:ItemShape")
		w.elem("t:BaseShape", "IdOnly")
		if len(props) > 0 {
			w.fieldURIs(props...)
		}
		w.end("m:ItemShape")
		w.start("m:ItemIds")
		w.itemID(ItemID{ID: id.ID})
		w.end("m:ItemIds")
		w.end("m:GetItem")
	})
	if err != nil {
		return nil, err
	}
	if len(msgs[0].Items.List) == 0 {
		return nil, mail.Errorf(mail.ClassProtocol, "ews "+op, "response without the item")
	}
	return &msgs[0].Items.List[0], nil
}

// GetHeaders reads the item's Internet message headers and its arrival
// time, for a header-only message when the item is too large to download.
// Exchange returns the headers it parsed, unfolded, in their order.
func (c *Client) GetHeaders(ctx context.Context, t Target, id ItemID) ([]Header, time.Time, error) {
	x, err := c.getItem(ctx, t, id, "item:InternetMessageHeaders", "item:DateTimeReceived")
	if err != nil {
		return nil, time.Time{}, err
	}
	hs := make([]Header, 0, len(x.Headers))
	for _, h := range x.Headers {
		hs = append(hs, Header{Name: h.Name, Value: h.Value})
	}
	return hs, parseTime(x.Received), nil
}
