// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"strings"
)

// Parsers for the request parts several operations share: shapes, folder and item
// ids, paging views.

// shape is a FolderShape or ItemShape.
type shape struct {
	base     string          // IdOnly, Default or AllProperties
	mime     bool            // IncludeMimeContent
	bodyType string          // Best, HTML or Text
	props    map[string]bool // FieldURI values of AdditionalProperties
}

func (sh shape) has(uri string) bool { return sh.props[uri] }

func parseItemShape(n *node) (shape, error) {
	if err := checkSeq(n,
		one(nsTypes, "BaseShape"), opt(nsTypes, "IncludeMimeContent"), opt(nsTypes, "BodyType"),
		opt(nsTypes, "UniqueBodyType"), opt(nsTypes, "NormalizedBodyType"), opt(nsTypes, "FilterHtmlContent"),
		opt(nsTypes, "ConvertHtmlCodePageToUTF8"), opt(nsTypes, "InlineImageUrlTemplate"),
		opt(nsTypes, "BlockExternalImages"), opt(nsTypes, "AddBlankTargetToLinks"),
		opt(nsTypes, "MaximumBodySize"), opt(nsTypes, "AdditionalProperties"),
	); err != nil {
		return shape{}, err
	}
	sh := shape{bodyType: "Best"}
	var err error
	if sh.base, err = enumText(n.child(nsTypes, "BaseShape"), "IdOnly", "Default", "AllProperties", "PcxPeopleSearch"); err != nil {
		return shape{}, err
	}
	if m := n.child(nsTypes, "IncludeMimeContent"); m != nil {
		if sh.mime, err = boolText(m); err != nil {
			return shape{}, err
		}
	}
	if bt := n.child(nsTypes, "BodyType"); bt != nil {
		if sh.bodyType, err = enumText(bt, "Best", "HTML", "Text"); err != nil {
			return shape{}, err
		}
	}
	sh.props, err = parsePaths(n.child(nsTypes, "AdditionalProperties"))
	return sh, err
}

func parseFolderShape(n *node) (shape, error) {
	if err := checkSeq(n, one(nsTypes, "BaseShape"), opt(nsTypes, "AdditionalProperties")); err != nil {
		return shape{}, err
	}
	var sh shape
	var err error
	if sh.base, err = enumText(n.child(nsTypes, "BaseShape"), "IdOnly", "Default", "AllProperties"); err != nil {
		return shape{}, err
	}
	sh.props, err = parsePaths(n.child(nsTypes, "AdditionalProperties"))
	return sh, err
}

// parsePaths reads a NonEmptyArrayOfPathsToElementType. Only plain FieldURIs select
// something in this fake; indexed and extended properties are accepted and not
// returned, as Exchange does for extended properties an item does not have.
func parsePaths(n *node) (map[string]bool, error) {
	props := map[string]bool{}
	if n == nil {
		return props, nil
	}
	if err := checkSeq(n, many(nsTypes, "FieldURI", "IndexedFieldURI", "ExtendedFieldURI", "ExceptionFieldURI")); err != nil {
		return nil, err
	}
	for _, k := range n.kids {
		if k.local != "FieldURI" {
			continue
		}
		uri, ok := k.attr("FieldURI")
		if !ok {
			return nil, schemaFault(k, "The required attribute 'FieldURI' is missing.")
		}
		props[uri] = true
	}
	return props, nil
}

// distinguishedNames are the values of DistinguishedFolderIdNameType.
var distinguishedNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`calendar contacts deleteditems drafts inbox journal notes outbox sentitems
		tasks msgfolderroot publicfoldersroot root junkemail searchfolders voicemail recoverableitemsroot
		recoverableitemsdeletions recoverableitemsversions recoverableitemspurges recoverableitemsdiscoveryholds
		archiveroot archivemsgfolderroot archivedeleteditems archiveinbox archiverecoverableitemsroot
		archiverecoverableitemsdeletions archiverecoverableitemsversions archiverecoverableitemspurges
		archiverecoverableitemsdiscoveryholds syncissues conflicts localfailures serverfailures recipientcache
		quickcontacts conversationhistory adminauditlogs todosearch mycontacts directory imcontactlist
		peopleconnect favorites mecontact personmetadata teamspaceactivity teamspacemessaging teamspaceworkitems
		scheduled orionnotes tagitems alltaggeditems externalcontacts teamchat yammerroot yammerinbound
		yammeroutbound yammerfeeds onedriveroot onedriverecylebin onedrivesystem onedrivevolume`) {
		distinguishedNames[n] = true
	}
}

