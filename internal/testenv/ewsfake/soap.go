// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"fmt"
	"net/http"
	"strconv"
)

// XML namespaces of EWS and Autodiscover. Real servers and clients use the http://
// forms, whatever some published samples show.
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsMsg      = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
	nsXSI      = "http://www.w3.org/2001/XMLSchema-instance"
	nsXSD      = "http://www.w3.org/2001/XMLSchema"
	nsAD       = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
	nsWSA      = "http://www.w3.org/2005/08/addressing"
	nsPOXReq   = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	nsPOXResp  = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	nsPOXResp2 = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// The version this fake claims to be: Exchange Server 2016 CU23. Any realistic value
// works; clients only log it or use it to pick a RequestServerVersion.
const (
	verMajor      = 15
	verMinor      = 1
	verBuild      = 2507
	verMinorBuild = 6
	verSchema     = "V2017_07_11"
)

const xmlDecl = `<?xml version="1.0" encoding="utf-8"?>`

// ewsError is a per-message error: the message gets ResponseClass="Error" and the
// request still answers HTTP 200.
type ewsError struct {
	code string
	text string
}

func (e *ewsError) Error() string { return e.code + ": " + e.text }

func errMsg(code, format string, args ...any) *ewsError {
	return &ewsError{code: code, text: fmt.Sprintf(format, args...)}
}

// Per-message errors with Exchange's texts.
var (
	errItemNotFound     = &ewsError{"ErrorItemNotFound", "The specified object was not found in the store., The process failed to get the correct properties."}
	errFolderNotFound   = &ewsError{"ErrorFolderNotFound", "The specified folder could not be found in the store."}
	errIDMalformed      = &ewsError{"ErrorInvalidIdMalformed", "Id is malformed."}
	errInvalidSyncState = &ewsError{"ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."}
	errSubNotFound      = &ewsError{"ErrorSubscriptionNotFound", "The specified subscription was not found."}
	errSubAccessDenied  = &ewsError{"ErrorSubscriptionAccessDenied", "You don't have permission to access this subscription. Only the owner of the subscription can access it."}
	errAccessDenied     = &ewsError{"ErrorAccessDenied", "Access is denied. Check credentials and try again."}
	errConnCount        = &ewsError{"ErrorExceededConnectionCount", "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed."}
	errSubCount         = &ewsError{"ErrorExceededSubscriptionCount", "You have exceeded the available subscriptions for your account. Remove unnecessary subscriptions and try your request again."}
	errMissingEmail     = &ewsError{"ErrorMissingEmailAddress", "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folder Ids."}
)

// fault is a request-level failure, answered as a SOAP Fault (HTTP 500).
type fault struct {
	code   string      // ResponseCode, e.g. ErrorServerBusy
	text   string      // faultstring and e:Message
	values [][2]string // t:MessageXml/t:Value Name=.. children
	// Schema violations carry the position in the request, like Exchange reports it.
	line, col int
	violation string
}

func (f *fault) Error() string { return f.code + ": " + f.text }

func schemaFault(n *node, format string, args ...any) *fault {
	f := &fault{
		code:      "ErrorSchemaValidation",
		text:      "The request failed schema validation.",
		violation: fmt.Sprintf(format, args...),
	}
	if n != nil {
		f.line, f.col = n.line, n.col
	}
	return f
}

var (
	faultNonExistentMailbox = &fault{code: "ErrorNonExistentMailbox", text: "The SMTP address has no mailbox associated with it."}
	faultImpersonateDenied  = &fault{code: "ErrorImpersonateUserDenied", text: "The account does not have permission to impersonate the requested user."}
	faultInvalidVersion     = &fault{code: "ErrorInvalidServerVersion", text: "The specified server version is invalid."}
	faultImpersonationOAuth = &fault{code: "ErrorInvalidExchangeImpersonationHeaderData", text: "ExchangeImpersonation SOAP header must be present for this type of OAuth token."}
)

// writeFault renders f as Exchange does: no SOAP header, faultcode prefixed with a
// prefix bound to the types namespace, details in the errors namespace.
func writeFault(w http.ResponseWriter, f *fault) {
	var b xw
	b.WriteString(xmlDecl)
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP + `"><s:Body><s:Fault>`)
	b.leaf("faultcode", "a:"+f.code, "xmlns:a", nsTypes)
	text := f.text
	if f.violation != "" {
		text = "The request failed schema validation: " + f.violation
	}
	b.leaf("faultstring", text, "xml:lang", "en-US")
	b.open("detail")
	b.leaf("e:ResponseCode", f.code, "xmlns:e", nsErrors)
	b.leaf("e:Message", f.text, "xmlns:e", nsErrors)
	if len(f.values) > 0 || f.violation != "" {
		b.open("t:MessageXml", "xmlns:t", nsTypes)
		if f.violation != "" {
			b.leaf("t:LineNumber", strconv.Itoa(f.line))
			b.leaf("t:LinePosition", strconv.Itoa(f.col))
			b.leaf("t:Violation", f.violation)
		}
		for _, v := range f.values {
			b.leaf("t:Value", v[1], "Name", v[0])
		}
		b.end("t:MessageXml")
	}
	b.end("detail")
	b.WriteString(`</s:Fault></s:Body></s:Envelope>`)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(b.Bytes())
}

// envelopeStart writes the SOAP envelope up to the open Body, with the
// ServerVersionInfo header Exchange 2013+ sends.
func envelopeStart(b *xw, decl bool) {
	if decl {
		b.WriteString(xmlDecl)
	}
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP + `"><s:Header>`)
	b.empty("h:ServerVersionInfo",
		"MajorVersion", strconv.Itoa(verMajor), "MinorVersion", strconv.Itoa(verMinor),
		"MajorBuildNumber", strconv.Itoa(verBuild), "MinorBuildNumber", strconv.Itoa(verMinorBuild),
		"Version", verSchema,
		"xmlns:h", nsTypes, "xmlns", nsTypes, "xmlns:xsi", nsXSI, "xmlns:xsd", nsXSD)
	b.WriteString(`</s:Header><s:Body xmlns:xsi="` + nsXSI + `" xmlns:xsd="` + nsXSD + `">`)
}

func envelopeEnd(b *xw) { b.WriteString(`</s:Body></s:Envelope>`) }

// responseStart opens <m:{op}Response><m:ResponseMessages>.
func responseStart(b *xw, op string) {
	b.open("m:"+op+"Response", "xmlns:m", nsMsg, "xmlns:t", nsTypes)
	b.open("m:ResponseMessages")
}

func responseEnd(b *xw, op string) {
	b.end("m:ResponseMessages")
	b.end("m:" + op + "Response")
}

// msgStart opens one response message. A nil err is Success/NoError; otherwise the
// message is an Error with MessageText, ResponseCode and DescriptiveLinkKey, in the
// order the schema wants them.
func msgStart(b *xw, op string, err *ewsError) {
	if err == nil {
		b.open("m:"+op+"ResponseMessage", "ResponseClass", "Success")
		b.leaf("m:ResponseCode", "NoError")
		return
	}
	b.open("m:"+op+"ResponseMessage", "ResponseClass", "Error")
	b.leaf("m:MessageText", err.text)
	b.leaf("m:ResponseCode", err.code)
	b.leaf("m:DescriptiveLinkKey", "0")
}

func msgEnd(b *xw, op string) { b.end("m:" + op + "ResponseMessage") }

// errorMessage writes a complete error response message.
func errorMessage(b *xw, op string, err *ewsError) {
	msgStart(b, op, err)
	msgEnd(b, op)
}
