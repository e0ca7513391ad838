// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Id formats of TranslateIDs (Graph's exchangeIdFormat).
const (
	IDTypeEWS           = "ewsId"                // EWS ItemId/FolderId
	IDTypeREST          = "restId"               // Graph's default id, changes when the item moves
	IDTypeRESTImmutable = "restImmutableEntryId" // Graph's immutable id (Prefer: IdType="ImmutableId")
	idTypeEntry         = "entryId"              // MAPI PR_ENTRYID, binary as URL-safe base64
	idTypeImmutable     = "immutableEntryId"     // MAPI immutable entry id
)

// maxTranslate is the most ids Graph translates in one request.
const maxTranslate = 1000

var idTypes = []string{IDTypeEWS, IDTypeREST, IDTypeRESTImmutable, idTypeEntry, idTypeImmutable}

// TranslateIDs converts ids of items in the user's mailbox from one format
// to another (POST /users/{user}/translateExchangeIds, up to 1,000 ids per
// request; more are sent in several), for moving a mailbox's state from
// EWS to Graph: IDTypeEWS to IDTypeRESTImmutable. The result maps each id
// that could be converted to its translation; one Graph could not convert
// (deleted, malformed, of another mailbox) is left out, so that one bad id
// does not cost the others. Duplicates are sent once.
//
// Microsoft documents this call for delegated tokens only (User.ReadBasic.All);
// an app-only token may be refused (403, ClassConfig).
func (c *Client) TranslateIDs(ctx context.Context, user string, ids []string, from, to string) (map[string]string, error) {
	const op = "graph translate ids"
	switch {
	case user == "":
		return nil, mail.Errorf(mail.ClassConfig, op, "empty user")
	case !slices.Contains(idTypes, from) || !slices.Contains(idTypes, to):
		return nil, mail.Errorf(mail.ClassInternal, op, "unknown id format %q or %q", excerpt(from), excerpt(to))
	}
	uniq := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	out := make(map[string]string, len(uniq))
	for chunk := range slices.Chunk(uniq, maxTranslate) {
		body, err := json.Marshal(struct {
			InputIDs []string `json:"inputIds"`
			From     string   `json:"sourceIdType"`
			To       string   `json:"targetIdType"`
		}{chunk, from, to})
		if err != nil {
			return nil, mail.Wrap(mail.ClassInternal, op, err)
		}
		r := &call{
			op: op, method: "POST", users: []string{user}, kind: tMailbox, perm: "User.ReadBasic.All",
			url:  c.resolve(userPath(user)+"/translateExchangeIds", ""),
			body: body, ctype: "application/json",
			// Translation changes nothing: sending it again is harmless.
			idempotent: true,
		}
		var x struct {
			Value []struct {
				SourceID string `json:"sourceId"`
				TargetID string `json:"targetId"`
			} `json:"value"`
		}
		if err := c.getJSON(ctx, r, &x); err != nil {
			return nil, err
		}
		for _, v := range x.Value {
			// Only ids asked for are taken: a confused server cannot add
			// entries the caller would then trust.
			if v.TargetID != "" && seen[v.SourceID] {
				out[v.SourceID] = v.TargetID
			}
		}
	}
	return out, nil
}