// folderRef is a FolderId or DistinguishedFolderId from a request.
type folderRef struct {
	id      string // FolderId/@Id
	dist    string // DistinguishedFolderId/@Id
	mailbox string // DistinguishedFolderId/Mailbox/EmailAddress
}

// parseFolderIDs reads the children of a NonEmptyArrayOfBaseFolderIdsType (or, with
// single set, a TargetFolderIdType).
func parseFolderIDs(n *node, single bool) ([]folderRef, error) {
	item := many(nsTypes, "FolderId", "DistinguishedFolderId", "AddressListId")
	if single {
		item = one(nsTypes, "FolderId", "DistinguishedFolderId", "AddressListId")
	}
	if err := checkSeq(n, item); err != nil {
		return nil, err
	}
	refs := make([]folderRef, 0, len(n.kids))
	for _, k := range n.kids {
		id, ok := k.attr("Id")
		if !ok {
			return nil, schemaFault(k, "The required attribute 'Id' is missing.")
		}
		switch k.local {
		case "FolderId":
			refs = append(refs, folderRef{id: id})
		case "DistinguishedFolderId":
			if !distinguishedNames[id] {
				return nil, schemaFault(k, "The 'Id' attribute is invalid - The value '%s' is invalid according to its datatype 'http://schemas.microsoft.com/exchange/services/2006/types:DistinguishedFolderIdNameType' - The Enumeration constraint failed.", id)
			}
			ref := folderRef{dist: id}
			if err := checkSeq(k, opt(nsTypes, "Mailbox")); err != nil {
				return nil, err
			}
			if mb := k.child(nsTypes, "Mailbox"); mb != nil {
				ref.mailbox = mb.child(nsTypes, "EmailAddress").value()
			}
			refs = append(refs, ref)
		default:
			// Address lists are not folders of a mailbox.
			refs = append(refs, folderRef{id: "\x00"})
		}
	}
	return refs, nil
}

// itemRef is an ItemId from a request.
type itemRef struct {
	id, changeKey string
	ok            bool // an ItemId (occurrence ids and the like are not supported)
}

func parseItemIDs(n *node) ([]itemRef, error) {
	if err := checkSeq(n, many(nsTypes, "ItemId", "OccurrenceItemId", "RecurringMasterItemId", "RecurringMasterItemIdRanges")); err != nil {
		return nil, err
	}
	refs := make([]itemRef, 0, len(n.kids))
	for _, k := range n.kids {
		if k.local != "ItemId" {
			refs = append(refs, itemRef{})
			continue
		}
		ref, err := parseItemID(k)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func parseItemID(k *node) (itemRef, error) {
	id, ok := k.attr("Id")
	if !ok {
		return itemRef{}, schemaFault(k, "The required attribute 'Id' is missing.")
	}
	ck, _ := k.attr("ChangeKey")
	return itemRef{id: id, changeKey: ck, ok: true}, nil
}

// pageView is an IndexedPageItemView or IndexedPageFolderView.
type pageView struct {
	max     int // 0: no limit given
	offset  int
	fromEnd bool
}

func parsePageView(n *node) (pageView, error) {
	var v pageView
	if n == nil {
		return v, nil
	}
	var err error
	if v.max, err = intAttr(n, "MaxEntriesReturned", false, 0, 1, 1<<31-1); err != nil {
		return v, err
	}
	if v.offset, err = intAttr(n, "Offset", true, 0, 0, 1<<31-1); err != nil {
		return v, err
	}
	bp, err := enumAttr(n, "BasePoint", true, "", "Beginning", "End")
	v.fromEnd = bp == "End"
	return v, err
}

// page applies a view to total entries and returns the index range and the offset a
// client passes to get the next page. With BasePoint End, Offset counts from the
// end of the view and the page ends there.
func (v pageView) page(total int) (from, to, next int) {
	limit := v.max
	if limit == 0 || limit > findCountLimit {
		limit = findCountLimit
	}
	if v.fromEnd {
		to = max(total-v.offset, 0)
		from = max(to-limit, 0)
		return from, to, v.offset + (to - from)
	}
	from = min(v.offset, total)
	to = min(from+limit, total)
	return from, to, to
}

// findCountLimit is EWSFindCountLimit: Exchange returns at most this many entries
// per FindItem/FindFolder call, whatever the client asks for.
const findCountLimit = 1000
