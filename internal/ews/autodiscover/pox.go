// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// POX ("plain old XML") Autodiscover, the Outlook provider (Exchange 2007 SP1
// and later, Exchange Online): POST an Autodiscover request to
// .../autodiscover.xml, read Response/Account.
const (
	nsPOXRequest  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	nsPOXResponse = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	// nsPOXOutlook is the Outlook provider's response schema, asked for
	// with AcceptableResponseSchema.
	nsPOXOutlook = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// poxRequest is the Outlook-provider request for addr.
func poxRequest(addr string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<Autodiscover xmlns="` + nsPOXRequest + `"><Request><EMailAddress>`)
	escape(&b, addr)
	b.WriteString(`</EMailAddress><AcceptableResponseSchema>` + nsPOXOutlook + `</AcceptableResponseSchema></Request></Autodiscover>`)
	return b.Bytes()
}

// poxResponse is the part of a POX answer we read.
type poxResponse struct {
	DisplayName  string
	Action       string // settings, redirectAddr, redirectUrl
	RedirectAddr string
	RedirectURL  string
	Protocols    []poxProtocol
	ErrorCode    string // Error/ErrorCode, under Response or Account
	ErrorMessage string
}

type poxProtocol struct {
	Type   string // EXCH (inside the organisation), EXPR (Outlook Anywhere, outside), EXHTTP, WEB, …
	EwsURL string
}

type poxError struct {
	ErrorCode string `xml:"ErrorCode"`
	Message   string `xml:"Message"`
}

// poxDocument maps an answer by local names (see soapEnvelope).
type poxDocument struct {
	XMLName  xml.Name
	Response *struct {
		User struct {
			DisplayName string `xml:"DisplayName"`
		} `xml:"User"`
		Account struct {
			Action       string `xml:"Action"`
			RedirectAddr string `xml:"RedirectAddr"`
			RedirectURL  string `xml:"RedirectUrl"`
			Protocols    []struct {
				Type     string `xml:"Type"`
				TypeAttr string `xml:"Type,attr"`
				EwsURL   string `xml:"EwsUrl"`
			} `xml:"Protocol"`
			Error *poxError `xml:"Error"`
		} `xml:"Account"`
		Error *poxError `xml:"Error"`
	} `xml:"Response"`
}

// parsePOX reads a POX answer.
func parsePOX(data []byte) (*poxResponse, error) {
	var doc poxDocument
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.XMLName.Local != "Autodiscover" || doc.Response == nil {
		return nil, errors.New("no Autodiscover/Response element")
	}
	resp := doc.Response
	r := &poxResponse{
		DisplayName:  strings.TrimSpace(resp.User.DisplayName),
		Action:       strings.TrimSpace(resp.Account.Action),
		RedirectAddr: strings.TrimSpace(resp.Account.RedirectAddr),
		RedirectURL:  strings.TrimSpace(resp.Account.RedirectURL),
	}
	for _, e := range []*poxError{resp.Error, resp.Account.Error} {
		if e != nil {
			r.ErrorCode, r.ErrorMessage = strings.TrimSpace(e.ErrorCode), strings.TrimSpace(e.Message)
			if r.ErrorCode == "" {
				r.ErrorCode = "(none)"
			}
			break
		}
	}
	for _, p := range resp.Account.Protocols {
		t := strings.TrimSpace(p.Type)
		if t == "" {
			t = strings.TrimSpace(p.TypeAttr)
		}
		r.Protocols = append(r.Protocols, poxProtocol{Type: t, EwsURL: strings.TrimSpace(p.EwsURL)})
	}
	return r, nil
}

// ewsURL returns the EwsUrl of the first protocol of type typ.
func (r *poxResponse) ewsURL(typ string) string {
	for _, p := range r.Protocols {
		if strings.EqualFold(p.Type, typ) && p.EwsURL != "" {
			return p.EwsURL
		}
	}
	return ""
}

// poxAnswer interprets the answer of the POX endpoint u for addr.
func poxAnswer(addr string, u *url.URL, data []byte) answer {
	r, err := parsePOX(data)
	if err != nil {
		return failed(mail.ClassProtocol, "not a POX autodiscover answer: %s", mail.Excerpt(err.Error(), 200))
	}
	if r.ErrorCode != "" {
		switch r.ErrorCode {
		// 500: address not found; 501 and 602: the address has no (usable)
		// configuration (MS-OXDSCLI 2.2.4.1.1.3.2).
		case "500", "501", "602":
			a := failed(mail.ClassConfig, "the server does not know %s (error %s: %s); check the mailbox's e-mail address",
				addr, r.ErrorCode, mail.Excerpt(r.ErrorMessage, 200))
			a.decisive = true
			return a
		}
		return failed(mail.ClassProtocol, "autodiscover error %s: %s", mail.Excerpt(r.ErrorCode, 50), mail.Excerpt(r.ErrorMessage, 300))
	}
	switch strings.ToLower(r.Action) {
	case "redirectaddr":
		if r.RedirectAddr == "" {
			return failed(mail.ClassProtocol, "redirectAddr without a RedirectAddr")
		}
		return answer{address: r.RedirectAddr}
	case "redirecturl":
		return redirectURL(r.RedirectURL, "redirectUrl")
	}
	// EXPR is the outside-facing protocol (see pickEWSURL); EXHTTP is what
	// Exchange 2013+ may send instead of both.
	ews, err := pickEWSURL(r.ewsURL("EXPR"), r.ewsURL("EXCH"), r.ewsURL("EXHTTP"))
	if err != nil {
		return answer{err: &mail.Error{Class: mail.ClassConfig, Err: errf("%w (no EXPR, EXCH or EXHTTP protocol with a usable EwsUrl)", err)}}
	}
	return answer{res: &Result{
		EWSURL:      ews,
		DisplayName: r.DisplayName,
		Address:     addr,
		Via:         show(u),
		Protocol:    string(kindPOX),
	}}
}
